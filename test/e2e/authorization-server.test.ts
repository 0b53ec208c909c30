// The authorization-server façade end to end: a real legacy OAuth 2.0 server (oidc-provider, plain
// client_secret_basic, opaque or unbound JWT tokens), a real FAPI client (oauth4webapi: private_key_jwt,
// DPoP with its own nonce retry, mTLS through undici), the real gateway and a real upstream. Every happy
// path goes from the token request to a resource request that reaches the upstream; every refusal says
// what the legacy server and the upstream saw.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer as createHttpsServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { chainPem } from '../../dev/pki.ts'
import { join } from 'node:path'
import * as oauth from 'oauth4webapi'
import { parse, stringify } from 'yaml'
import { request } from 'undici'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { startFacadeEnvironment, type FacadeEnvironment } from '../../dev/facade-environment.ts'
import { signInForCode } from '../../dev/legacy-server.ts'
import { captureLog, testPki } from '../support/gateway.ts'
import { discover, dpopKeys, transport, withNonceRetry, type Transport } from '../support/fapi-client.ts'
import { startRedisServer, type RedisServer } from '../support/redis.ts'
import { createLogger } from '../../src/observability/log.ts'
import { createProof, generateDpopKey, type DpopKey } from '../../src/client/partner-client.ts'

async function dpopTokenFor(env: FacadeEnvironment, t: Transport, as: oauth.AuthorizationServer, dpop: oauth.DPoPHandle, scope = 'accounts:read') {
  const client: oauth.Client = { client_id: env.partnerA.clientId }
  const auth = oauth.PrivateKeyJwt({ key: env.partnerA.privateKey, kid: env.partnerA.publicJwk.kid })
  return withNonceRetry(async () =>
    oauth.processClientCredentialsResponse(as, client, await oauth.clientCredentialsGrantRequest(as, client, auth, { scope }, { ...t.options, DPoP: dpop })),
  )
}

async function resource(env: FacadeEnvironment, t: Transport, accessToken: string, dpop?: oauth.DPoPHandle, path = '/accounts/42', base = env.issuer) {
  try {
    return await withNonceRetry(() =>
      oauth.protectedResourceRequest(accessToken, 'GET', new URL(path, base), new Headers(), null, { ...t.options, DPoP: dpop }),
    )
  } catch (error) {
    // oauth4webapi rejects every answer with a challenge; the test looks at the answer itself.
    if (error instanceof oauth.WWWAuthenticateChallengeError) return error.response
    throw error
  }
}

/** A raw POST to the gateway's token endpoint, for requests no well-behaved client library sends. */
async function postForm(env: FacadeEnvironment, t: Transport, form: Record<string, string>, headers: Record<string, string> = {}) {
  const response = await request(env.tokenEndpoint, {
    method: 'POST',
    dispatcher: t.agent,
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  })
  const text = await response.body.text()
  return { status: response.statusCode, headers: response.headers, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined }
}

async function assertion(env: FacadeEnvironment, claims: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  return new SignJWT({ iss: env.partnerA.clientId, sub: env.partnerA.clientId, aud: env.issuer, jti: crypto.randomUUID(), iat: now, exp: now + 60, ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: env.partnerA.publicJwk.kid })
    .sign(env.partnerA.privateKey)
}

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

