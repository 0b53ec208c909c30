// What crosses the gateway, through a real TLS listener to a real upstream that behaves like
// the frameworks the audit named: it would read X_Forwarded_For as X-Forwarded-For, honour
// X-HTTP-Method-Override, and answer with Server, X-Powered-By, Via and a Location on its own origin.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { createProof, generateDpopKey, type DpopKey, type PartnerResponse } from '../../src/client/partner-client.ts'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'

interface Seen {
  readonly method: string
  readonly url: string
  readonly headers: IncomingHttpHeaders
  readonly rawHeaders: readonly string[]
}

/** Answers like a typical framework: fingerprinting headers, and URLs built from the Host it was sent. */
async function startFrameworkUpstream(): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = []
  const server: Server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders })
      res.setHeader('Server', 'Kestrel/8.0 (app-17.accounts.internal)')
      res.setHeader('X-Powered-By', 'ASP.NET')
      res.setHeader('X-AspNet-Version', '4.0.30319')
      res.setHeader('Via', '1.1 mesh-sidecar.accounts.internal')
      res.setHeader('Location', `http://${req.headers.host}${req.url!.split('?')[0]}/next?view=full`)
      res.setHeader('Content-Location', 'https://docs.example/accounts')
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{"account":"123"}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** The request headers as CGI, WSGI, Rack and PHP present them: `X_Forwarded_For` and `X-Forwarded-For` are one name. */
function cgiEnvironment(seen: Seen): Map<string, string[]> {
  const environment = new Map<string, string[]>()
  for (let i = 0; i < seen.rawHeaders.length; i += 2) {
    const name = `HTTP_${seen.rawHeaders[i]!.toUpperCase().replaceAll('-', '_')}`
    environment.set(name, [...(environment.get(name) ?? []), seen.rawHeaders[i + 1]!])
  }
  return environment
}

function rawHeaderNames(seen: Seen): string[] {
  return seen.rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase())
}

