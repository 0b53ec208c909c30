// fapi-gateway dev, token and request: the development environment a developer integrating with
// the gateway keeps running, the tokens it mints, the requests sent through it; each command's
// usage and errors; and the demo, which must leave certs/dev/ alone.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { REPO_ROOT, freePort } from '../../dev/environment.ts'
import { createDevPki, writeDevPki } from '../../dev/pki.ts'
import type { DevEnvFile } from '../../dev/dev-env-file.ts'
import { MAIN, runCli, type LongRunning, startShell } from '../support/cli.ts'
import { spawnGateway, type GatewayProcess } from '../support/gateway-process.ts'

describe('dev, token and request: usage and errors', () => {
  let empty: string
  before(() => {
    empty = mkdtempSync(join(tmpdir(), 'fapi-gateway-devcli-'))
  })
  after(() => rmSync(empty, { recursive: true, force: true }))

  it("--help prints the command's usage on stdout, status 0", async () => {
    for (const command of ['dev', 'token', 'request']) {
      const result = await runCli([command, '--help'])
      assert.equal(result.code, 0, result.stderr)
      assert.ok(result.stdout.startsWith(`usage: fapi-gateway ${command} `), result.stdout)
      assert.equal(result.stderr, '')
    }
    const help = await runCli(['--help'])
    for (const command of ['dev', 'token', 'request']) assert.match(help.stdout, new RegExp(`^  fapi-gateway ${command} `, 'm'))
  })

  it('an unknown option or a wrong combination is named on stderr, status 2', async () => {
    const cases: [string[], string][] = [
      [['dev', '--bogus'], "fapi-gateway dev: Unknown option '--bogus'"],
      [['token', '--bogus'], "fapi-gateway token: Unknown option '--bogus'"],
      [['request', '/x', '--bogus'], "fapi-gateway request: Unknown option '--bogus'"],
      [['dev', '--port', 'eighty'], "fapi-gateway dev: --port: not a port number: 'eighty'"],
      [['dev', '--upstream', 'ftp://127.0.0.1/'], "fapi-gateway dev: --upstream: not an http:// or https:// URL: 'ftp://127.0.0.1/'"],
      [['token'], 'fapi-gateway token: give exactly one of --dpop-key FILE and --cert FILE'],
      [['token', '--dpop-key', 'k.jwk', '--cert', 'c.crt'], 'fapi-gateway token: give exactly one of --dpop-key FILE and --cert FILE'],
      [['request'], 'fapi-gateway request: a URL is needed'],
      [['request', '/x', '--cert', 'c.crt'], 'fapi-gateway request: --cert and --key go together'],
      [['request', '/x', '--proof-out', 'a', '--reuse-proof', 'b'], 'fapi-gateway request: give at most one of --proof-out and --reuse-proof'],
    ]
    for (const [args, message] of cases) {
      const result = await runCli(args, { cwd: empty })
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`)
      assert.equal(result.stderr, `${message}\nRun 'fapi-gateway ${args[0]} --help' for usage.\n`)
      assert.equal(result.stdout, '')
    }
  })

  it('with no development environment running, token and request say in one line how to start one', async () => {
    for (const args of [
      ['token', '--dpop-key', 'k.jwk'],
      ['request', '/accounts/1'],
    ]) {
      const result = await runCli(args, { cwd: empty })
      assert.equal(result.code, 1, result.stderr)
      assert.match(
        result.stderr,
        /^fapi-gateway: no development environment is running \(no \S+dev-env\.json\): start one with 'fapi-gateway dev' \(npm run dev\)\n$/,
      )
      assert.equal(result.stdout, '')
    }
    assert.ok(!existsSync(join(empty, 'k.jwk')), 'no key is created for nothing')
  })

  it('with an environment that was stopped without notice, they name the address that does not answer', async () => {
    const dir = join(empty, 'stale')
    writeDevPki(await createDevPki(), dir)
    const port = await freePort()
    const stale: DevEnvFile = {
      gatewayUrl: `https://127.0.0.1:${port}`,
      configFile: join(dir, 'gateway.yaml'),
      issuer: `https://127.0.0.1:${port}`,
      jwksUri: `https://127.0.0.1:${port}/jwks`,
      mintEndpoint: `https://127.0.0.1:${port}/mint`,
      mintSecret: 'x',
      audience: 'https://api.bank.example',
      caFile: join(dir, 'client-ca.crt'),
      partner: { certFile: join(dir, 'partnerA.crt'), keyFile: join(dir, 'partnerA.key') },
      pid: 0,
    }
    writeFileSync(join(dir, 'dev-env.json'), JSON.stringify(stale))
    for (const args of [
      ['token', '--cert', join(dir, 'partnerA.crt'), '--dir', dir],
      ['request', '/accounts/1', '--dir', dir],
    ]) {
      const result = await runCli(args, { cwd: empty })
      assert.equal(result.code, 1, result.stderr)
      assert.equal(
        result.stderr,
        `fapi-gateway: the development environment in ${dir} does not answer at https://127.0.0.1:${port} (ECONNREFUSED): start it with 'fapi-gateway dev' (npm run dev)\n`,
      )
    }
  })

  it('dev names the flag to change when a port is taken, and removes what it started', async () => {
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    const port = (taken.address() as AddressInfo).port
    try {
      for (const [flag, other] of [
        ['--issuer-port', '--port'],
        ['--port', '--issuer-port'],
      ] as const) {
        const dir = join(empty, `busy${flag}`)
        const result = await runCli(['dev', flag, String(port), other, '0', '--dir', dir], { cwd: empty })
        assert.equal(result.code, 1, result.stdout)
        assert.equal(result.stderr, `fapi-gateway: port ${port} on 127.0.0.1 is in use: choose another with ${flag} N (0: any free port)\n`)
        assert.ok(!existsSync(join(dir, 'dev-env.json')))
      }
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()))
    }
  })

  it('request with a DPoP key file that does not exist says which, and how to make it', async () => {
    const result = await runCli(['request', 'https://127.0.0.1:1/x', '--dpop-key', 'missing.jwk'], { cwd: empty })
    assert.equal(result.code, 1)
    assert.equal(
      result.stderr,
      "fapi-gateway: DPoP key file missing.jwk does not exist (the 'token' command creates it: fapi-gateway token --dpop-key missing.jwk)\n",
    )
  })
})