describe('authorization-server façade in front of a legacy server (opaque tokens, introspection)', () => {
  let env: FacadeEnvironment
  let t: Transport
  let tB: Transport
  let tA: Transport
  let as: oauth.AuthorizationServer
  const { sink, log } = captureLog()

  before(async () => {
    const pki = await testPki()
    env = await startFacadeEnvironment({ logger: createLogger('info', sink), pki, gateway: { eventStream: sink } })
    t = await transport()
    tA = await transport(pki.partnerA)
    tB = await transport(pki.partnerB)
    as = await discover(env.issuer, t)
  })
  after(async () => {
    await Promise.allSettled([t?.agent.close(), tA?.agent.close(), tB?.agent.close()])
    await env?.close()
  })

  it('publishes RFC 8414 metadata with the gateway as issuer and only FAPI 2.0 values (A1)', () => {
    assert.equal(as.issuer, env.issuer)
    assert.equal(as.token_endpoint, env.tokenEndpoint)
    assert.equal(as.revocation_endpoint, env.revocationEndpoint)
    assert.deepEqual(as.token_endpoint_auth_methods_supported, ['private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth'])
    assert.deepEqual(as.token_endpoint_auth_signing_alg_values_supported, ['PS256', 'ES256', 'EdDSA'])
    assert.deepEqual(as.dpop_signing_alg_values_supported, ['PS256', 'ES256', 'EdDSA'])
    assert.equal(as.tls_client_certificate_bound_access_tokens, true)
  })

  it('private_key_jwt + DPoP: a DPoP-bound token from the legacy server, accepted at the resource with its key and refused with another', async () => {
    const dpop = oauth.DPoP({}, await dpopKeys())
    const legacyCalls = env.legacy.requestsTo(new URL(env.legacy.tokenEndpoint).pathname).length
    const tokens = await dpopTokenFor(env, t, as, dpop)
    assert.equal(tokens.token_type, 'dpop')
    assert.equal(tokens.scope, 'accounts:read')
    const calls = env.legacy.requestsTo(new URL(env.legacy.tokenEndpoint).pathname)
    assert.equal(calls.length, legacyCalls + 1)
    assert.equal(calls.at(-1)!.clientId, env.legacyClients['partner-a']!.clientId, 'the gateway used the legacy client, not the partner id')

    const seen = env.upstream.received.length
    const ok = await resource(env, t, tokens.access_token, dpop)
    assert.equal(ok.status, 200)
    assert.equal(env.upstream.received.length, seen + 1)

    const imposter = oauth.DPoP({}, await dpopKeys())
    const refused = await resource(env, t, tokens.access_token, imposter)
    assert.equal(refused.status, 401)
    assert.match(refused.headers.get('www-authenticate') ?? '', /invalid_token/)
    assert.equal(env.upstream.received.length, seen + 1, 'the upstream saw nothing of the imposter')
  })

  it('a token the legacy server issued directly, bypassing the gateway, is refused as unbound although introspection calls it active', async () => {
    const legacy = env.legacyClients['partner-a']!
    const direct = await request(env.legacy.tokenEndpoint, {
      method: 'POST',
      dispatcher: t.agent,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from(`${legacy.clientId}:${legacy.secret}`).toString('base64')}`,
      },
      body: 'grant_type=client_credentials&scope=accounts%3Aread',
    })
    const { access_token: accessToken } = (await direct.body.json()) as { access_token: string }
    const seen = env.upstream.received.length
    const dpop = oauth.DPoP({}, await dpopKeys())
    const asDpop = await resource(env, t, accessToken, dpop)
    assert.equal(asDpop.status, 401)
    const asBearer = await resource(env, t, accessToken)
    assert.equal(asBearer.status, 401)
    assert.match(asBearer.headers.get('www-authenticate') ?? '', /invalid_token/)
    assert.equal(env.upstream.received.length, seen)
  })

  it('a DPoP-bound token sent as Bearer is a downgrade and refused', async () => {
    const dpop = oauth.DPoP({}, await dpopKeys())
    const tokens = await dpopTokenFor(env, t, as, dpop)
    const response = await resource(env, t, tokens.access_token)
    assert.equal(response.status, 401)
    assert.match(response.headers.get('www-authenticate') ?? '', /invalid_token/)
  })

  it('tls_client_auth: a certificate-bound Bearer token, accepted with that certificate and refused with another', async () => {
    const client: oauth.Client = { client_id: env.partnerB.clientId }
    const tokens = await oauth.processClientCredentialsResponse(
      as,
      client,
      await oauth.clientCredentialsGrantRequest(as, client, oauth.TlsClientAuth(), { scope: 'accounts:read' }, tB.options),
    )
    assert.equal(tokens.token_type, 'bearer')
    assert.equal((await resource(env, tB, tokens.access_token)).status, 200)
    assert.equal((await resource(env, tA, tokens.access_token)).status, 401, 'another partner certificate')
    assert.equal((await resource(env, t, tokens.access_token)).status, 401, 'no certificate')
  })

  it('tls_client_auth with another client_id than the certificate names is invalid_client (EnsureClientIdInTokenEndpoint, A4)', async () => {
    const before = env.legacy.requests.length
    const response = await postForm(env, tA, { grant_type: 'client_credentials', client_id: env.partnerB.clientId })
    assert.equal(response.status, 401)
    assert.equal(response.json?.error, 'invalid_client')
    assert.equal(env.legacy.requests.length, before, 'the legacy server was not called')
  })

  it('client_secret_basic from a partner is 401 invalid_client with a Basic challenge, and the legacy server is not called (A2)', async () => {
    const before = env.legacy.requests.length
    const response = await postForm(
      env,
      t,
      { grant_type: 'client_credentials' },
      { authorization: `Basic ${Buffer.from('partner-a:guess').toString('base64')}` },
    )
    assert.equal(response.status, 401)
    assert.equal(response.json?.error, 'invalid_client')
    assert.match(String(response.headers['www-authenticate']), /^Basic /)
    assert.equal(response.headers['cache-control'], 'no-store')
    assert.equal(env.legacy.requests.length, before)
  })

  it('no client authentication at all is invalid_client (EnsureClientAssertionInTokenEndpoint, A2)', async () => {
    const response = await postForm(env, t, { grant_type: 'client_credentials', client_id: env.partnerA.clientId })
    assert.equal(response.status, 401)
    assert.equal(response.json?.error, 'invalid_client')
  })

  it('the password grant is unsupported_grant_type, and the legacy server is not called (A20)', async () => {
    const before = env.legacy.requests.length
    const response = await postForm(env, t, {
      grant_type: 'password',
      username: 'alice',
      password: 'x',
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: await assertion(env),
    })
    assert.equal(response.status, 400)
    assert.equal(response.json?.error, 'unsupported_grant_type')
    assert.equal(env.legacy.requests.length, before)
  })

  it('a token request with neither a DPoP proof nor a client certificate gets no token (EnsureHolderOfKeyRequired, A13)', async () => {
    const before = env.legacy.requests.length
    const response = await postForm(env, t, { grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(env) })
    assert.equal(response.status, 400)
    assert.equal(response.json?.error, 'invalid_request')
    assert.equal(env.legacy.requests.length, before)
  })

  it('an assertion whose aud is the token endpoint, or an array, is invalid_client (PARTokenEndpointAsAudienceFails, A3)', async () => {
    for (const aud of [env.tokenEndpoint, [env.issuer]]) {
      const response = await postForm(env, tA, {
        grant_type: 'client_credentials',
        client_assertion_type: ASSERTION_TYPE,
        client_assertion: await assertion(env, { aud }),
      })
      assert.equal(response.status, 401, JSON.stringify(aud))
      assert.equal(response.json?.error, 'invalid_client')
    }
  })

  it('a reused assertion is invalid_client', async () => {
    const used = await assertion(env)
    const form = { grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: used, scope: 'accounts:read' }
    // The certificate of partner-a binds the token: the first use succeeds.
    assert.equal((await postForm(env, tA, form)).status, 200)
    const again = await postForm(env, tA, form)
    assert.equal(again.status, 401)
    assert.equal(again.json?.code, 'AS_CLIENT_ASSERTION_REPLAY')
  })

  it('a bad DPoP proof is 400 invalid_dpop_proof (RFC 9449 §5)', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256')
    const proof = await new SignJWT({ htm: 'POST', htu: `${env.issuer}/elsewhere`, jti: crypto.randomUUID(), iat: Math.floor(Date.now() / 1000) })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(publicKey) })
      .sign(privateKey)
    const response = await postForm(
      env,
      t,
      { grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(env) },
      { dpop: proof },
    )
    assert.equal(response.status, 400)
    assert.equal(response.json?.error, 'invalid_dpop_proof')
  })

  it('a scope the partner is not registered for is invalid_scope', async () => {
    const response = await postForm(env, tA, {
      grant_type: 'client_credentials',
      scope: 'admin',
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: await assertion(env),
    })
    assert.equal(response.status, 400)
    assert.equal(response.json?.error, 'invalid_scope')
  })

  it('authorization_code handed through, then refresh with DPoP; another partner cannot use the refresh token (A17)', async () => {
    const legacyA = env.legacyClients['partner-a']!
    const code = await signInForCode(env.legacy, { clientId: legacyA.clientId, redirectUri: 'https://partner-a.example/callback', scope: 'accounts:read' })
    const codeKey = await generateDpopKey('ES256')
    const dpop = oauth.DPoP({}, await dpopKeys())
    const codeResponse = await postForm(
      env,
      t,
      {
        grant_type: 'authorization_code',
        code,
        redirect_uri: 'https://partner-a.example/callback',
        client_assertion_type: ASSERTION_TYPE,
        client_assertion: await assertion(env),
      },
      { dpop: await dpopProof(codeKey, env.tokenEndpoint) },
    )
    assert.equal(codeResponse.status, 200, JSON.stringify(codeResponse.json))
    const refreshToken = codeResponse.json!.refresh_token as string
    assert.ok(refreshToken, 'the legacy server issued a refresh token')
    assert.equal(codeResponse.json!.token_type, 'DPoP')

    const client: oauth.Client = { client_id: env.partnerA.clientId }
    const auth = oauth.PrivateKeyJwt({ key: env.partnerA.privateKey, kid: env.partnerA.publicJwk.kid })
    const refreshed = await withNonceRetry(async () =>
      oauth.processRefreshTokenResponse(as, client, await oauth.refreshTokenGrantRequest(as, client, auth, refreshToken, { ...t.options, DPoP: dpop })),
    )
    assert.equal(refreshed.token_type, 'dpop')
    assert.equal((await resource(env, t, refreshed.access_token, dpop)).status, 200)

    const before = env.legacy.requests.length
    const stolen = await postForm(env, tB, { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: env.partnerB.clientId })
    assert.equal(stolen.status, 400)
    assert.equal(stolen.json?.error, 'invalid_grant')
    assert.equal(env.legacy.requests.length, before, 'the legacy server was not asked')
  })

  it('revocation ends the token at once for the resource side, and is passed to the legacy server with the legacy client', async () => {
    const dpop = oauth.DPoP({}, await dpopKeys())
    const tokens = await dpopTokenFor(env, t, as, dpop)
    assert.equal((await resource(env, t, tokens.access_token, dpop)).status, 200)
    const client: oauth.Client = { client_id: env.partnerA.clientId }
    const auth = oauth.PrivateKeyJwt({ key: env.partnerA.privateKey, kid: env.partnerA.publicJwk.kid })
    await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth, tokens.access_token, t.options))
    const revokedAtLegacy = env.legacy.requestsTo(new URL(env.legacy.revocationEndpoint).pathname).at(-1)
    assert.equal(revokedAtLegacy?.clientId, env.legacyClients['partner-a']!.clientId)
    const after = await resource(env, t, tokens.access_token, dpop)
    assert.equal(after.status, 401)
  })

  it('every refusal is a security event with its AS_ code, and none carries an assertion, a proof or a token', () => {
    const refusals = log.events().filter((e) => e.event.reason?.startsWith('AS_'))
    assert.ok(refusals.length >= 6, `${refusals.length} façade refusal events`)
    for (const event of refusals) {
      assert.equal(event.fapi?.route?.startsWith('authorization-server-'), true)
      assert.ok(event.fapi?.check)
    }
    const text = log.lines.join('\n')
    assert.doesNotMatch(text, /eyJ[A-Za-z0-9_-]{20,}\.eyJ/, 'no JWT (assertion, proof or token) in any log line')
    assert.doesNotMatch(text, /legacy-secret-/, 'no legacy secret in any log line')
  })
})

/** A proof for a raw token request (oauth4webapi signs its own inside its requests). */
async function dpopProof(key: DpopKey, htu: string): Promise<string> {
  return createProof(key, { htm: 'POST', htu })
}

describe('the legacy server down or hanging', () => {
  let env: FacadeEnvironment
  let t: Transport
  let as: oauth.AuthorizationServer

  before(async () => {
    env = await startFacadeEnvironment({ logger: createLogger('silent'), pki: await testPki(), validate: 'registry' })
    t = await transport()
    as = await discover(env.issuer, t)
  })
  after(async () => {
    await t?.agent.close()
    await env?.close()
  })

  it('down: 503 temporarily_unavailable; hanging: 504 within the timeout; resource requests on issued tokens unaffected', async () => {
    const dpop = oauth.DPoP({}, await dpopKeys())
    const tokens = await dpopTokenFor(env, t, as, dpop)
    const rawKey = await generateDpopKey('ES256')

    await env.legacy.stop()
    const down = await postForm(
      env,
      t,
      { grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(env) },
      {
        dpop: await dpopProof(rawKey, env.tokenEndpoint),
      },
    )
    assert.equal(down.status, 503)
    assert.equal(down.json?.error, 'temporarily_unavailable')
    assert.equal((await resource(env, t, tokens.access_token, dpop)).status, 200, 'validate: registry needs no legacy server')
    await env.legacy.start()

    env.legacy.hang()
    const started = Date.now()
    const hanging = await postForm(
      env,
      t,
      { grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(env) },
      {
        dpop: await dpopProof(rawKey, env.tokenEndpoint),
      },
    )
    assert.equal(hanging.status, 504)
    assert.equal(hanging.json?.error, 'temporarily_unavailable')
    assert.ok(Date.now() - started < 30_000, 'answered, not hung')
    env.legacy.resume()
    assert.equal((await resource(env, t, tokens.access_token, dpop)).status, 200)
  })

  it('revocation while the legacy server is down: 200, and the record of the gateway alone ends the token', async () => {
    const dpop = oauth.DPoP({}, await dpopKeys())
    const tokens = await dpopTokenFor(env, t, as, dpop)
    await env.legacy.stop()
    try {
      const client: oauth.Client = { client_id: env.partnerA.clientId }
      const auth = oauth.PrivateKeyJwt({ key: env.partnerA.privateKey, kid: env.partnerA.publicJwk.kid })
      const response = await oauth.revocationRequest(as, client, auth, tokens.access_token, t.options)
      assert.equal(response.status, 200)
      assert.equal((await resource(env, t, tokens.access_token, dpop)).status, 401)
    } finally {
      await env.legacy.start()
    }
  })
})

describe('unbound JWT access tokens from the legacy server, validated by its JWKS', () => {
  let env: FacadeEnvironment
  let t: Transport
  let as: oauth.AuthorizationServer

  before(async () => {
    env = await startFacadeEnvironment({ logger: createLogger('silent'), pki: await testPki(), legacyTokens: 'jwt' })
    t = await transport()
    as = await discover(env.issuer, t)
  })
  after(async () => {
    await t?.agent.close()
    await env?.close()
  })

  it('a DPoP-bound JWT through the gateway reaches the upstream; revoked at the gateway, it is refused although it still verifies', async () => {
    const dpop = oauth.DPoP({}, await dpopKeys())
    const tokens = await dpopTokenFor(env, t, as, dpop)
    assert.equal(tokens.access_token.split('.').length, 3, 'a JWT')
    assert.equal((await resource(env, t, tokens.access_token, dpop)).status, 200)
    const client: oauth.Client = { client_id: env.partnerA.clientId }
    const auth = oauth.PrivateKeyJwt({ key: env.partnerA.privateKey, kid: env.partnerA.publicJwk.kid })
    await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth, tokens.access_token, t.options))
    assert.equal((await resource(env, t, tokens.access_token, dpop)).status, 401)
  })
})

describe('two replicas on one Redis', () => {
  let redis: RedisServer
  let env: FacadeEnvironment
  let t: Transport

  before(async () => {
    redis = await startRedisServer()
    env = await startFacadeEnvironment({
      logger: createLogger('silent'),
      pki: await testPki(),
      replicas: 2,
      config: { replay: { store: 'redis', redis: { url: redis.url } } },
    })
    t = await transport()
  })
  after(async () => {
    await t?.agent.close()
    await env?.close()
    await redis?.close()
  })

  it('a token obtained through replica A is accepted with its proof through replica B, refused without it; an assertion used at A is refused at B', async () => {
    // Both replicas are one issuer behind one load balancer: proofs name the public URL, requests go to each port.
    const key = await generateDpopKey('ES256')
    const send = async (base: string, path: string, headers: Record<string, string>, body?: string) => {
      const response = await request(`${base}${path}`, { method: body === undefined ? 'GET' : 'POST', dispatcher: t.agent, headers, body })
      const text = await response.body.text()
      return { status: response.statusCode, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined }
    }
    const [replicaA, replicaB] = env.baseUrls as [string, string]
    const tokenRequest = async (base: string, clientAssertion: string) =>
      send(
        base,
        '/oauth2/token',
        { 'content-type': 'application/x-www-form-urlencoded', dpop: await dpopProof(key, env.tokenEndpoint) },
        new URLSearchParams({
          grant_type: 'client_credentials',
          scope: 'accounts:read',
          client_assertion_type: ASSERTION_TYPE,
          client_assertion: clientAssertion,
        }).toString(),
      )
    const used = await assertion(env)
    const issued = await tokenRequest(replicaA, used)
    assert.equal(issued.status, 200, JSON.stringify(issued.json))
    const accessToken = issued.json!.access_token as string

    const seen = env.upstream.received.length
    const proof = await createProof(key, { htm: 'GET', htu: `${env.issuer}/accounts/42`, accessToken })
    assert.equal((await send(replicaB, '/accounts/42', { authorization: `DPoP ${accessToken}`, dpop: proof })).status, 200)
    assert.equal((await send(replicaB, '/accounts/42', { authorization: `DPoP ${accessToken}` })).status, 401, 'no proof')
    assert.equal(env.upstream.received.length, seen + 1)

    const atB = await tokenRequest(replicaB, used)
    assert.equal(atB.status, 401)
    assert.equal(atB.json?.code, 'AS_CLIENT_ASSERTION_REPLAY')
  })
})

describe('the partner file is reloaded like the policies', () => {
  let env: FacadeEnvironment
  let tB: Transport

  before(async () => {
    const pki = await testPki()
    env = await startFacadeEnvironment({ logger: createLogger('silent'), pki, config: { reload: { pollIntervalMs: 0 } } })
    tB = await transport(pki.partnerB)
  })
  after(async () => {
    await tB?.agent.close()
    await env?.close()
  })

  const tokenForB = () => postForm(env, tB, { grant_type: 'client_credentials', client_id: env.partnerB.clientId, scope: 'accounts:read' })

  it('a partner removed from the file is refused at once; a file with an error is refused whole and the running registry kept', async () => {
    assert.equal((await tokenForB()).status, 200)
    const file = join(env.dir, 'partners.yaml')
    const original = readFileSync(file, 'utf8')
    const registered = parse(original) as { partners: { clientId: string }[] }

    writeFileSync(file, stringify({ partners: registered.partners.filter((p) => p.clientId !== env.partnerB.clientId) }))
    const removed = await env.gateways[0]!.reload()
    assert.equal(removed.outcome, 'reloaded', removed.problems.join('; '))
    const refused = await tokenForB()
    assert.equal(refused.status, 401)
    assert.equal(refused.json?.code, 'AS_CLIENT_UNKNOWN')

    writeFileSync(file, original.replace('grantTypes:', 'grantTypos:'))
    const broken = await env.gateways[0]!.reload()
    assert.equal(broken.outcome, 'refused')
    assert.match(broken.problems.join('\n'), /partners\.yaml: partners\.\d\.grantTypos/)
    assert.equal((await tokenForB()).status, 401, 'the last good registry (without partner-b) still serves')

    writeFileSync(file, original)
    assert.equal((await env.gateways[0]!.reload()).outcome, 'reloaded')
    assert.equal((await tokenForB()).status, 200)
  })
})

describe('DPoP server nonces at the token endpoint (RFC 9449 §8)', () => {
  let env: FacadeEnvironment
  let t: Transport
  let as: oauth.AuthorizationServer

  before(async () => {
    env = await startFacadeEnvironment({
      logger: createLogger('silent'),
      pki: await testPki(),
      config: { dpop: { nonce: { mode: 'required' } } },
      env: { FAPI_GATEWAY_NONCE_SECRET: 'n'.repeat(48) },
    })
    t = await transport()
    as = await discover(env.issuer, t)
  })
  after(async () => {
    await t?.agent.close()
    await env?.close()
  })

  it('a proof without a nonce is 400 use_dpop_nonce with a DPoP-Nonce; oauth4webapi retries and gets its token, then uses it', async () => {
    const key = await generateDpopKey('ES256')
    const first = await postForm(
      env,
      t,
      { grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(env) },
      { dpop: await dpopProof(key, env.tokenEndpoint) },
    )
    assert.equal(first.status, 400)
    assert.equal(first.json?.error, 'use_dpop_nonce')
    const nonce = String(first.headers['dpop-nonce'])
    assert.match(nonce, /^[\x21\x23-\x5b\x5d-\x7e]+$/)

    const dpop = oauth.DPoP({}, await dpopKeys())
    const tokens = await dpopTokenFor(env, t, as, dpop)
    assert.equal(tokens.token_type, 'dpop')
    const response = await resource(env, t, tokens.access_token, dpop)
    assert.equal(response.status, 200)
    // An AS nonce is not an RS nonce (RFC 9449 §8): the resource side's own is a different value.
    assert.notEqual(response.headers.get('dpop-nonce'), nonce)
  })
})

describe('limits of the token endpoint', () => {
  let env: FacadeEnvironment
  let t: Transport

  before(async () => {
    env = await startFacadeEnvironment({
      logger: createLogger('silent'),
      pki: await testPki(),
      authorizationServer: { limits: { maxBodyBytes: 2048, perAddressPerSecond: 1, burst: 2 } },
    })
    t = await transport()
  })
  after(async () => {
    await t?.agent.close()
    await env?.close()
  })

  it('GET is 405 with Allow: POST; a body over maxBodyBytes is 413; past the per-address budget 429, nothing reaching the legacy server', async () => {
    const before = env.legacy.requests.length
    const get = await request(env.tokenEndpoint, { dispatcher: t.agent })
    assert.equal(get.statusCode, 405)
    assert.equal(get.headers.allow, 'POST')
    assert.equal(((await get.body.json()) as { error: string }).error, 'invalid_request')

    const large = await postForm(env, t, { grant_type: 'client_credentials', padding: 'x'.repeat(4096) })
    assert.equal(large.status, 413)
    // A burst of 2 refilled at 1 a second: of ten sent at once, most are refused, whatever the machine's speed.
    const answers = await Promise.all(Array.from({ length: 10 }, () => postForm(env, t, { grant_type: 'client_credentials' })))
    const limited = answers.filter((a) => a.status === 429)
    assert.ok(limited.length >= 5, answers.map((a) => a.status).join(','))
    assert.equal(limited[0]!.headers['retry-after'], '1')
    assert.equal(limited[0]!.json?.error, 'temporarily_unavailable')
    assert.equal(env.legacy.requests.length, before)
  })
})

describe('a partner whose jwksUri is served under a private CA', () => {
  let env: FacadeEnvironment
  let t: Transport
  let jwksServer: Server
  let jwksUri: string

  before(async () => {
    const pki = await testPki()
    env = await startFacadeEnvironment({ logger: createLogger('silent'), pki, config: { reload: { pollIntervalMs: 0 } } })
    t = await transport()
    // The partner's JWKS, on a server whose certificate chains to the dev root, which no system store trusts.
    jwksServer = createHttpsServer({ cert: chainPem(pki.server, pki.intermediate), key: pki.server.keyPem }, (_req, res) => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ keys: [env.partnerA.publicJwk] }))
    })
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve))
    jwksUri = `https://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`
    const file = join(env.dir, 'partners.yaml')
    const partners = parse(readFileSync(file, 'utf8')) as { partners: { clientId: string; authentication: Record<string, unknown> }[] }
    partners.partners.find((p) => p.clientId === env.partnerA.clientId)!.authentication = { method: 'private_key_jwt', jwksUri }
    writeFileSync(file, stringify(partners))
  })
  after(async () => {
    await t?.agent.close()
    await env?.close()
    await new Promise((resolve) => jwksServer?.close(resolve))
  })

  const tokenRequest = async () =>
    postForm(
      env,
      t,
      { grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion(env) },
      { dpop: await dpopProof(await generateDpopKey('ES256'), env.tokenEndpoint) },
    )

  it('without authorizationServer.partnerJwksCaFile its keys cannot be fetched (invalid_client); with it they can', async () => {
    assert.equal((await env.gateways[0]!.reload()).outcome, 'reloaded')
    const untrusted = await tokenRequest()
    assert.equal(untrusted.status, 401)
    assert.equal(untrusted.json?.error, 'invalid_client')

    const config = parse(readFileSync(env.configFile, 'utf8')) as { authorizationServer: Record<string, unknown> }
    config.authorizationServer.partnerJwksCaFile = 'client-ca.crt'
    writeFileSync(env.configFile, stringify(config))
    const reloaded = await env.gateways[0]!.reload()
    assert.equal(reloaded.outcome, 'reloaded', reloaded.problems.join('; '))
    const trusted = await tokenRequest()
    assert.equal(trusted.status, 200, JSON.stringify(trusted.json))
  })
})