async function until(what: string, condition: () => boolean, limitMs = 15_000): Promise<void> {
  const deadline = Date.now() + limitMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('what the upstream receives and what the client gets back', () => {
  let upstream: Awaited<ReturnType<typeof startFrameworkUpstream>>
  let gw: TestGateway
  let key: DpopKey
  let token: string

  let policiesDir: string

  before(async () => {
    upstream = await startFrameworkUpstream()
    policiesDir = mkdtempSync(join(tmpdir(), 'fapi-gateway-policies-'))
    writeFileSync(
      join(policiesDir, 'routes.yaml'),
      stringify({
        routes: [
          { name: 'accounts-read', path: '/accounts/**', methods: ['GET'], upstream: 'data-api', scopes: ['accounts:read'] },
          { name: 'ledger-read', path: '/ledger/**', methods: ['GET'], upstream: 'data-api', upstreamPath: '/books', scopes: ['accounts:read'] },
        ],
      }),
    )
    gw = await startTestGateway({ policiesDir, config: { upstreams: { 'data-api': { url: `${upstream.url}/v1` } } } })
    key = await generateDpopKey('ES256')
    token = await gw.issuer.mint({ jkt: key.jkt })
  })
  after(async () => {
    await gw.close()
    await upstream.close()
    rmSync(policiesDir, { recursive: true, force: true })
  })

  /** A read token with a valid proof for GET `path` (the proof's htu has no query). */
  async function readAccount(path: string, extra: [string, string][] = []): Promise<PartnerResponse> {
    const proof = await createProof(key, { htm: 'GET', htu: gw.url(path.split('?')[0]!), accessToken: token })
    return gw.client().send('GET', path, [['authorization', `DPoP ${token}`], ['dpop', proof], ...extra])
  }

  async function refusalCount(reason: string): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${gw.gateway.adminPort}/metrics`)).text()
    const line = text.split('\n').find((l) => l.startsWith(`fapi_gateway_refusals_total{route="accounts-read",reason="${reason}"} `))
    return line ? Number(line.split(' ')[1]) : 0
  }

  async function expectRefused(send: () => Promise<PartnerResponse>, code: string, interactionId: string): Promise<void> {
    const before = upstream.seen.length
    const refusalsBefore = await refusalCount(code)
    const response = await send()
    assert.equal(response.status, 400, response.body)
    assert.deepEqual(response.json, { error: 'invalid_request', error_description: response.json?.error_description, code, interaction_id: interactionId })
    assert.equal(upstream.seen.length, before, 'nothing forwarded upstream')
    await until(`the ${code} event`, () => gw.log.events().some((e) => e.http?.request?.id === interactionId))
    const event = gw.log.events().find((e) => e.http?.request?.id === interactionId)!
    assert.equal(event.event.action, 'request.refused')
    assert.equal(event.event.reason, code)
    // Decided after authentication: the event names who tried.
    assert.equal(event.fapi?.client_id, 'partner-a')
    assert.equal(event.fapi?.route, 'accounts-read')
    assert.equal(await refusalCount(code), refusalsBefore + 1)
  }

  it("passes a plain read, and the upstream sees only the gateway's identity", async () => {
    const response = await readAccount('/accounts/123?page=2', [['x-custom', 'kept']])
    assert.equal(response.status, 200)
    const seen = upstream.seen.at(-1)!
    assert.equal(seen.method, 'GET')
    assert.equal(seen.url, '/v1/accounts/123?page=2')
    assert.deepEqual(cgiEnvironment(seen).get('HTTP_X_FAPI_GATEWAY_SUBJECT'), ['customer-1'])
    assert.equal(seen.headers['x-custom'], 'kept')
  })

  it('refuses underscore spellings of identity, forwarding and client-certificate headers (6)', async () => {
    for (const [name, value] of [
      ['X_Fapi_Gateway_Subject', 'admin'],
      ['X_Forwarded_For', '10.0.0.1'],
      ['x_client_cert', 'MIIB'],
      ['X_Custom', 'x'],
    ]) {
      const interactionId = `underscore-${name.toLowerCase()}`
      await expectRefused(
        () =>
          readAccount('/accounts/123', [
            [name!, value!],
            ['x-fapi-interaction-id', interactionId],
          ]),
        'GW_HEADER_UNDERSCORE',
        interactionId,
      )
    }
  })

  it('strips method and URL override headers: a read token cannot DELETE (7)', async () => {
    const overrides: [string, string][] = [
      ['X-HTTP-Method-Override', 'DELETE'],
      ['X-HTTP-Method', 'DELETE'],
      ['X-Method-Override', 'DELETE'],
      ['X-Original-Method', 'DELETE'],
      ['X-Original-URL', '/v1/admin/accounts/123'],
      ['X-Original-URI', '/v1/admin/accounts/123'],
      ['X-Rewrite-URL', '/v1/admin/accounts/123'],
    ]
    const response = await readAccount('/accounts/123', overrides)
    assert.equal(response.status, 200)
    const seen = upstream.seen.at(-1)!
    assert.equal(seen.method, 'GET')
    assert.equal(seen.url, '/v1/accounts/123')
    const names = rawHeaderNames(seen)
    for (const [name] of overrides) assert.ok(!names.includes(name.toLowerCase()), `${name} reached the upstream`)
  })

  it('refuses a _method query parameter (7)', async () => {
    for (const query of ['_method=DELETE', 'page=2&%5Fmethod=DELETE']) {
      const interactionId = `method-override-${query.length}`
      await expectRefused(() => readAccount(`/accounts/123?${query}`, [['x-fapi-interaction-id', interactionId]]), 'GW_METHOD_OVERRIDE', interactionId)
    }
  })

  it("keeps Server, X-Powered-By and Via inside and rewrites the upstream's own Location (9)", async () => {
    const response = await readAccount('/accounts/123')
    assert.equal(response.status, 200)
    for (const name of ['server', 'x-powered-by', 'x-aspnet-version', 'via']) assert.equal(response.headers[name], undefined, name)
    assert.equal(response.headers.location, gw.url('/accounts/123/next?view=full'))
    assert.equal(response.headers['content-location'], 'https://docs.example/accounts')
    assert.equal(response.headers['content-type'], 'application/json')
    assert.equal(response.body, '{"account":"123"}')
  })

  it("maps the upstream's Location back through the route's upstreamPath (9)", async () => {
    const response = await readAccount('/ledger/7')
    assert.equal(response.status, 200)
    assert.equal(upstream.seen.at(-1)!.url, '/v1/books/7')
    assert.equal(response.headers.location, gw.url('/ledger/7/next?view=full'))
  })
})

describe('underscoreHeaders: allow — what a CGI-style upstream reads', () => {
  let upstream: Awaited<ReturnType<typeof startFrameworkUpstream>>
  let gw: TestGateway

  before(async () => {
    upstream = await startFrameworkUpstream()
    gw = await startTestGateway({ config: { upstreams: { 'data-api': { url: upstream.url } }, forwarding: { underscoreHeaders: 'allow' } } })
  })
  after(async () => {
    await gw.close()
    await upstream.close()
  })

  it("forwards other underscore headers, but no spelling of the gateway's own headers reaches the upstream", async () => {
    const key = await generateDpopKey('ES256')
    const token = await gw.issuer.mint({ jkt: key.jkt })
    const proof = await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: token })
    const response = await gw.client().send('GET', '/accounts/1', [
      ['authorization', `DPoP ${token}`],
      ['dpop', proof],
      ['X_Fapi_Gateway_Subject', 'admin'],
      ['x_fapi_gateway_client_id', 'other-partner'],
      ['X_Forwarded_For', '10.0.0.1'],
      ['x_client_cert', 'MIIB'],
      ['X_HTTP_Method_Override', 'DELETE'],
      ['x_custom_thing', 'kept'],
    ])
    assert.equal(response.status, 200, response.body)
    const cgi = cgiEnvironment(upstream.seen.at(-1)!)
    assert.deepEqual(cgi.get('HTTP_X_FAPI_GATEWAY_SUBJECT'), ['customer-1'])
    assert.deepEqual(cgi.get('HTTP_X_FAPI_GATEWAY_CLIENT_ID'), ['partner-a'])
    assert.deepEqual(cgi.get('HTTP_X_FORWARDED_FOR'), ['127.0.0.1'])
    assert.equal(cgi.get('HTTP_X_CLIENT_CERT'), undefined)
    assert.equal(cgi.get('HTTP_X_HTTP_METHOD_OVERRIDE'), undefined)
    assert.deepEqual(cgi.get('HTTP_X_CUSTOM_THING'), ['kept'])
  })
})
