// The stand-in legacy OAuth 2.0 server behaves as the façade tests assume it does.
import { test, after } from 'node:test'
import { testPki } from '../../support/gateway.ts'
import assert from 'node:assert/strict'
import { Agent, request } from 'undici'
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose'
import { signInForCode, startLegacyServer, type LegacyServer } from '../../../dev/legacy-server.ts'

const redirectUri = 'https://partner.example/callback'
const clients = [
  { clientId: 'legacy-basic', clientSecret: 'basic-secret', scopes: ['accounts', 'payments'] },
  { clientId: 'legacy-post', clientSecret: 'post-secret', authentication: 'client_secret_post' as const, scopes: ['accounts'] },
  {
    clientId: 'legacy-web',
    clientSecret: 'web-secret',
    grantTypes: ['authorization_code' as const, 'refresh_token' as const],
    scopes: ['accounts'],
    redirectUris: [redirectUri],
  },
]

const opaque = await startLegacyServer({ pki: await testPki(), clients })
const jwt = await startLegacyServer({ pki: await testPki(), clients, accessTokenFormat: 'jwt', accessTokenTtlSeconds: 120 })
const agent = new Agent({ connect: { ca: opaque.caPem } })
after(async () => {
  await agent.close()
  await Promise.all([opaque.close(), jwt.close()])
})

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`

async function post(url: string, form: Record<string, string>, authorization?: string) {
  const response = await request(url, {
    dispatcher: agent,
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization && { authorization }) },
    body: new URLSearchParams(form).toString(),
  })
  return { status: response.statusCode, body: (await response.body.json()) as Record<string, unknown> }
}

const clientCredentials = (server: LegacyServer, scope = 'accounts') =>
  post(server.tokenEndpoint, { grant_type: 'client_credentials', scope }, basic('legacy-basic', 'basic-secret'))

test('client_credentials with client_secret_basic: an opaque bearer token, active at introspection until revoked', async () => {
  const token = await clientCredentials(opaque)
  assert.equal(token.status, 200)
  assert.equal(token.body.token_type, 'Bearer')
  assert.equal(token.body.scope, 'accounts')
  const accessToken = token.body.access_token as string
  assert.match(accessToken, /^[A-Za-z0-9_-]{20,}$/, 'opaque, not a JWT')

  const auth = basic('legacy-basic', 'basic-secret')
  const active = await post(opaque.introspectionEndpoint, { token: accessToken }, auth)
  assert.equal(active.status, 200)
  assert.equal(active.body.active, true)
  assert.equal(active.body.client_id, 'legacy-basic')
  assert.equal(active.body.aud, opaque.resource)
  assert.equal(active.body.cnf, undefined)

  const revoked = await request(opaque.revocationEndpoint, {
    dispatcher: agent,
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth },
    body: new URLSearchParams({ token: accessToken, token_type_hint: 'access_token' }).toString(),
  })
  await revoked.body.dump()
  assert.equal(revoked.statusCode, 200)
  const inactive = await post(opaque.introspectionEndpoint, { token: accessToken }, auth)
  assert.deepEqual(inactive.body, { active: false })
})

test('the JWT configuration issues unbound JWTs verifiable with the published key set', async () => {
  const token = await clientCredentials(jwt, 'payments')
  assert.equal(token.status, 200)
  const accessToken = token.body.access_token as string
  assert.equal(decodeProtectedHeader(accessToken).alg, 'ES256')
  const jwks = await request(jwt.jwksUri, { dispatcher: agent })
  const keySet = createLocalJWKSet((await jwks.body.json()) as JSONWebKeySet)
  const { payload } = await jwtVerify(accessToken, keySet, { issuer: jwt.issuer, audience: jwt.resource })
  assert.equal(payload.client_id, 'legacy-basic')
  assert.equal(payload.scope, 'payments')
  assert.equal(payload.exp! - payload.iat!, 120)
  assert.equal(payload.cnf, undefined)
})

test('client_secret_post works for a client registered with it, and a wrong secret is invalid_client', async () => {
  const ok = await post(opaque.tokenEndpoint, { grant_type: 'client_credentials', client_id: 'legacy-post', client_secret: 'post-secret' })
  assert.equal(ok.status, 200)
  assert.equal(typeof ok.body.access_token, 'string')

  const wrong = await post(opaque.tokenEndpoint, { grant_type: 'client_credentials', scope: 'accounts' }, basic('legacy-basic', 'not-the-secret'))
  assert.equal(wrong.status, 401)
  assert.equal(wrong.body.error, 'invalid_client')
})

test('authorization_code through the development login, then refresh_token; a code redeemed twice revokes the grant', async () => {
  const code = await signInForCode(opaque, { clientId: 'legacy-web', redirectUri, scope: 'accounts' })
  const auth = basic('legacy-web', 'web-secret')
  const tokens = await post(opaque.tokenEndpoint, { grant_type: 'authorization_code', code, redirect_uri: redirectUri }, auth)
  assert.equal(tokens.status, 200, JSON.stringify(tokens.body))
  assert.equal(tokens.body.scope, 'accounts')
  assert.equal(typeof tokens.body.refresh_token, 'string')

  const refreshed = await post(opaque.tokenEndpoint, { grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token as string }, auth)
  assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body))
  assert.equal(typeof refreshed.body.access_token, 'string')
  assert.notEqual(refreshed.body.access_token, tokens.body.access_token)
  const introspected = await post(opaque.introspectionEndpoint, { token: refreshed.body.access_token as string }, auth)
  assert.equal(introspected.body.active, true)
  assert.equal(introspected.body.sub, 'alice')

  // A code redeemed twice: refused, and the grant it started is revoked (RFC 6749 §4.1.2).
  const again = await post(opaque.tokenEndpoint, { grant_type: 'authorization_code', code, redirect_uri: redirectUri }, auth)
  assert.equal(again.status, 400)
  assert.equal(again.body.error, 'invalid_grant')
  const afterReuse = await post(
    opaque.tokenEndpoint,
    { grant_type: 'refresh_token', refresh_token: (refreshed.body.refresh_token ?? tokens.body.refresh_token) as string },
    auth,
  )
  assert.equal(afterReuse.body.error, 'invalid_grant')
})

test('it records who called which endpoint with which grant, never a secret', async () => {
  const server = await startLegacyServer({ pki: await testPki(), clients })
  try {
    assert.equal(server.requests.length, 0)
    await clientCredentials(server)
    await post(server.tokenEndpoint, { grant_type: 'client_credentials', client_id: 'legacy-post', client_secret: 'post-secret' })
    assert.deepEqual(server.requestsTo('/token'), [
      { method: 'POST', path: '/token', clientId: 'legacy-basic', grantType: 'client_credentials' },
      { method: 'POST', path: '/token', clientId: 'legacy-post', grantType: 'client_credentials' },
    ])
    assert.doesNotMatch(JSON.stringify(server.requests), /secret/)
  } finally {
    await server.close()
  }
})

test('hang() accepts requests and never answers; stop() refuses connections until start()', async () => {
  const server = await startLegacyServer({ pki: await testPki(), clients })
  try {
    server.hang()
    const pending = clientCredentials(server).then(
      () => 'answered',
      (error: NodeJS.ErrnoException) => error.code,
    )
    await server.received(1)
    server.resume()
    assert.equal(await pending, 'UND_ERR_SOCKET', 'the hung request was dropped, never answered')

    await server.stop()
    await assert.rejects(clientCredentials(server), (error: NodeJS.ErrnoException) => error.code === 'ECONNREFUSED')
    await server.start()
    assert.equal((await clientCredentials(server)).status, 200)
  } finally {
    await server.close()
  }
})
