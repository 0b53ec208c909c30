// What reaches the browser, read off a real node:http server: 303 redirects with no-store and
// no-referrer, error pages that are plain, framed by nobody and echo nothing unescaped, and never a
// CORS header (FAPI 2.0 SP §5.2.3-3).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import { request } from 'undici'
import { writeBrowserAnswer, type BrowserAnswer } from '../../../../src/authorization-server/front-channel/browser-answer.ts'
import { answerAuthorizationRequest } from '../../../../src/authorization-server/front-channel/authorization-endpoint.ts'
import { OAuthError } from '../../../../src/authorization-server/errors.ts'
import { authorizationSettings, codePartner, frontChannelState, push, registryOf } from '../../../support/front-channel.ts'

let answerNext: (req: IncomingMessage) => Promise<{ answer: BrowserAnswer; headers: Record<string, string> }>
const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  answerNext(req).then(({ answer, headers }) => writeBrowserAnswer(res, answer, headers))
})
server.listen(0, '127.0.0.1')
await once(server, 'listening')
const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
after(() => server.close())

async function fetchAnswer(
  answer: BrowserAnswer,
  headers: Record<string, string>,
  method: 'GET' | 'OPTIONS' = 'GET',
  requestHeaders: Record<string, string> = {},
) {
  answerNext = async () => ({ answer, headers })
  const response = await request(`${base}/oauth2/authorize`, { method, headers: requestHeaders })
  return { status: response.statusCode, headers: response.headers, body: await response.body.text() }
}

function corsHeaders(headers: Record<string, unknown>): string[] {
  return Object.keys(headers).filter((name) => name.startsWith('access-control-'))
}

test('a redirect is a 303 with Location, no-store and no-referrer, and never a CORS header', async () => {
  const location = 'https://legacy.bank.example/auth?client_id=gw&state=s%20t'
  const answer = await fetchAnswer({ kind: 'redirect', location }, { 'x-fapi-interaction-id': 'id-1', 'Access-Control-Allow-Origin': '*' })
  assert.equal(answer.status, 303)
  assert.equal(answer.headers.location, location)
  assert.equal(answer.headers['cache-control'], 'no-store')
  assert.equal(answer.headers['referrer-policy'], 'no-referrer')
  assert.equal(answer.headers['strict-transport-security'], 'max-age=31536000')
  assert.equal(answer.headers['x-fapi-interaction-id'], 'id-1')
  assert.equal(answer.headers['content-length'], '0')
  assert.deepEqual(corsHeaders(answer.headers), [])
  assert.equal(answer.body, '')
})

test('an error page: the catalogue status, plain HTML naming the error and interaction id, escaped, no detail, not frameable', async () => {
  const error = new OAuthError('AS_REQUEST_URI_INVALID', { detail: 'request_uri: secret-detail <b>' })
  const answer = await fetchAnswer({ kind: 'error-page', error }, { 'x-fapi-interaction-id': '<script>alert(1)</script>' })
  assert.equal(answer.status, 400)
  assert.equal(answer.headers['content-type'], 'text/html; charset=utf-8')
  assert.equal(answer.headers['content-security-policy'], "default-src 'none'; frame-ancestors 'none'")
  assert.equal(answer.headers['x-frame-options'], 'DENY')
  assert.equal(answer.headers['x-content-type-options'], 'nosniff')
  assert.equal(answer.headers['cache-control'], 'no-store')
  assert.equal(answer.headers['referrer-policy'], 'no-referrer')
  assert.equal(answer.headers.location, undefined)
  assert.deepEqual(corsHeaders(answer.headers), [])
  assert.match(answer.body, /^<!doctype html>/)
  assert.match(answer.body, /<code>invalid_request_uri<\/code> \(<code>AS_REQUEST_URI_INVALID<\/code>\)/)
  assert.match(answer.body, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/)
  assert.doesNotMatch(answer.body, /<script>/)
  assert.doesNotMatch(answer.body, /secret-detail/)
  assert.equal(Number(answer.headers['content-length']), Buffer.byteLength(answer.body))
})

test('an error page takes its status from the catalogue, and a 405 says which methods are allowed', async () => {
  const unavailable = await fetchAnswer({ kind: 'error-page', error: new OAuthError('AS_STORE_UNAVAILABLE') }, {})
  assert.equal(unavailable.status, 503)
  assert.equal(unavailable.headers.allow, undefined)
  const method = await fetchAnswer({ kind: 'error-page', error: new OAuthError('AS_METHOD_NOT_ALLOWED'), allow: 'GET, POST' }, {})
  assert.equal(method.status, 405)
  assert.equal(method.headers.allow, 'GET, POST')
})

test('a CORS preflight at the authorization endpoint gets no Access-Control-* header (FAPI 2.0 SP §5.2.3-3)', async () => {
  const state = frontChannelState()
  const { requestUri } = await push(state)
  const deps = { partners: registryOf(codePartner('fintech', 'gw-fintech')), state }
  answerNext = async (req) => {
    const query = new URL(req.url!, base).searchParams
    return { answer: await answerAuthorizationRequest({ method: req.method!, query, nowMs: Date.now() }, authorizationSettings(), deps, {}), headers: {} }
  }
  const query = new URLSearchParams({ client_id: 'fintech', request_uri: requestUri })
  const preflight = await request(`${base}/oauth2/authorize?${query}`, {
    method: 'OPTIONS',
    headers: { origin: 'https://attacker.example', 'access-control-request-method': 'GET' },
  })
  await preflight.body.text()
  assert.equal(preflight.statusCode, 405)
  assert.deepEqual(corsHeaders(preflight.headers), [])

  const get = await request(`${base}/oauth2/authorize?${query}`, { headers: { origin: 'https://attacker.example' } })
  await get.body.text()
  assert.equal(get.statusCode, 303)
  assert.deepEqual(corsHeaders(get.headers), [])
})
