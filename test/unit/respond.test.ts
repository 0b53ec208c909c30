import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { rawRefusal, refusalBody, sendRefusal, wwwAuthenticate, type ChallengeContext } from '../../src/respond.ts'
import { catalogue, type ErrorCode } from '../../src/errors.ts'

const ALGS = ['ES256', 'PS256', 'EdDSA']
const DPOP_BARE = 'DPoP algs="ES256 PS256 EdDSA"'

function context(fields: Partial<ChallengeContext> = {}): ChallengeContext {
  return { presentedScheme: undefined, acceptsDpop: true, acceptsBearer: true, scopes: [], dpopAlgs: ALGS, ...fields }
}

function described(code: ErrorCode): string {
  return `error_description="${catalogue[code].description}"`
}

test('GW_TOKEN_MISSING: no error parameter; every scheme the route accepts, DPoP with algs', () => {
  assert.deepEqual(wwwAuthenticate('GW_TOKEN_MISSING', context()), [DPOP_BARE, 'Bearer'])
  assert.deepEqual(wwwAuthenticate('GW_TOKEN_MISSING', context({ acceptsBearer: false })), [DPOP_BARE])
  assert.deepEqual(wwwAuthenticate('GW_TOKEN_MISSING', context({ acceptsDpop: false })), ['Bearer'])
  assert.deepEqual(wwwAuthenticate('GW_TOKEN_MISSING', context({ dpopAlgs: ['ES256'] })), ['DPoP algs="ES256"', 'Bearer'])
})

test('GW_TOKEN_DOWNGRADE with Bearer: the Bearer challenge carries invalid_token, the DPoP challenge only algs', () => {
  const bearer = `Bearer error="invalid_token", ${described('GW_TOKEN_DOWNGRADE')}`
  assert.deepEqual(wwwAuthenticate('GW_TOKEN_DOWNGRADE', context({ presentedScheme: 'Bearer' })), [DPOP_BARE, bearer])
  // A DPoP-only route still answers the scheme the client used.
  assert.deepEqual(wwwAuthenticate('GW_TOKEN_DOWNGRADE', context({ presentedScheme: 'Bearer', acceptsBearer: false })), [DPOP_BARE, bearer])
})

test('a token error with the DPoP scheme: the DPoP challenge carries it, the Bearer challenge is bare', () => {
  assert.deepEqual(wwwAuthenticate('GW_TOKEN_EXPIRED', context({ presentedScheme: 'DPoP' })), [
    `DPoP error="invalid_token", ${described('GW_TOKEN_EXPIRED')}, algs="ES256 PS256 EdDSA"`,
    'Bearer',
  ])
  // An mtls route does not offer DPoP, but answers the scheme the client used.
  assert.deepEqual(wwwAuthenticate('GW_BINDING_NOT_ALLOWED', context({ presentedScheme: 'DPoP', acceptsDpop: false })), [
    `DPoP error="invalid_token", ${described('GW_BINDING_NOT_ALLOWED')}, algs="ES256 PS256 EdDSA"`,
    'Bearer',
  ])
})

test('GW_DPOP_INVALID: the DPoP challenge carries invalid_dpop_proof and algs', () => {
  const dpop = `DPoP error="invalid_dpop_proof", ${described('GW_DPOP_INVALID')}, algs="ES256 PS256 EdDSA"`
  assert.deepEqual(wwwAuthenticate('GW_DPOP_INVALID', context({ presentedScheme: 'DPoP', acceptsBearer: false })), [dpop])
  assert.deepEqual(wwwAuthenticate('GW_DPOP_INVALID', context({ presentedScheme: 'DPoP' })), [dpop, 'Bearer'])
  // Even on a route that does not list DPoP, a proof error is a DPoP challenge.
  assert.deepEqual(wwwAuthenticate('GW_DPOP_INVALID', context({ presentedScheme: 'DPoP', acceptsDpop: false, acceptsBearer: false })), [dpop])
})

test('GW_DPOP_NONCE: use_dpop_nonce on the DPoP challenge (RFC 9449 §9)', () => {
  assert.deepEqual(wwwAuthenticate('GW_DPOP_NONCE', context({ presentedScheme: 'DPoP', acceptsBearer: false })), [
    `DPoP error="use_dpop_nonce", ${described('GW_DPOP_NONCE')}, algs="ES256 PS256 EdDSA"`,
  ])
})

