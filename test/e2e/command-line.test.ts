// The command line as operators know it from nginx, envoy and kubectl: --version and help on
// stdout with status 0, unknown commands and options named on stderr with status 2, and
// `config`, the effective configuration with defaults and environment applied, secrets masked.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse, stringify } from 'yaml'
import { createDevPki, writeDevPki } from '../../dev/pki.ts'

const PROJECT = join(import.meta.dirname, '..', '..')
const VERSION = (JSON.parse(readFileSync(join(PROJECT, 'package.json'), 'utf8')) as { version: string }).version

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

function run(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('FAPI_GATEWAY')))
  const child = spawn(process.execPath, ['src/main.ts', ...args], { cwd: PROJECT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

describe('the command line', () => {
  let dir: string
  let config: string

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fapi-gateway-cli-'))
    writeDevPki(await createDevPki(), join(dir, 'pki'))
    mkdirSync(join(dir, 'policies'))
    config = join(dir, 'gateway.yaml')
    writeFileSync(
      config,
      stringify({
        listener: {
          host: '127.0.0.1',
          publicBaseUrl: 'https://api.bank.example',
          tls: { certFile: 'pki/server-chain.crt', keyFile: 'pki/server.key', clientCaFile: 'pki/client-ca.crt' },
        },
        issuers: [{ name: 'bank', issuer: 'https://as.bank.example', jwksUri: 'https://as.bank.example/jwks', audience: 'https://api.bank.example' }],
        upstreams: { 'data-api': { url: 'http://127.0.0.1:9000' } },
        replay: { store: 'redis', redis: { url: 'redis://gateway:s3cret-in-url@redis.internal:6379' } },
        events: { http: { url: 'https://siem.internal/ingest', headers: { 'X-Api-Key': 'k3y-in-header' } } },
      }),
    )
    writeFileSync(
      join(dir, 'policies', 'accounts.yaml'),
      stringify({ routes: [{ name: 'accounts-read', path: '/accounts/**', methods: ['GET'], upstream: 'data-api', scopes: ['accounts:read'] }] }),
    )
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('--version and version print the version on stdout, status 0', async () => {
    for (const args of [['--version'], ['-V'], ['version']]) {
      const result = await run(args)
      assert.equal(result.code, 0, result.stderr)
      assert.equal(result.stdout, `fapi-gateway ${VERSION} (node ${process.version})\n`)
      assert.equal(result.stderr, '')
    }
  })

  it('--help, -h and help print the usage on stdout, status 0', async () => {
    for (const args of [['--help'], ['-h'], ['help'], ['start', '--help']]) {
      const result = await run(args)
      assert.equal(result.code, 0, result.stderr)
      assert.match(result.stdout, /^usage:\n/)
      assert.match(result.stdout, /fapi-gateway config \[--config FILE\]/)
      assert.equal(result.stderr, '')
    }
  })

  it('no command: the usage on stderr, status 2', async () => {
    const result = await run([])
    assert.equal(result.code, 2)
    assert.match(result.stderr, /^usage:\n/)
    assert.equal(result.stdout, '')
  })

  it('an unknown command or option is named on stderr, status 2', async () => {
    const command = await run(['strat'])
    assert.equal(command.code, 2)
    assert.equal(command.stderr, "fapi-gateway: unknown command 'strat'\nRun 'fapi-gateway --help' for usage.\n")
    assert.equal(command.stdout, '')
    const option = await run(['start', '--confg', 'x.yaml'])
    assert.equal(option.code, 2)
    assert.match(option.stderr, /^fapi-gateway: Unknown option '--confg'\nRun 'fapi-gateway --help' for usage\.\n$/)
  })

  it('config prints the effective configuration: defaults, environment overrides, policies, and no secret', async () => {
    const result = await run(['config', '--config', config], { FAPI_GATEWAY__LISTENER__PORT: '9443' })
    assert.equal(result.code, 0, result.stderr)
    assert.ok(result.stdout.startsWith(`# ${config}\n# listener.port: from the environment (FAPI_GATEWAY__LISTENER__PORT)\n`), result.stdout)
    const [main, policies] = result.stdout.split(`\n# ${join(dir, 'policies', 'accounts.yaml')}\n`)
    const effective = parse(main!) as {
      listener: { port: number; limits: { maxConnections: number } }
      dpop: { maxAgeSeconds: number }
      replay: { redis: { url: string } }
      events: { http: { headers: Record<string, string> } }
    }
    assert.equal(effective.listener.port, 9443, 'the environment override')
    assert.equal(effective.listener.limits.maxConnections, 10_000, 'a default the file did not set')
    assert.equal(effective.dpop.maxAgeSeconds, 60, 'a default of a section the file did not have')
    assert.equal(effective.replay.redis.url, 'redis://********:********@redis.internal:6379')
    assert.deepEqual(effective.events.http.headers, { 'X-Api-Key': '********' })
    assert.ok(!result.stdout.includes('s3cret-in-url') && !result.stdout.includes('k3y-in-header'), 'no secret in the dump')
    assert.deepEqual(
      (parse(policies!) as { routes: { name: string }[] }).routes.map((r) => r.name),
      ['accounts-read'],
    )
  })

  it('check-config prints warnings on stderr and still succeeds', async () => {
    const withRevocation = join(dir, 'with-revocation.yaml')
    writeFileSync(withRevocation, `${readFileSync(config, 'utf8')}revocation: {}\n`)
    const result = await run(['check-config', '--config', withRevocation])
    assert.equal(result.code, 0, result.stderr)
    assert.match(
      result.stderr,
      /^warning: .*with-revocation\.yaml: revocation\.default: certificates issued by the trusted CA "CN=fapi-gateway Dev Root CA, O=fapi-gateway dev" \(listener\.tls\.clientCaFile\)/,
    )
    assert.equal(result.stdout, `${withRevocation}: valid (1 routes)\n`)
  })

  it('start logs the version, and the same warnings, before anything else', async () => {
    const withRevocation = join(dir, 'with-revocation.yaml')
    const child = spawn(process.execPath, ['src/main.ts', 'start', '--config', withRevocation], {
      cwd: PROJECT,
      env: {
        ...process.env,
        FAPI_GATEWAY__LISTENER__PORT: '0',
        FAPI_GATEWAY__ADMIN__PORT: '0',
        FAPI_GATEWAY__LOG__LEVEL: 'info',
        FAPI_GATEWAY__REPLAY__STORE: 'memory',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    try {
      const lines: { msg?: string; version?: string; key?: string; level?: number }[] = []
      let buffered = ''
      const deadline = Date.now() + 30_000
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        buffered += chunk
        const complete = buffered.split('\n')
        buffered = complete.pop()!
        for (const line of complete) if (line.startsWith('{')) lines.push(JSON.parse(line))
      })
      const isWarning = (l: { key?: string; level?: number }) => l.level === 40 && l.key === 'revocation.default'
      while (!lines.some(isWarning)) {
        if (Date.now() > deadline || child.exitCode !== null) assert.fail(`no warning logged: ${JSON.stringify(lines)}`)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      assert.equal(lines[0]!.msg, 'fapi-gateway starting')
      assert.equal(lines[0]!.version, VERSION)
      const warning = lines.find(isWarning)!
      assert.match(warning.msg ?? '', /^revocation\.default: certificates issued by the trusted CA "CN=fapi-gateway Dev Root CA/)
    } finally {
      child.kill('SIGKILL')
    }
  })

  it('a port in use is named by its key: listener.port or admin.port, status 1', async () => {
    const { createServer } = await import('node:net')
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    const port = String((taken.address() as { port: number }).port)
    try {
      const env = { FAPI_GATEWAY__REPLAY__STORE: 'memory', FAPI_GATEWAY__LISTENER__HOST: '127.0.0.1' }
      const partner = await run(['start', '--config', config], { ...env, FAPI_GATEWAY__LISTENER__PORT: port, FAPI_GATEWAY__ADMIN__PORT: '0' })
      assert.equal(partner.code, 1, partner.stderr)
      assert.match(partner.stderr, new RegExp(`gateway\\.yaml: listener\\.port: 127\\.0\\.0\\.1:${port} is already in use by another process\n`))
      const admin = await run(['start', '--config', config], { ...env, FAPI_GATEWAY__LISTENER__PORT: '0', FAPI_GATEWAY__ADMIN__PORT: port })
      assert.equal(admin.code, 1, admin.stderr)
      assert.match(admin.stderr, new RegExp(`gateway\\.yaml: admin\\.port: 127\\.0\\.0\\.1:${port} is already in use by another process\n`))
      assert.ok(!/EADDRINUSE|    at /.test(partner.stderr + admin.stderr), 'no raw error code, no stack trace')
    } finally {
      taken.close()
    }
  })

  it('config refuses an invalid configuration like check-config, status 1', async () => {
    const result = await run(['config', '--config', config], { FAPI_GATEWAY__LISTENER__PORT: 'eighty' })
    assert.equal(result.code, 1)
    assert.match(result.stderr, /FAPI_GATEWAY__LISTENER__PORT \(environment\): listener\.port: must be a number, not the text "eighty"/)
    assert.equal(result.stdout, '')
  })
})
