// `workers: N | auto`: one primary and N worker processes sharing the partner port
// (node:cluster). Workers serve partners; the primary serves the admin endpoints for all of
// them (metrics aggregated with prom-client's AggregatorRegistry, readiness from each worker)
// and restarts a worker that dies. Several workers need the Redis replay store (the loader
// refuses the in-memory one), so a jti claimed in one worker is seen by every other.
import cluster, { type Worker } from 'node:cluster'
import { randomUUID } from 'node:crypto'
import { AggregatorRegistry } from 'prom-client'
import type { LoadedConfig } from './config/load.ts'
import { createReplayStore, listen, startGateway, type RunningGateway } from './gateway.ts'
import { createSecurityEvents, createStreamSink } from './observability/events.ts'
import type { StdoutWriter } from './observability/stdout.ts'
import { createRevokedTokenList } from './tokens/revoked-tokens.ts'
import type { Logger } from './types.ts'
import { createAdminServer } from './server/admin-server.ts'

const READY_REQUEST = 'fapi-gateway:ready?'
const READY_ANSWER = 'fapi-gateway:ready!'
const READY_TIMEOUT_MS = 1000
const RESTART_DELAY_MS = 1000

interface ReadyAnswer {
  type: typeof READY_ANSWER
  id: string
  checks: Record<string, boolean>
}

/** In a worker: run the gateway without an admin listener and answer the primary's questions. */
export async function runWorker(loaded: LoadedConfig, logger: Logger, stdout: StdoutWriter): Promise<RunningGateway> {
  const gateway = await startGateway(loaded, { logger, adminListener: false, stdout })
  // Constructing one makes prom-client answer the primary's metric requests in this worker.
  new AggregatorRegistry()
  AggregatorRegistry.setRegistries([gateway.metrics.registry])
  process.on('message', (message: { type?: string; id?: string }) => {
    if (message?.type === READY_REQUEST) process.send?.({ type: READY_ANSWER, id: message.id ?? '', checks: gateway.ready() } satisfies ReadyAnswer)
  })
  return gateway
}

function askReady(worker: Worker): Promise<Record<string, boolean>> {
  const id = randomUUID()
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      worker.off('message', onMessage)
      resolve({ answered: false })
    }, READY_TIMEOUT_MS)
    const onMessage = (message: ReadyAnswer) => {
      if (message?.type !== READY_ANSWER || message.id !== id) return
      clearTimeout(timer)
      worker.off('message', onMessage)
      resolve(message.checks)
    }
    worker.on('message', onMessage)
    worker.send({ type: READY_REQUEST, id })
  })
}

/** In the primary: fork the workers, keep them running, serve the admin endpoints. Resolves on SIGTERM/SIGINT once every worker has exited. */
export async function runPrimary(
  loaded: LoadedConfig,
  workers: number,
  logger: Logger,
  stdout: StdoutWriter,
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  const { config } = loaded
  let stopping = false
  const fork = () => cluster.fork()
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return
    logger.error({ pid: worker.process.pid, code, signal }, 'worker exited; starting another')
    setTimeout(() => {
      if (!stopping) fork()
    }, RESTART_DELAY_MS).unref()
  })
  for (let i = 0; i < workers; i++) fork()
  // Each worker reloads its own configuration (docs/operations.md, "Rotation and reload").
  const forwardReload = () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP')
  }
  process.on('SIGHUP', forwardReload)

  const aggregator = new AggregatorRegistry()
  const store = createReplayStore(config.replay, env, Date.now, logger)
  const admin = createAdminServer({
    exposition: { contentType: aggregator.contentType, metrics: () => aggregator.clusterMetrics() },
    adminToken: env[config.admin.tokenEnv],
    ready: async () => {
      const answers = await Promise.all(
        Object.values(cluster.workers ?? {})
          .filter((w): w is Worker => w !== undefined)
          .map(askReady),
      )
      const checks: Record<string, boolean> = { workers: answers.length === workers }
      for (const answer of answers) for (const [name, ok] of Object.entries(answer)) checks[name] = (checks[name] ?? true) && ok
      return checks
    },
    // The primary serves the admin endpoint, so it announces revocations to the workers' mirrors.
    revokedTokens: createRevokedTokenList(store, { announce: config.replay.revocationMirror.enabled }),
    events: createSecurityEvents({ sinks: [createStreamSink(stdout.stream)], clock: Date.now }),
    logger,
  })
  await listen(admin, config.admin.port, config.admin.host, { file: loaded.file, key: 'admin.port' })
  logger.info({ workers, adminPort: config.admin.port }, 'fapi-gateway primary started')

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      stopping = true
      process.off('SIGHUP', forwardReload)
      logger.info({ signal }, 'shutting down workers')
      const alive = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined)
      let remaining = alive.length
      if (remaining === 0) resolve()
      for (const worker of alive) {
        worker.once('exit', () => {
          if (--remaining === 0) resolve()
        })
        worker.process.kill('SIGTERM')
      }
    }
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
  })
  await new Promise<void>((resolve) => {
    admin.closeAllConnections()
    admin.close(() => resolve())
  })
  await store.close()
  logger.info({}, 'fapi-gateway stopped')
}