describe('dev --no-gateway: the issuer alone, for your own gateway configuration (examples/protect-your-api)', () => {
  let folder: string
  let dev: LongRunning
  let env: DevEnvFile
  let gateway: GatewayProcess
  let api: Server
  let baseUrl: string
  let configFile: string
  const received: { method: string; url: string; body: string; note: string | undefined }[] = []
  const cli = (args: string[]) => runCli(args, { cwd: folder })

  before(async () => {
    folder = mkdtempSync(join(tmpdir(), 'fapi-gateway-devenv-'))
    api = createServer((req, res) => {
      let body = ''
      req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk))
      req.on('end', () => {
        received.push({ method: req.method ?? '', url: req.url ?? '', body, note: req.headers['x-note'] as string | undefined })
        res.end('from my API\n')
      })
    })
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve))
    dev = await startShell(`"${process.execPath}" "${MAIN}" dev --no-gateway --port 0 --issuer-port 0`, folder, 'next, in another terminal:')
    env = JSON.parse(readFileSync(join(folder, 'certs', 'dev', 'dev-env.json'), 'utf8')) as DevEnvFile
    assert.equal(env.gatewayUrl, undefined)

    // The example as a developer copies it next to certs/dev/, pointed at this issuer and this API.
    cpSync(join(REPO_ROOT, 'examples'), join(folder, 'examples'), { recursive: true })
    configFile = join(folder, 'examples', 'protect-your-api', 'gateway.yaml')
    writeFileSync(
      configFile,
      readFileSync(configFile, 'utf8')
        .replaceAll('https://127.0.0.1:8444', env.issuer)
        .replace('http://127.0.0.1:9000', `http://127.0.0.1:${(api.address() as AddressInfo).port}`),
    )
    const port = await freePort()
    baseUrl = `https://127.0.0.1:${port}`
    gateway = await spawnGateway(configFile, { FAPI_GATEWAY__LISTENER__PORT: String(port), FAPI_GATEWAY__LISTENER__PUBLIC_BASE_URL: baseUrl })
  })

  after(async () => {
    await gateway?.stop()
    await dev?.stop()
    api.closeAllConnections()
    await new Promise<void>((resolve) => api.close(() => resolve()))
    rmSync(folder, { recursive: true, force: true })
  })

  it('the example configuration is valid', async () => {
    const result = await cli(['check-config', '--config', join('examples', 'protect-your-api', 'gateway.yaml')])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /gateway\.yaml: valid \(2 routes\)\n$/)
  })

  it('a certificate-bound token, sent over mTLS with the partner certificate: 200', async () => {
    const token = await cli(['token', '--cert', 'certs/dev/partnerA.crt', '--scope', 'api:read'])
    assert.equal(token.code, 0, token.stderr)
    const result = await cli([
      'request',
      `${baseUrl}/reports/7?year=2026`,
      '--token',
      token.stdout.trim(),
      '--cert',
      'certs/dev/partnerA.crt',
      '--key',
      'certs/dev/partnerA.key',
    ])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /^HTTP 200 OK\nx-fapi-interaction-id: \S+\n\nfrom my API\n$/)
    assert.equal(received.at(-1)!.url, '/reports/7?year=2026')
    const without = await cli(['request', `${baseUrl}/reports/7`, '--token', token.stdout.trim()])
    assert.equal(without.code, 1)
    assert.match(without.stdout, /^HTTP 401 Unauthorized\n/)
    assert.match(without.stdout, /^www-authenticate: Bearer error="invalid_token"/m)
  })

  it('a DPoP-bound token: POST with a body and a header with api:write; 403 insufficient_scope with api:read only', async () => {
    const writer = await cli(['token', '--dpop-key', 'writer.jwk', '--scope', 'api:write'])
    assert.equal(writer.code, 0, writer.stderr)
    const before = received.length
    const posted = await cli([
      'request',
      'POST',
      `${baseUrl}/orders`,
      '--token',
      writer.stdout.trim(),
      '--dpop-key',
      'writer.jwk',
      '--data',
      '{"n":1}',
      '--header',
      'X-Note: hello',
    ])
    assert.equal(posted.code, 0, posted.stdout + posted.stderr)
    assert.deepEqual(received.slice(before), [{ method: 'POST', url: '/orders', body: '{"n":1}', note: 'hello' }])

    const reader = await cli(['token', '--dpop-key', 'writer.jwk', '--scope', 'api:read'])
    assert.equal(reader.stderr, '', 'the existing key is used, not replaced')
    const refused = await cli(['request', `${baseUrl}/orders`, '--data', '{"n":2}', '--token', reader.stdout.trim(), '--dpop-key', 'writer.jwk'])
    assert.equal(refused.code, 1)
    assert.match(refused.stdout, /^HTTP 403 Forbidden\n/)
    assert.match(refused.stdout, /^www-authenticate: DPoP error="insufficient_scope"/m)
    assert.equal(received.length, before + 1, 'nothing more reached the API')
  })

  it('a gateway that requires DPoP nonces: request sends the request once more, with the nonce it was given', async () => {
    const port = await freePort()
    const url = `https://127.0.0.1:${port}`
    const strict = await spawnGateway(configFile, {
      FAPI_GATEWAY__LISTENER__PORT: String(port),
      FAPI_GATEWAY__LISTENER__PUBLIC_BASE_URL: url,
      FAPI_GATEWAY__DPOP__NONCE__MODE: 'required',
      FAPI_GATEWAY_NONCE_SECRET: 'development-nonce-secret-of-32-bytes!',
    })
    try {
      const token = await cli(['token', '--dpop-key', 'nonce.jwk', '--scope', 'api:read'])
      const before = received.length
      const result = await cli(['request', `${url}/n`, '--token', token.stdout.trim(), '--dpop-key', 'nonce.jwk', '--proof-out', 'nonce-proof.jwt'])
      assert.equal(result.code, 0, result.stdout + result.stderr)
      assert.equal(result.stderr, 'the server asked for a DPoP nonce: sent again with a proof that has it\n')
      assert.match(result.stdout, /^HTTP 200 OK\ndpop-nonce: \S+\nx-fapi-interaction-id: \S+\n\nfrom my API\n$/)
      assert.equal(received.length, before + 1)
      const saved = readFileSync(join(folder, 'nonce-proof.jwt'), 'utf8').trim()
      assert.equal(
        typeof (JSON.parse(Buffer.from(saved.split('.')[1]!, 'base64url').toString()) as { nonce?: unknown }).nonce,
        'string',
        'the proof saved is the one sent',
      )
    } finally {
      await strict.stop()
    }
  })

  it('a request by path needs the gateway of `dev`, which --no-gateway does not run', async () => {
    const result = await cli(['request', '/orders'])
    assert.equal(result.code, 1)
    assert.equal(result.stderr, 'fapi-gateway: the development environment in certs/dev runs without a gateway (--no-gateway): give the full URL of yours\n')
  })

  it('the mint endpoint answers only with the secret of dev-env.json, and only for a well-formed request', async () => {
    const agent = new Agent({ connect: { ca: readFileSync(env.caFile, 'utf8') } })
    try {
      const mint = async (authorization: string, body: unknown) => {
        const response = await request(env.mintEndpoint, { method: 'POST', dispatcher: agent, headers: { authorization }, body: JSON.stringify(body) })
        return { status: response.statusCode, body: (await response.body.json()) as Record<string, unknown> }
      }
      const jkt = 'A'.repeat(43)
      assert.deepEqual(await mint('Bearer wrong', { jkt }), { status: 401, body: { error: 'invalid_client' } })
      assert.equal((await mint(`Bearer ${env.mintSecret}`, { jkt, x5t: jkt })).status, 400)
      assert.equal((await mint(`Bearer ${env.mintSecret}`, { jkt: 'short' })).status, 400)
      assert.equal((await mint(`Bearer ${env.mintSecret}`, { jkt, admin: true })).status, 400)
      const ok = await mint(`Bearer ${env.mintSecret}`, { jkt })
      assert.equal(ok.status, 200)
      assert.equal(ok.body.token_type, 'DPoP')
    } finally {
      await agent.close()
    }
  })

  it('a second dev on the same folder is refused while the first runs; after it stops, a new one keeps the PKI', async () => {
    const second = await cli(['dev', '--no-gateway', '--issuer-port', '0'])
    assert.equal(second.code, 1)
    assert.match(second.stderr, /^fapi-gateway: a development environment is already running from certs\/dev \(process \d+\); stop it first or use --dir\n$/)

    const partner = readFileSync(join(folder, 'certs', 'dev', 'partnerA.crt'), 'utf8')
    assert.equal((await dev.stop()).code, 0)
    dev = await startShell(`"${process.execPath}" "${MAIN}" dev --no-gateway --issuer-port 0`, folder, 'next, in another terminal:')
    assert.match(dev.stdout(), /PKI kept/)
    assert.equal(readFileSync(join(folder, 'certs', 'dev', 'partnerA.crt'), 'utf8'), partner)
  })
})

