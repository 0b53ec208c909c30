// `fapi-gateway dev`: a development environment that stays up until Ctrl-C: the development
// issuer (HTTPS, JWKS, and a mint endpoint for `fapi-gateway token`) and, unless --no-gateway,
// the gateway in front of your plain-HTTP API or of a built-in sample one. The PKI already in
// the folder is kept, so configurations that use it keep working; gateway.yaml is rewritten
// each run to point at the running issuer.
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { stringify } from 'yaml'
import { loadConfig } from '../src/config/load.ts'
import { createLogger } from '../src/observability/log.ts'
import type { RunningGateway } from '../src/gateway.ts'
import { parseCommandArgs, parsePort, usageError } from './command-args.ts'
import { DEFAULT_DEV_DIR, findDevEnvFile, removeDevEnvFile, writeDevEnvFile } from './dev-env-file.ts'
import { DEMO_AUDIENCE, REPO_ROOT, devGatewayConfig, freePort } from './environment.ts'
import { startDevIssuer, type DevIssuer } from './issuer.ts'
import { chainPem, createDevPki, readDevPki, writeDevPki } from './pki.ts'
import { startDemoUpstream, type DemoUpstream } from './upstream.ts'

export const DEV_GATEWAY_PORT = 8443
export const DEV_ISSUER_PORT = 8444
/** Policies for "your own API": every path, DPoP- or certificate-bound tokens with api:read or api:write. */
export const EXAMPLE_POLICIES = join(REPO_ROOT, 'examples', 'protect-your-api', 'policies')

const USAGE = `usage: fapi-gateway dev [--upstream URL] [--dir DIR] [--policies DIR] [--port N] [--issuer-port N] [--no-gateway]

Runs a development environment until Ctrl-C (SIGINT) or SIGTERM. Not for production.

  --upstream URL    your plain-HTTP API, behind the policies of examples/protect-your-api/
                    (default: a built-in sample API behind policies/)
  --dir DIR         development PKI, gateway.yaml and dev-env.json (default ${DEFAULT_DEV_DIR}; a PKI already there is kept)
  --policies DIR    route policies instead of the default ones
  --port N          the gateway's port (default ${DEV_GATEWAY_PORT}; 0: any free port)
  --issuer-port N   the development issuer's port (default ${DEV_ISSUER_PORT}; 0: any free port)
  --no-gateway      the issuer alone, for a gateway started on your own configuration
                    (examples/protect-your-api/gateway.yaml uses this one)

Then 'fapi-gateway token' mints tokens from it and 'fapi-gateway request' sends requests through it.`

const OPTIONS = {
  upstream: { type: 'string' },
  dir: { type: 'string' },
  policies: { type: 'string' },
  port: { type: 'string' },
  'issuer-port': { type: 'string' },
  'no-gateway': { type: 'boolean' },
} as const

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Names the flag to change when a port is taken. */
async function onPort<T>(flag: string, port: number, start: () => Promise<T>): Promise<T> {
  try {
    return await start()
  } catch (error) {
    // The gateway reports its own port as a configuration problem (listener.port: … is already in use).
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE' || /EADDRINUSE|is already in use/.test(String((error as Error).message))) {
      throw new Error(`port ${port} on 127.0.0.1 is in use: choose another with ${flag} N (0: any free port)`)
    }
    throw error
  }
}

