// Hot reload (docs/operations.md, "Rotation and reload"): on a changed file or SIGHUP, the configuration
// and policies are loaded again with the real loader, the pipeline is rebuilt where its
// inputs changed, the listener's TLS context is replaced with setSecureContext (established
// connections keep theirs), and the new version is swapped in whole. A new configuration that
// fails validation changes nothing and is reported with a config.refused event.
import type { Server } from 'node:https'
import { dirname, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as delay } from 'node:timers/promises'
import { ConfigError, loadConfig, type LoadedConfig } from '../config/load.ts'
import type { SecurityEvents } from '../observability/events.ts'
import type { Logger } from '../types.ts'
import { createFileWatcher, type FileWatcher, type WatchedPaths } from './file-watch.ts'
import type { Generations } from './generations.ts'
import { buildPipeline, partsToClose, type BuiltPipeline, type GatewayPipeline, type PipelinePart, type SharedDeps } from '../pipeline.ts'
import { keepRunningValues, restartRequiredKeys } from './restart-keys.ts'
import { createRetirement } from './retirement.ts'

export type ReloadTrigger = 'file_changed' | 'sighup' | 'requested'

export interface ReloadResult {
  /** reloaded: the new version is in force (possibly with settings kept for a restart); refused: nothing changed. */
  readonly outcome: 'reloaded' | 'refused'
  readonly changed: readonly PipelinePart[]
  readonly restartRequired: readonly string[]
  readonly problems: readonly string[]
}

export interface ReloaderDeps {
  readonly file: string
  readonly env: NodeJS.ProcessEnv
  readonly server: Server
  readonly generations: Generations<GatewayPipeline>
  readonly shared: SharedDeps
  readonly events: Pick<SecurityEvents, 'emit'>
  readonly logger: Logger
  /** 0: files are not watched (SIGHUP and reload() still work). */
  readonly pollIntervalMs: number
  /** A new token verifier is given this long to fetch its keys before it takes over. */
  readonly issuerWarmupMs?: number
  /** Called with every version put in force, after the swap. */
  readonly onApplied?: (pipeline: GatewayPipeline, changed: readonly PipelinePart[]) => void
}

export interface Reloader {
  reload(trigger?: ReloadTrigger, changedFiles?: readonly string[]): Promise<ReloadResult>
  /** Stops watching and waits for a reload under way. */
  stop(): Promise<void>
  /** Closes every part still held by a version in force or draining. */
  closeParts(): Promise<void>
}

const DEFAULT_ISSUER_WARMUP_MS = 5_000

/** The files a configuration reads, resolved like the loader resolves them. */
export function watchedPaths(loaded: LoadedConfig): WatchedPaths & { readonly crlFiles: readonly string[] } {
  const { config } = loaded
  const base = dirname(loaded.file)
  const at = (path: string | undefined) => (path === undefined ? [] : [resolve(base, path)])
  const tls = config.listener.tls
  const crlFiles = (config.revocation?.cas ?? []).flatMap((ca) => (ca.crl?.files ?? []).map((f) => resolve(base, f)))
  return {
    files: [
      loaded.file,
      ...at(tls.certFile),
      ...at(tls.keyFile),
      ...at(tls.clientCaFile),
      ...at(tls.clientIntermediatesFile),
      ...config.issuers.flatMap((issuer) => [
        ...at(issuer.caFile),
        ...at(issuer.introspection?.caFile),
        ...at(issuer.introspection?.auth.method === 'private_key_jwt' ? issuer.introspection.auth.privateKeyFile : undefined),
      ]),
      ...Object.values(config.upstreams).flatMap((upstream) => [...at(upstream.caFile), ...at(upstream.certFile), ...at(upstream.keyFile)]),
      ...(config.revocation?.cas ?? []).flatMap((ca) => at(ca.caFile)),
      ...crlFiles,
      ...(loaded.partners ? [loaded.partners.file] : []),
      ...at(config.authorizationServer?.legacy.caFile),
      ...at(config.authorizationServer?.partnerJwksCaFile),
      ...at(config.authorizationServer?.legacy.certFile),
      ...at(config.authorizationServer?.legacy.keyFile),
    ],
    yamlDirs: [resolve(base, config.policies.dir)],
    crlFiles,
  }
}

function problemsOf(error: unknown, file: string): string[] {
  if (error instanceof ConfigError) return [...error.problems]
  return [`${file}: ${error instanceof Error ? error.message : String(error)}`]
}