describe('the demo', () => {
  it('leaves certs/dev/ alone: a configuration may be using it', async () => {
    const serverCert = join(REPO_ROOT, 'certs', 'dev', 'server.crt')
    const before = existsSync(serverCert) ? readFileSync(serverCert, 'utf8') : undefined
    const result = await runCli(['demo'])
    assert.equal(result.code, 0, result.stdout + result.stderr)
    assert.equal(existsSync(serverCert) ? readFileSync(serverCert, 'utf8') : undefined, before)
    // The façade act: a token through the gateway used, and each way around its binding refused; the
    // authorization-code flow through the legacy login pages to the data API, and each attack on it refused.
    for (const row of [
      /^token through the gateway, used +200 +200 +ok$/m,
      /^legacy token, gateway bypassed +401 invalid_token +401 invalid_token +ok$/m,
      /^gateway token, another DPoP key +401 invalid_token +401 invalid_token +ok$/m,
      /^client_secret_basic at gateway +401 invalid_client +401 invalid_client +ok$/m,
      /^code flow through legacy login, used +200 +200 +ok$/m,
      /^code-flow token, another DPoP key +401 invalid_token +401 invalid_token +ok$/m,
      /^another partner's refresh token +400 invalid_grant +400 invalid_grant +ok$/m,
      /^authorization code used twice +400 invalid_grant +400 invalid_grant +ok$/m,
      /^wrong PKCE code_verifier +400 invalid_grant +400 invalid_grant +ok$/m,
      /^another client's request_uri +400 invalid_request_uri +400 invalid_request_uri +ok$/m,
    ])
      assert.match(result.stdout, row)
    assert.doesNotMatch(result.stdout, /FAIL/)
    assert.match(result.stdout, /^(\d+)\/\1 scenarios as expected/m)
  })
})