test('GW_SCOPE_INSUFFICIENT: insufficient_scope with the scopes the route requires', () => {
  assert.deepEqual(
    wwwAuthenticate('GW_SCOPE_INSUFFICIENT', context({ presentedScheme: 'Bearer', acceptsDpop: false, scopes: ['payments:write', 'accounts:read'] })),
    [`Bearer error="insufficient_scope", ${described('GW_SCOPE_INSUFFICIENT')}, scope="payments:write accounts:read"`],
  )
  assert.deepEqual(wwwAuthenticate('GW_SCOPE_INSUFFICIENT', context({ presentedScheme: 'DPoP', scopes: ['accounts:read'] })), [
    `DPoP error="insufficient_scope", ${described('GW_SCOPE_INSUFFICIENT')}, scope="accounts:read", algs="ES256 PS256 EdDSA"`,
    'Bearer',
  ])
})

test('GW_TOKEN_MULTIPLE with no readable scheme: every challenge carries invalid_request (RFC 9449 §7.2)', () => {
  assert.deepEqual(wwwAuthenticate('GW_TOKEN_MULTIPLE', context()), [
    `DPoP error="invalid_request", ${described('GW_TOKEN_MULTIPLE')}, algs="ES256 PS256 EdDSA"`,
    `Bearer error="invalid_request", ${described('GW_TOKEN_MULTIPLE')}`,
  ])
})

test('refusals that are not about authentication carry no challenge', () => {
  const none = (Object.keys(catalogue) as ErrorCode[]).filter(
    (code) => catalogue[code].status >= 500 || [404, 405, 408, 413, 431].includes(catalogue[code].status),
  )
  assert.ok(none.includes('GW_ROUTE_UNKNOWN') && none.includes('GW_UPSTREAM_TIMEOUT') && none.includes('GW_REPLAY_STORE_UNAVAILABLE'))
  for (const code of none) {
    assert.deepEqual(wwwAuthenticate(code, context({ presentedScheme: 'DPoP' })), [], code)
    assert.deepEqual(wwwAuthenticate(code, context()), [], code)
  }
})

test('parameter values are quoted with " and \\ escaped', () => {
  const [bearer] = wwwAuthenticate('GW_SCOPE_INSUFFICIENT', context({ presentedScheme: 'Bearer', acceptsDpop: false, scopes: ['a"b', 'c\\d'] }))
  assert.equal(bearer, `Bearer error="insufficient_scope", ${described('GW_SCOPE_INSUFFICIENT')}, scope="a\\"b c\\\\d"`)
  const [dpop] = wwwAuthenticate('GW_TOKEN_MISSING', context({ acceptsBearer: false, dpopAlgs: ['"x\\'] }))
  assert.equal(dpop, 'DPoP algs="\\"x\\\\"')
})

test('refusalBody: the OAuth error when there is one, otherwise a status word', () => {
  assert.deepEqual(refusalBody('GW_TOKEN_EXPIRED', 'id-1'), {
    error: 'invalid_token',
    error_description: catalogue.GW_TOKEN_EXPIRED.description,
    code: 'GW_TOKEN_EXPIRED',
    interaction_id: 'id-1',
  })
  assert.equal(refusalBody('GW_TOKEN_MISSING', 'i').error, 'unauthorized')
  assert.equal(refusalBody('GW_ROUTE_UNKNOWN', 'i').error, 'not_found')
  assert.equal(refusalBody('GW_UPSTREAM_TIMEOUT', 'i').error, 'gateway_timeout')
  for (const code of Object.keys(catalogue) as ErrorCode[]) assert.match(refusalBody(code, 'i').error, /^[a-z_]+$/, code)
})

