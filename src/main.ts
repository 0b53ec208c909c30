// fapi-gateway command line: start | check-config | demo | certs
import { parseArgs } from 'node:util'
import { join } from 'node:path'
import { ConfigError, loadConfig } from './config/load.ts'
import { startGateway } from './gateway.ts'
import { createLogger } from './observability/log.ts'

const USAGE = `usage:
  fapi-gateway start [--config FILE]         run the gateway (FILE defaults to $FAPI_GATEWAY_CONFIG or ./fapi-gateway.yaml)
  fapi-gateway check-config [--config FILE]  validate the configuration and policies, then exit
  fapi-gateway demo                          run the gateway on a development setup and play a partner through it
  fapi-gateway certs [DIR]                   write a development PKI (default certs/dev)`

async function start(configFile: string, checkOnly: boolean): Promise<number> {
  const loaded = loadConfig(configFile)
  if (checkOnly) {
    console.log(`${loaded.file}: valid (${loaded.routes.length} routes)`)
    return 0
  }
  const logger = createLogger(loaded.config.log.level)
  const gateway = await startGateway(loaded, { logger })
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