export async function runDevCommand(argv: readonly string[]): Promise<number> {
  const parsed = parseCommandArgs('dev', USAGE, argv, OPTIONS)
  if (typeof parsed === 'number') return parsed
  const { values, positionals } = parsed
  if (positionals.length > 0) return usageError('dev', `unexpected argument '${positionals[0]}'`)
  const port = parsePort(values.port, DEV_GATEWAY_PORT)
  const issuerPort = parsePort(values['issuer-port'], DEV_ISSUER_PORT)
  if (port === undefined) return usageError('dev', `--port: not a port number: '${values.port}'`)
  if (issuerPort === undefined) return usageError('dev', `--issuer-port: not a port number: '${values['issuer-port']}'`)
  const upstreamUrl = values.upstream
  if (upstreamUrl !== undefined && !['http:', 'https:'].includes(URL.parse(upstreamUrl)?.protocol ?? '')) {
    return usageError('dev', `--upstream: not an http:// or https:// URL: '${upstreamUrl}'`)
  }
  const dir = values.dir ?? DEFAULT_DEV_DIR
  const running = findDevEnvFile(dir)
  if (running && running.pid !== process.pid && isRunning(running.pid)) {
    throw new Error(`a development environment is already running from ${dir} (process ${running.pid}); stop it first or use --dir`)
  }

  let pki = readDevPki(dir)
  const pkiCreated = pki === undefined
  if (!pki) {
    pki = await createDevPki()
    writeDevPki(pki, dir)
  }
  const closers: (() => Promise<void>)[] = []
  const closeAll = async () => {
    removeDevEnvFile(dir)
    for (const close of closers.reverse()) await close().catch(() => undefined)
  }
  try {
    const mintSecret = randomBytes(32).toString('base64url')
    const issuer: DevIssuer = await onPort('--issuer-port', issuerPort, () =>
      startDevIssuer({ tls: pki.server, chainPem: chainPem(pki.server, pki.intermediate), audience: DEMO_AUDIENCE, port: issuerPort, mintSecret }),
    )
    closers.push(() => issuer.close())
    let sample: DemoUpstream | undefined
    if (upstreamUrl === undefined && !values['no-gateway']) {
      sample = await startDemoUpstream()
      closers.push(() => sample!.close())
    }
    const gatewayPort = port === 0 ? await freePort() : port
    const policiesDir = resolve(values.policies ?? (upstreamUrl !== undefined ? EXAMPLE_POLICIES : join(REPO_ROOT, 'policies')))
    const config = devGatewayConfig({
      port: gatewayPort,
      issuer,
      policiesDir,
      upstreamUrl: upstreamUrl ?? sample?.url ?? 'http://127.0.0.1:9000',
      upstreamName: upstreamUrl !== undefined ? 'my-api' : 'data-api',
    })
    const configFile = join(dir, 'gateway.yaml')
    writeFileSync(configFile, stringify({ ...config, log: { level: 'warn' } }))

    let gateway: RunningGateway | undefined
    if (!values['no-gateway']) {
      const { startGateway } = await import('../src/gateway.ts')
      const loaded = loadConfig(configFile, {})
      gateway = await onPort('--port', gatewayPort, () =>
        startGateway(loaded, { logger: createLogger('warn', process.stderr), env: {}, eventStream: process.stderr }),
      )
      closers.push(() => gateway!.close(1000))
    }
    const gatewayUrl = gateway ? `https://127.0.0.1:${gatewayPort}` : undefined
    writeDevEnvFile(dir, {
      ...(gatewayUrl && { gatewayUrl }),
      configFile: resolve(configFile),
      issuer: issuer.issuer,
      jwksUri: issuer.jwksUri,
      mintEndpoint: `${issuer.issuer}/mint`,
      mintSecret,
      audience: DEMO_AUDIENCE,
      caFile: resolve(dir, 'client-ca.crt'),
      partner: { certFile: resolve(dir, 'partnerA.crt'), keyFile: resolve(dir, 'partnerA.key') },
      pid: process.pid,
    })
    const shown = (path: string) => (relative(process.cwd(), path).startsWith('..') ? resolve(path) : relative(process.cwd(), path) || '.')
    // What to type next: the sample API's policies want accounts:read on /accounts/**; yours (the example's) api:read anywhere.
    const scope = upstreamUrl !== undefined || gateway === undefined ? ' --scope api:read' : ''
    const target = gateway === undefined ? `https://127.0.0.1:${DEV_GATEWAY_PORT}/` : upstreamUrl !== undefined ? '/' : '/accounts/123'
    console.log(
      [
        `fapi-gateway dev: development environment, not for production (Ctrl-C stops it)`,
        `  issuer   ${issuer.issuer} (JWKS ${issuer.jwksUri}, audience ${DEMO_AUDIENCE})`,
        gateway
          ? `  gateway  ${gatewayUrl} -> ${upstreamUrl ?? `${sample!.url} (built-in sample API)`}, policies ${shown(policiesDir)}; admin http://127.0.0.1:${gateway.adminPort}`
          : `  gateway  none (--no-gateway): start yours, e.g. node src/main.ts start --config examples/protect-your-api/gateway.yaml`,
        `  files    ${shown(dir)}/ (PKI ${pkiCreated ? 'created' : 'kept'}; gateway.yaml, dev-env.json; partner certificate partnerA.crt/.key)`,
        ``,
        `next, in another terminal:`,
        `  TOKEN=$(node src/main.ts token --dpop-key my-key.jwk${scope})`,
        `  node src/main.ts request GET ${target} --token "$TOKEN" --dpop-key my-key.jwk`,
      ].join('\n'),
    )
  } catch (error) {
    await closeAll()
    throw error
  }

  const signal = await new Promise<string>((resolveSignal) => {
    process.once('SIGINT', () => resolveSignal('SIGINT'))
    process.once('SIGTERM', () => resolveSignal('SIGTERM'))
  })
  console.log(`fapi-gateway dev: ${signal}, stopping`)
  await closeAll()
  return 0
}