interface Answer {
  readonly status: number
  readonly rawHeaders: string[]
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

/** Serves one request with `handler` on a real server and returns what a real client read. */
async function exchange(handler: (res: http.ServerResponse) => void): Promise<Answer> {
  const server = http.createServer((_req, res) => handler(res))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const agent = new http.Agent({ keepAlive: true })
  try {
    const req = http.get({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, path: '/accounts', agent })
    const [res] = (await once(req, 'response')) as [http.IncomingMessage]
    let body = ''
    res.setEncoding('utf8')
    for await (const chunk of res) body += chunk
    return { status: res.statusCode!, rawHeaders: res.rawHeaders, headers: res.headers, body }
  } finally {
    agent.destroy()
    server.closeAllConnections()
    server.close()
  }
}

function headerValues(answer: Answer, name: string): string[] {
  const values: string[] = []
  for (let i = 0; i < answer.rawHeaders.length; i += 2) if (answer.rawHeaders[i]!.toLowerCase() === name) values.push(answer.rawHeaders[i + 1]!)
  return values
}

test('sendRefusal writes the status, the challenges, a no-store JSON body with exactly four keys', async () => {
  const answer = await exchange((res) => sendRefusal(res, 'GW_TOKEN_DOWNGRADE', context({ presentedScheme: 'Bearer' }), { 'x-fapi-interaction-id': 'c0ffee' }))
  assert.equal(answer.status, 401)
  assert.equal(answer.headers['content-type'], 'application/json')
  assert.equal(answer.headers['cache-control'], 'no-store')
  assert.equal(answer.headers['x-fapi-interaction-id'], 'c0ffee')
  assert.deepEqual(headerValues(answer, 'www-authenticate'), [DPOP_BARE, `Bearer error="invalid_token", ${described('GW_TOKEN_DOWNGRADE')}`])
  assert.equal(Number(answer.headers['content-length']), Buffer.byteLength(answer.body))
  const body = JSON.parse(answer.body) as Record<string, unknown>
  assert.deepEqual(Object.keys(body).sort(), ['code', 'error', 'error_description', 'interaction_id'])
  assert.deepEqual(body, {
    error: 'invalid_token',
    error_description: catalogue.GW_TOKEN_DOWNGRADE.description,
    code: 'GW_TOKEN_DOWNGRADE',
    interaction_id: 'c0ffee',
  })
  assert.equal(answer.headers.connection, 'keep-alive')
})

test('sendRefusal without a challenge sends no WWW-Authenticate; an absent interaction id is an empty string', async () => {
  const answer = await exchange((res) => sendRefusal(res, 'GW_ROUTE_UNKNOWN', context(), {}))
  assert.equal(answer.status, 404)
  assert.equal(answer.headers['www-authenticate'], undefined)
  assert.equal(answer.headers['cache-control'], 'no-store')
  assert.deepEqual(JSON.parse(answer.body), {
    error: 'not_found',
    error_description: catalogue.GW_ROUTE_UNKNOWN.description,
    code: 'GW_ROUTE_UNKNOWN',
    interaction_id: '',
  })
})

test('sendRefusal closes the connection after 408, 413 and 431', async () => {
  for (const code of ['GW_REQUEST_TIMEOUT', 'GW_BODY_TOO_LARGE', 'GW_HEADERS_TOO_LARGE'] as const) {
    const answer = await exchange((res) => sendRefusal(res, code, context(), { 'x-fapi-interaction-id': 'i' }))
    assert.equal(answer.status, catalogue[code].status, code)
    assert.equal(answer.headers.connection, 'close', code)
  }
})

test('sendRefusal after the headers were sent destroys the socket instead of answering twice', async () => {
  let serverRes: http.ServerResponse | undefined
  const server = http.createServer((_req, res) => {
    serverRes = res
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.write('partial', () => sendRefusal(res, 'GW_UPSTREAM_TIMEOUT', context(), { 'x-fapi-interaction-id': 'i' }))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  try {
    const req = http.get({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, path: '/', agent: false })
    const [res] = (await once(req, 'response')) as [http.IncomingMessage]
    assert.equal(res.statusCode, 200)
    res.on('error', () => {})
    let body = ''
    res.on('data', (chunk: Buffer) => (body += chunk))
    await new Promise((resolve) => res.on('close', resolve))
    assert.equal(res.complete, false)
    assert.equal(body, 'partial')
    assert.equal(serverRes!.destroyed, true)
  } finally {
    server.closeAllConnections()
    server.close()
  }
})

test('rawRefusal: the same JSON answer as bytes for a request Node could not parse, with its own interaction id, closing the connection', () => {
  const { bytes, interactionId } = rawRefusal('GW_HEADERS_TOO_LARGE', Date.UTC(2026, 11, 7))
  const [head, body] = bytes.split('\r\n\r\n')
  const lines = head!.split('\r\n')
  assert.equal(lines[0], 'HTTP/1.1 431 Request Header Fields Too Large')
  assert.ok(lines.includes('Date: Mon, 07 Dec 2026 00:00:00 GMT'))
  assert.ok(lines.includes('Connection: close') && lines.includes('Cache-Control: no-store') && lines.includes(`X-Fapi-Interaction-Id: ${interactionId}`))
  assert.ok(lines.includes(`Content-Length: ${Buffer.byteLength(body!)}`))
  assert.deepEqual(JSON.parse(body!), refusalBody('GW_HEADERS_TOO_LARGE', interactionId))
  assert.match(rawRefusal('GW_REQUEST_TIMEOUT', 0).bytes, /^HTTP\/1\.1 408 Request Timeout\r\n/)
  assert.match(rawRefusal('GW_REQUEST_MALFORMED', 0).bytes, /^HTTP\/1\.1 400 Bad Request\r\n/)
})