export function createReloader(deps: ReloaderDeps): Reloader {
  const { generations, events, logger, file } = deps
  const retirement = createRetirement(generations, logger)
  let watching = watchedPaths(generations.current().loaded)
  let watcher: FileWatcher | undefined
  let queue: Promise<unknown> = Promise.resolve()
  let stopped = false

  function refuse(trigger: ReloadTrigger, problems: string[]): ReloadResult {
    logger.error({ trigger, problems }, 'configuration reload refused; the running configuration stays')
    events.emit({ event: 'config.refused', reason: 'config.invalid', detail: `${trigger}: ${problems.join('; ')}` })
    return { outcome: 'refused', changed: [], restartRequired: [], problems }
  }

  async function waitForIssuers(built: BuiltPipeline): Promise<void> {
    if (!built.changed.includes('issuers')) return
    const deadline = performance.now() + (deps.issuerWarmupMs ?? DEFAULT_ISSUER_WARMUP_MS)
    while (!built.pipeline.tokens.ready() && performance.now() < deadline && !stopped) await delay(20)
  }

  const closing: ReloadResult = { outcome: 'refused', changed: [], restartRequired: [], problems: ['the gateway is closing'] }

  async function reloadNow(trigger: ReloadTrigger, changedFiles: readonly string[]): Promise<ReloadResult> {
    if (stopped) return closing
    const current = generations.current()
    let loaded: LoadedConfig
    let built: BuiltPipeline
    let restartRequired: string[]
    try {
      loaded = loadConfig(file, deps.env)
      restartRequired = restartRequiredKeys(current.loaded.config, loaded.config)
      if (restartRequired.length > 0) loaded = keepRunningValues(loaded, current.loaded.config)
      built = buildPipeline(loaded, deps.shared, current)
    } catch (error) {
      return refuse(trigger, problemsOf(error, file))
    }
    await waitForIssuers(built)
    const { pipeline, changed } = built
    if (stopped || generations.current() !== current) {
      // Closed meanwhile (or superseded): what was built is not used.
      for (const part of partsToClose(pipeline, current)) void Promise.resolve(part.close()).catch(() => undefined)
      return closing
    }

    // The TLS context and the pipeline change in the same tick: a handshake and the requests on
    // its connection are judged by one version.
    if (changed.includes('serverCertificate') || changed.includes('clientTrust')) deps.server.setSecureContext(pipeline.tlsMaterial.options)
    retirement.swap(pipeline)

    const crlChanged = trigger === 'sighup' || changedFiles.some((path) => watching.crlFiles.includes(path))
    if (crlChanged && !changed.includes('revocation') && pipeline.ownRevocation) {
      pipeline.ownRevocation.refreshCrls().catch((error: unknown) => logger.warn({ err: error }, 'CRL reload failed; the last good CRLs stay'))
    }
    watching = watchedPaths(loaded)
    watcher?.watch(watching)

    if (restartRequired.length > 0) {
      const detail = `restart required for ${restartRequired.join(', ')}: running values kept, the rest of ${file} applied`
      logger.warn({ trigger, restartRequired }, 'configuration reloaded in part; some settings need a restart')
      events.emit({ event: 'config.refused', reason: 'config.restart_required', detail })
    }
    const files = changedFiles.length > 0 ? `; files: ${changedFiles.join(', ')}` : ''
    events.emit({
      event: 'config.reloaded',
      reason: `reload.${trigger}`,
      detail: `${changed.length > 0 ? `changed: ${changed.join(', ')}` : 'no change'}${files}`,
    })
    logger.info({ trigger, changed, files: changedFiles }, 'configuration reloaded')
    deps.onApplied?.(pipeline, changed)
    return { outcome: 'reloaded', changed, restartRequired, problems: [] }
  }

  function reload(trigger: ReloadTrigger = 'requested', changedFiles: readonly string[] = []): Promise<ReloadResult> {
    const next = queue.then(() => reloadNow(trigger, changedFiles))
    queue = next.catch(() => undefined)
    return next
  }

  if (deps.pollIntervalMs > 0) {
    watcher = createFileWatcher(watching)
    watcher.start(deps.pollIntervalMs, (changed) => {
      if (!stopped) reload('file_changed', changed).catch((error: unknown) => logger.error({ err: error }, 'configuration reload failed'))
    })
  }

  return {
    reload,
    async stop() {
      stopped = true
      watcher?.close()
      await queue
    },
    closeParts: () => retirement.closeAll(),
  }
}
