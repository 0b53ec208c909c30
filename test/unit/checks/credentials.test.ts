import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import { checkCredentials, hashToken, readCredentialHeaders, type CredentialHeaders } from '../../../src/checks/credentials.ts'
import type { ErrorCode } from '../../../src/errors.ts'

const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl'

function headers(authorization: string[], extra: Partial<CredentialHeaders> = {}): CredentialHeaders {
  return { authorization, dpop: [], interactionId: undefined, ...extra }
}

function refusedWith(code: ErrorCode) {
  return (error: unknown) => {
    assert.equal((error as { code?: unknown }).code, code, String(error))
    return true
  }
}

/** The rawHeaders a real Node HTTP server sees for a hand-written request. */
async function rawHeadersOf(requestHead: string): Promise<{ rawHeaders: string[]; parsed: http.IncomingHttpHeaders }> {
  const server = http.createServer((_req, res) => {
    res.end()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  try {
    const seen = once(server, 'request') as Promise<[http.IncomingMessage]>
    const socket = net.connect((server.address() as AddressInfo).port, '127.0.0.1')
    socket.on('error', () => {})
    socket.end(requestHead)
    const [req] = await seen
    socket.destroy()
    return { rawHeaders: req.rawHeaders, parsed: req.headers }
  } finally {
    server.closeAllConnections()
    server.close()
  }
}

test('readCredentialHeaders sees both Authorization headers and every DPoP header that Node received', async () => {
  const { rawHeaders, parsed } = await rawHeadersOf(
    'GET /accounts HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer first\r\nauthorization: DPoP second\r\n' +
      'DPoP: proof.one\r\ndpop: proof.two\r\nX-FAPI-Interaction-ID: 4f1e\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n',
  )
  // Why rawHeaders: Node's parsed view keeps only the first Authorization and joins DPoP.
  assert.equal(parsed.authorization, 'Bearer first')
  const read = readCredentialHeaders(rawHeaders)
  assert.deepEqual(read.authorization, ['Bearer first', 'DPoP second'])
  assert.deepEqual(read.dpop, ['proof.one', 'proof.two'])
  assert.equal(read.interactionId, '4f1e')
})

test('readCredentialHeaders matches header names in any case and keeps the first interaction id', () => {
  const read = readCredentialHeaders([
    'AUTHORIZATION',
    'Bearer a',
    'Dpop',
    'p1',
    'DPOP',
    'p1',
    'x-fapi-interaction-id',
    'first',
    'X-Fapi-Interaction-Id',
    'second',
    'CONTENT-TYPE',
    'application/x-www-form-urlencoded',
    'content-type',
    'text/plain',
    'Authorization-Extra',
    'ignored',
    'host',
    'h',
  ])
  assert.deepEqual(read.authorization, ['Bearer a'])
  // Duplicates stay separate even when identical: two proofs are two proofs.
  assert.deepEqual(read.dpop, ['p1', 'p1'])
  assert.equal(read.interactionId, 'first')
})

test('readCredentialHeaders on a request without credentials', () => {
  assert.deepEqual(readCredentialHeaders(['Host', 'h']), { authorization: [], dpop: [], interactionId: undefined })
})

test('Bearer and DPoP are accepted in any case, and the hash is base64url(SHA-256(token))', () => {
  const expectedHash = createHash('sha256').update(TOKEN).digest('base64url')
  const cases: [string, 'Bearer' | 'DPoP'][] = [
    ['Bearer', 'Bearer'],
    ['bearer', 'Bearer'],
    ['BEARER', 'Bearer'],
    ['bEaReR', 'Bearer'],
    ['DPoP', 'DPoP'],
    ['dpop', 'DPoP'],
    ['DPOP', 'DPoP'],
    ['dPoP', 'DPoP'],
  ]
  for (const [scheme, expected] of cases) {
    const presented = checkCredentials(headers([`${scheme} ${TOKEN}`]), '/accounts')
    assert.deepEqual(presented, { scheme: expected, value: TOKEN, hash: expectedHash }, scheme)
  }
  assert.equal(hashToken(TOKEN), expectedHash)
  assert.match(expectedHash, /^[A-Za-z0-9_-]{43}$/)
})

test('every b64token character is accepted, with trailing padding', () => {
  const token = 'AZaz09-._~+/abc=='
  assert.equal(checkCredentials(headers([`Bearer ${token}`]), '/').value, token)
  // Surrounding whitespace is not part of the token.
  assert.equal(checkCredentials(headers([`  Bearer   ${token}  `]), '/').value, token)
})

test('a query string without access_token passes', () => {
  const presented = checkCredentials(headers([`DPoP ${TOKEN}`]), '/accounts?from=2024&token=x&access_tokens=1&access_token_hint=a&x=access_token')
  assert.equal(presented.scheme, 'DPoP')
})

test('no Authorization header is GW_TOKEN_MISSING', () => {
  assert.throws(() => checkCredentials(headers([]), '/accounts'), refusedWith('GW_TOKEN_MISSING'))
})

test('two Authorization headers are GW_TOKEN_MULTIPLE, whatever they hold', () => {
  for (const pair of [
    [`Bearer ${TOKEN}`, `Bearer ${TOKEN}`],
    [`DPoP ${TOKEN}`, `Bearer other`],
    [`Bearer ${TOKEN}`, ''],
  ]) {
    assert.throws(() => checkCredentials(headers(pair), '/accounts'), refusedWith('GW_TOKEN_MULTIPLE'), pair.join(' | '))
  }
})

test('access_token in the query string is GW_TOKEN_IN_QUERY, also when an Authorization header is present', () => {
  const targets = [
    '/a?access_token=abc',
    '/a?x=1&access_token=',
    '/a?access_token',
    '/a?access%5Ftoken=abc',
    '/a?x=1&access_token=abc&y=2',
    // As other parsers read a query: `;` separators, any case, PHP's `.`, space and array forms.
    '/a?x=1;access_token=abc',
    '/a?ACCESS_TOKEN=abc',
    '/a?access.token=abc',
    '/a?access+token=abc',
    '/a?access_token[]=abc',
    '/a?%20access_token=abc',
  ]
  for (const target of targets) {
    assert.throws(() => checkCredentials(headers([]), target), refusedWith('GW_TOKEN_IN_QUERY'), target)
    assert.throws(() => checkCredentials(headers([`Bearer ${TOKEN}`]), target), refusedWith('GW_TOKEN_IN_QUERY'), target)
    assert.throws(() => checkCredentials(headers([`Bearer ${TOKEN}`, `Bearer ${TOKEN}`]), target), refusedWith('GW_TOKEN_IN_QUERY'), target)
  }
})

test('a malformed Authorization value is GW_TOKEN_MALFORMED', () => {
  const malformed = [
    'Bearer',
    'Bearer ',
    'DPoP',
    'Bearer\tabc',
    '',
    `Bearer ${TOKEN} extra`,
    'Bearer a b',
    'Bearer "abc"',
    'Bearer abc,def',
    'Bearer a=b',
    'Bearer =abc',
    'Bearer abc;',
    'Bearer ab%63',
    'Bearer tøken',
    'Bearer a\u0000b',
    `Bearer ${'a'.repeat(16 * 1024 + 1)}`,
  ]
  for (const value of malformed) {
    assert.throws(() => checkCredentials(headers([value]), '/accounts'), refusedWith('GW_TOKEN_MALFORMED'), JSON.stringify(value.slice(0, 40)))
  }
  // The longest token accepted.
  assert.equal(checkCredentials(headers([`Bearer ${'a'.repeat(16 * 1024)}`]), '/').value.length, 16 * 1024)
})

test('a scheme other than Bearer or DPoP is GW_TOKEN_MISSING (no access token was presented)', () => {
  for (const value of ['Basic dXNlcjpwYXNz', 'Digest abc', 'Token abc', 'Bearer-DPoP abc', 'MAC abc']) {
    assert.throws(() => checkCredentials(headers([value]), '/accounts'), refusedWith('GW_TOKEN_MISSING'), value)
  }
})
