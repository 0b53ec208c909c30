// fapi-gateway command line: start | check-config | demo | certs
import { parseArgs } from 'node:util'
import { join } from 'node:path'
import cluster from 'node:cluster'
import { ConfigError, loadConfig, resolveWorkers, type LoadedConfig } from './config/load.ts'
import { createLogger } from './observability/log.ts'
import type { Logger } from './types.ts'
import { createStdoutWriter, type StdoutWriter } from './observability/stdout.ts'
import type { RunningGateway } from './gateway.ts'

const USAGE = `usage:
  fapi-gateway start [--config FILE]         run the gateway (FILE defaults to $FAPI_GATEWAY_CONFIG or ./fapi-gateway.yaml)
  fapi-gateway check-config [--config FILE]  validate the configuration and policies, then exit
  fapi-gateway demo                          run the gateway on a development setup and play a partner through it
  fapi-gateway certs [DIR]                   write a development PKI (default certs/dev)
  fapi-gateway ca <command> [flags]          run a partner CA: init, issue, list, revoke, crl, ocsp-responder (ca help)
  fapi-gateway conformance --config FILE     FAPI 2.0 self-assessment of a resource endpoint, with reports (conformance --help)`

async function start(configFile: string, checkOnly: boolean): Promise<number> {
  const loaded = loadConfig(configFile)
  if (checkOnly) {
    // The certificate, key and CA bundles as the listener (and a reload) would use them.
    const { readTlsMaterial } = await import('./reload/pipeline.ts')
    readTlsMaterial(loaded)
    const { configWarnings, describeConfigWarning } = await import('./config/warnings.ts')
    for (const warning of configWarnings(loaded.config)) console.error(`${loaded.file}: warning: ${describeConfigWarning(warning)}`)
    console.log(`${loaded.file}: valid (${loaded.routes.length} routes)`)
    return 0
  }
  const stdout = createStdoutWriter(loaded.config.log.stdoutBufferBytes)
  try {
    return await run(loaded, createLogger(loaded.config.log.level, stdout.stream), stdout)
  } finally {
    await stdout.close()
  }
}

async function run(loaded: LoadedConfig, logger: Logger, stdout: StdoutWriter): Promise<number> {
  // SIGHUP reloads configuration, policies and certificates (README "Rotation and reload"); taken
  // over at once, since Node's default for it is to exit. In a primary it is forwarded to the workers.
  let running: RunningGateway | undefined
  let reloadRequested = false
  const reloadOnSighup = () => {
    if (!running) return void (reloadRequested = true)
    running.reload('sighup').catch((error: unknown) => logger.error({ err: error }, 'reload failed'))
  }
  process.on('SIGHUP', reloadOnSighup)
  const workers = resolveWorkers(loaded.config.workers)
  // Loaded here so that the other commands (ca, certs) start without the gateway's modules.
  const [{ startGateway }, { runPrimary, runWorker }] = await Promise.all([import('./gateway.ts'), import('./server/cluster.ts')])
  if (workers > 1 && cluster.isPrimary) {
    await runPrimary(loaded, workers, logger, stdout)
    return 0
  }
  const gateway = cluster.isWorker ? await runWorker(loaded, logger, stdout) : await startGateway(loaded, { logger, stdout })
  running = gateway
  if (reloadRequested) reloadOnSighup()
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down')
      gateway.close().then(resolve, resolve)
    }
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
  })
  return 0
}

async function main(argv: string[]): Promise<number> {
  // `ca` has flags of its own, parsed by src/ca/cli.ts.
  if (argv[0] === 'ca') return (await import('./ca/cli.ts')).runCaCli(argv.slice(1))
  // `conformance` too (--out, --format, --dev, --mode), by src/conformance/cli.ts.
  if (argv[0] === 'conformance') return (await import('./conformance/cli.ts')).runConformanceCommand(argv.slice(1))
  const { positionals, values } = parseArgs({ args: argv, allowPositionals: true, options: { config: { type: 'string' }, help: { type: 'boolean' } } })
  const [command, ...rest] = positionals
  const configFile = values.config ?? process.env.FAPI_GATEWAY_CONFIG ?? 'fapi-gateway.yaml'
  switch (values.help ? 'help' : command) {
    case 'start': return start(configFile, false)
    case 'check-config': return start(configFile, true)
    case 'demo': return (await import('./dev/demo.ts')).runDemo()
    case 'certs': {
      const { createDevPki, writeDevPki } = await import('./dev/pki.ts')
      const dir = rest[0] ?? join('certs', 'dev')
      writeDevPki(await createDevPki(), dir)
      console.log(`development PKI written to ${dir}/ (not for production)`)
      return 0
    }
    default:
      console.error(USAGE)
      return command === undefined || values.help ? 0 : 2
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof ConfigError) console.error(error.message)
    else console.error(`fapi-gateway: ${error instanceof Error ? error.message : String(error)}`)
    process.exit(1)
  },
)
