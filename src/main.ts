// fapi-gateway command line: start | check-config | config | demo | dev | token | request | certs | ca | conformance
import { parseArgs } from 'node:util'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import cluster from 'node:cluster'
import { ConfigError, loadConfig, resolveWorkers, type LoadedConfig } from './config/load.ts'
import { configWarnings, describeConfigWarning, type ConfigWarning } from './config/warnings.ts'
import { createLogger } from './observability/log.ts'
import type { Logger } from './types.ts'
import { createStdoutWriter, type StdoutWriter } from './observability/stdout.ts'
import type { RunningGateway } from './gateway.ts'
import { loadDevelopmentModule } from './development.ts'

const USAGE = `usage:
  fapi-gateway start [--config FILE]         run the gateway (FILE defaults to $FAPI_GATEWAY_CONFIG or ./fapi-gateway.yaml)
  fapi-gateway check-config [--config FILE]  validate the configuration and policies, then exit
  fapi-gateway config [--config FILE]        print the effective configuration and policies (defaults and environment applied, secrets masked)
  fapi-gateway demo                          run the gateway on a development setup and play a partner through it
  fapi-gateway dev [--upstream URL]          keep a development issuer and gateway running in front of your API (dev --help)
  fapi-gateway token --dpop-key FILE         mint a DPoP-bound (or --cert FILE: certificate-bound) token from it (token --help)
  fapi-gateway request [METHOD] URL [flags]  send one request with a fresh DPoP proof and print the answer (request --help)
  fapi-gateway certs [DIR]                   write a development PKI (default certs/dev)
  fapi-gateway ca <command> [flags]          run a partner CA: init, issue, list, revoke, crl, ocsp-responder (ca help)
  fapi-gateway conformance --config FILE     FAPI 2.0 self-assessment of a resource endpoint, with reports (conformance --help)
  fapi-gateway --version                     print the version
  fapi-gateway --help                        print this help`

const COMMANDS = ['start', 'check-config', 'config', 'demo', 'dev', 'token', 'request', 'certs', 'ca', 'conformance', 'help', 'version']

export function version(): string {
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  return version
}

/** A usage error: named on stderr with a pointer to the help, status 2 (as kubectl and git do). */
function usageError(message: string): number {
  console.error(`fapi-gateway: ${message}\nRun 'fapi-gateway --help' for usage.`)
  return 2
}

async function start(configFile: string, checkOnly: boolean): Promise<number> {
  const loaded = loadConfig(configFile)
  if (checkOnly) {
    // The certificates, keys and CA bundles as the listener, the upstream pools (and a reload) would use them.
    const { readTlsMaterial } = await import('./pipeline.ts')
    const { readUpstreamTls } = await import('./forward/upstream-tls.ts')
    readTlsMaterial(loaded)
    readUpstreamTls(loaded)
    if (loaded.config.authorizationServer) {
      // The legacy secrets (environment variables or files) as the façade reads them at start-up.
      const { checkFacadeConfig } = await import('./authorization-server/from-config.ts')
      checkFacadeConfig(loaded, process.env)
    }
    for (const warning of await warningsOf(loaded)) console.error(`warning: ${loaded.file}: ${describeConfigWarning(warning)}`)
    const partners = loaded.partners ? `, ${loaded.partners.entries.length} partners` : ''
    console.log(`${loaded.file}: valid (${loaded.routes.length} routes${partners})`)
    return 0
  }
  const stdout = createStdoutWriter(loaded.config.log.stdoutBufferBytes)
  try {
    const logger = createLogger(loaded.config.log.level, stdout.stream)
    if (cluster.isPrimary) {
      logger.info({ version: version(), node: process.version, config: loaded.file }, 'fapi-gateway starting')
      // Those of the configuration alone (dpop.nonce.mode) are logged by each gateway, on reload too.
      for (const warning of await revocationWarningsOf(loaded)) logger.warn({ key: warning.key }, describeConfigWarning(warning))
    }
    return await run(loaded, logger, stdout)
  } finally {
    await stdout.close()
  }
}

/** What is valid but probably not what the operator meant: printed by check-config, logged at start-up. */
async function warningsOf(loaded: LoadedConfig): Promise<ConfigWarning[]> {
  return [...configWarnings(loaded.config), ...(await revocationWarningsOf(loaded))]
}

async function revocationWarningsOf(loaded: LoadedConfig): Promise<ConfigWarning[]> {
  const { revocationWarnings } = await import('./revocation/from-config.ts')
  return revocationWarnings(loaded)
}

async function run(loaded: LoadedConfig, logger: Logger, stdout: StdoutWriter): Promise<number> {
  // SIGHUP reloads configuration, policies and certificates (docs/operations.md, "Rotation and reload"); taken
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
  const [{ startGateway }, { runPrimary, runWorker }] = await Promise.all([import('./gateway.ts'), import('./cluster.ts')])
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
  // The development commands too (dev/, not in the production image).
  if (argv[0] === 'dev') return (await loadDevelopmentModule(() => import('../dev/dev-command.ts'))).runDevCommand(argv.slice(1))
  if (argv[0] === 'token') return (await loadDevelopmentModule(() => import('../dev/token-command.ts'))).runTokenCommand(argv.slice(1))
  if (argv[0] === 'request') return (await loadDevelopmentModule(() => import('../dev/request-command.ts'))).runRequestCommand(argv.slice(1))
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'V' } },
    })
  } catch (error) {
    return usageError((error as Error).message.split('\n')[0]!.replace(/\. To specify a positional argument.*$/, ''))
  }
  const { positionals, values } = parsed
  const [command, ...rest] = positionals
  const configFile = values.config ?? process.env.FAPI_GATEWAY_CONFIG ?? 'fapi-gateway.yaml'
  if (values.version || command === 'version') {
    console.log(`fapi-gateway ${version()} (node ${process.version})`)
    return 0
  }
  if (values.help || command === 'help') {
    console.log(USAGE)
    return 0
  }
  if (command === undefined) {
    console.error(USAGE)
    return 2
  }
  if (!COMMANDS.includes(command)) return usageError(`unknown command '${command}'`)
  switch (command) {
    case 'start':
      return start(configFile, false)
    case 'check-config':
      return start(configFile, true)
    case 'config': {
      const { dumpConfig } = await import('./config/dump.ts')
      process.stdout.write(dumpConfig(loadConfig(configFile)))
      return 0
    }
    case 'demo':
      return (await loadDevelopmentModule(() => import('../dev/demo.ts'))).runDemo()
    case 'certs': {
      const { createDevPki, writeDevPki } = await loadDevelopmentModule(() => import('../dev/pki.ts'))
      const dir = rest[0] ?? join('certs', 'dev')
      writeDevPki(await createDevPki(), dir)
      console.log(`development PKI written to ${dir}/ (not for production)`)
      return 0
    }
    default:
      return usageError(`unknown command '${command}'`)
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
