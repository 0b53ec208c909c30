// The small parts of the façade's token endpoint: the form, the rate limits, the legacy answer, the metadata.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { OAuthError } from '../../../src/authorization-server/errors.ts'
import { parseOAuthForm } from '../../../src/authorization-server/form.ts'
import { createRateLimiter } from '../../../src/authorization-server/rate-limit.ts'
import { readLegacyTokens } from '../../../src/authorization-server/legacy-answer.ts'
import { authorizationServerMetadata, metadataPaths } from '../../../src/authorization-server/metadata.ts'

const FORM = 'application/x-www-form-urlencoded'

function refusedWith(action: () => unknown, code: string, error?: string): void {
  assert.throws(action, (e: unknown) => e instanceof OAuthError && e.code === code && (error === undefined || e.error === error))
}

test('form: each parameter once (RFC 6749 §3.2), a parameter without a value treated as omitted', () => {
  const params = parseOAuthForm(`${FORM}; charset=UTF-8`, Buffer.from('grant_type=client_credentials&scope=&client_id=a%20b'))
  assert.equal(params.get('grant_type'), 'client_credentials')
  assert.equal(params.has('scope'), false)
  assert.equal(params.get('client_id'), 'a b')
  refusedWith(() => parseOAuthForm(FORM, Buffer.from('grant_type=a&grant_type=b')), 'AS_REQUEST_MALFORMED')
})

test('form: another media type, another charset or bytes that are not UTF-8 are invalid_request', () => {
  refusedWith(() => parseOAuthForm('application/json', Buffer.from('{}')), 'AS_REQUEST_MALFORMED', 'invalid_request')
  refusedWith(() => parseOAuthForm(undefined, Buffer.from('a=b')), 'AS_REQUEST_MALFORMED')
  refusedWith(() => parseOAuthForm(`${FORM}; charset=iso-8859-1`, Buffer.from('a=b')), 'AS_REQUEST_MALFORMED')
  refusedWith(() => parseOAuthForm(FORM, Buffer.from([0x61, 0x3d, 0xff])), 'AS_REQUEST_MALFORMED')
})

test('rate limit: a burst, then one request per 1/rate seconds, per key', () => {
  const limiter = createRateLimiter(2, 3)
  const at = 1_000_000
  assert.deepEqual(
    [1, 2, 3, 4].map(() => limiter.take('a', at)),
    [true, true, true, false],
  )
  assert.equal(limiter.take('b', at), true, 'another key has its own bucket')
  assert.equal(limiter.take('a', at + 400), false)
  assert.equal(limiter.take('a', at + 500), true, 'refilled at 2 a second')
})

test('rate limit: the number of buckets is bounded, the least recently used making room', () => {
  const limiter = createRateLimiter(1, 1, 2)
  assert.equal(limiter.take('a', 0), true)
  assert.equal(limiter.take('b', 0), true)
  assert.equal(limiter.take('c', 0), true)
  assert.equal(limiter.take('a', 0), true, 'a was evicted: a fresh bucket')
})

test('legacy answer: a Bearer token with its lifetime, scope and refresh token', () => {
  const tokens = readLegacyTokens({ status: 200, body: { access_token: 'at', token_type: 'bearer', expires_in: 300, scope: 'a b', refresh_token: 'rt' } }, 0)
  assert.deepEqual([tokens.accessToken, tokens.expiresIn, tokens.scope, tokens.refreshToken], ['at', 300, 'a b', 'rt'])
})

test('legacy answer: its RFC 6749 errors are passed on, its invalid_client is the gateway credentials, anything unusable a bad answer', () => {
  refusedWith(
    () => readLegacyTokens({ status: 400, body: { error: 'invalid_grant', error_description: 'internal detail' } }, 0),
    'AS_LEGACY_REFUSED',
    'invalid_grant',
  )
  refusedWith(() => readLegacyTokens({ status: 400, body: { error: 'invalid_scope' } }, 0), 'AS_LEGACY_REFUSED', 'invalid_scope')
  refusedWith(() => readLegacyTokens({ status: 400, body: { error: 'something_else' } }, 0), 'AS_LEGACY_REFUSED', 'invalid_request')
  refusedWith(() => readLegacyTokens({ status: 401, body: { error: 'invalid_client' } }, 0), 'AS_LEGACY_CREDENTIALS', 'server_error')
  refusedWith(() => readLegacyTokens({ status: 400, body: { error: 'unsupported_grant_type' } }, 0), 'AS_GRANT_TYPE_UNSUPPORTED')
  refusedWith(() => readLegacyTokens({ status: 200, body: { token_type: 'Bearer' } }, 0), 'AS_LEGACY_BAD_ANSWER')
  refusedWith(() => readLegacyTokens({ status: 200, body: { access_token: 'at', token_type: 'mac' } }, 0), 'AS_LEGACY_BAD_ANSWER')
  refusedWith(() => readLegacyTokens({ status: 302, body: {} }, 0), 'AS_LEGACY_BAD_ANSWER')
})

test('metadata: the gateway is the issuer; the operator cannot replace a FAPI value; paths per RFC 8414 §3 and OpenID Discovery', () => {
  const settings = {
    issuer: 'https://api.bank.example',
    publicBaseUrl: 'https://api.bank.example',
    tokenPath: '/oauth2/token',
    revocationPath: '/oauth2/revoke',
    dpopAlgorithms: ['ES256'],
    openid: true,
    extra: { userinfo_endpoint: 'https://login.bank.example/userinfo' },
  }
  const metadata = authorizationServerMetadata(settings)
  assert.equal(metadata.issuer, 'https://api.bank.example')
  assert.equal(metadata.token_endpoint, 'https://api.bank.example/oauth2/token')
  assert.equal(metadata.userinfo_endpoint, 'https://login.bank.example/userinfo')
  assert.deepEqual(metadataPaths(settings), ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration'])
  assert.deepEqual(metadataPaths({ issuer: 'https://api.bank.example/tenant', openid: true }), [
    '/.well-known/oauth-authorization-server/tenant',
    '/tenant/.well-known/openid-configuration',
  ])
})
