import { after, before, beforeEach, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { createDevPki, type DevPki } from '../../../dev/pki.ts'
import { createTokenVerifier, type IssuerSettings, type TokenVerifier } from '../../../src/tokens/verifier.ts'
import { createTokenCache, type TokenCache } from '../../../src/tokens/token-cache.ts'
import type { PresentedToken } from '../../../src/types.ts'
import { audienceId, createSigningKey, issuerId, signAccessToken, startIssuerServer, type IssuerServer, type SigningKey } from './issuer-server.ts'

const start = Math.floor(Date.now() / 1000) * 1000
const startSeconds = start / 1000
const otherIssuerId = 'https://other-as.example.test'

let pki: DevPki
let server: IssuerServer
let es256: SigningKey
let verifiers: TokenVerifier[] = []

before(async () => {
  pki = await createDevPki()
  es256 = await createSigningKey('ES256', 'k-es')
  server = await startIssuerServer(pki)
  server.jwks = { keys: [es256.publicJwk] }
})

beforeEach(() => {
  server.introspectionCalls.length = 0
  server.jwksRequests = 0
  server.introspect = () => ({
    body: { active: true, iss: issuerId, aud: audienceId, sub: 'opaque-user', exp: startSeconds + 300, token_type: 'DPoP', cnf: { jkt: 'jkt-opaque' } },
  })
})

after(async () => {
  await Promise.all(verifiers.map((v) => v.close()))
  await server.stop()
})

function presented(value: string): PresentedToken {
  return { scheme: 'DPoP', value, hash: createHash('sha256').update(value).digest('base64url') }
}

function issuers(overrides: Partial<IssuerSettings> = {}): IssuerSettings[] {
  const introspection = {
    endpoint: server.introspectionEndpoint,
    clientId: 'gateway',
    auth: { method: 'client_secret_basic', secret: 'secret' } as const,
    cacheTtlSeconds: 60,
    caPem: pki.root.certPem,
  }
  return [
    { name: 'main', issuer: issuerId, audience: audienceId, jwksUri: server.jwksUri, caPem: pki.root.certPem, introspection, ...overrides },
    { name: 'other', issuer: otherIssuerId, audience: audienceId, jwksUri: server.jwksUri, caPem: pki.root.certPem },
  ]
}

function verifier(settings = issuers(), tokenCache?: TokenCache): TokenVerifier {
  const created = createTokenVerifier(settings, { now: () => start, ...(tokenCache && { tokenCache }) })
  verifiers.push(created)
  return created
}

const expect = (issuerNames: string[] = ['main'], audience?: string) => ({ issuerNames, audience })
const rejectsWith = (promise: Promise<unknown>, code: string) => assert.rejects(promise, (error: { code?: string }) => error.code === code)

describe('access-token verifier', () => {
  test('a JWT is verified by the issuer its iss names', async () => {
    const token = await verifier().verify(presented(await signAccessToken(es256, start)), expect(), start)
    assert.equal(token.format, 'jwt')
    assert.equal(token.issuerName, 'main')
    const other = await verifier().verify(presented(await signAccessToken(es256, start, { claims: { iss: otherIssuerId } })), expect(['main', 'other']), start)
    assert.equal(other.issuerName, 'other')
    assert.equal(server.introspectionCalls.length, 0)
  })

  test('a JWT from an issuer the route does not accept is refused', async () => {
    await rejectsWith(
      verifier().verify(presented(await signAccessToken(es256, start, { claims: { iss: otherIssuerId } })), expect(['main']), start),
      'GW_TOKEN_INVALID',
    )
    await rejectsWith(
      verifier().verify(presented(await signAccessToken(es256, start, { claims: { iss: 'https://evil.example' } })), expect(['main', 'other']), start),
      'GW_TOKEN_INVALID',
    )
  })

  test('the route audience overrides the issuer audience', async () => {
    const token = await signAccessToken(es256, start, { claims: { aud: 'https://api.example.test/payments' } })
    await rejectsWith(verifier().verify(presented(token), expect(['main']), start), 'GW_TOKEN_AUDIENCE')
    const accepted = await verifier().verify(presented(token), expect(['main'], 'https://api.example.test/payments'), start)
    assert.deepEqual(accepted.audiences, ['https://api.example.test/payments'])
  })

  test('a cached token is not verified again, but audience and issuer are still checked', async () => {
    const cache = createTokenCache({ maxEntries: 10 })
    const tokens = verifier(issuers(), cache)
    const token = presented(await signAccessToken(es256, start))
    await tokens.verify(token, expect(), start)
    await tokens.verify(token, expect(), start)
    assert.deepEqual(cache.stats(), { hits: 1, misses: 1, size: 1 })
    await rejectsWith(tokens.verify(token, expect(['main'], 'https://elsewhere.example.test'), start), 'GW_TOKEN_AUDIENCE')
    await rejectsWith(tokens.verify(token, expect(['other']), start), 'GW_TOKEN_INVALID')
  })

  test('a forged token is not served from the cache under another token hash', async () => {
    const cache = createTokenCache({ maxEntries: 10 })
    const tokens = verifier(issuers(), cache)
    const good = await signAccessToken(es256, start)
    await tokens.verify(presented(good), expect(), start)
    const [header, payload] = good.split('.')
    await rejectsWith(tokens.verify(presented(`${header}.${payload}.AAAA`), expect(), start), 'GW_TOKEN_INVALID')
  })

  test('an opaque token is introspected by the accepted issuer that has introspection', async () => {
    const token = await verifier().verify(presented('opaque-abc'), expect(['main', 'other']), start)
    assert.equal(token.format, 'opaque')
    assert.equal(token.tokenType, 'DPoP')
    assert.deepEqual(token.binding, { jkt: 'jkt-opaque' })
    assert.equal(server.introspectionCalls.length, 1)
  })

  test('an opaque token for a route whose issuers do not introspect is refused', async () => {
    await rejectsWith(verifier().verify(presented('opaque-abc'), expect(['other']), start), 'GW_TOKEN_INVALID')
    assert.equal(server.introspectionCalls.length, 0)
  })

  test("tokenShape: a string that cannot be the issuer's token is refused without a call; one of that shape is introspected", async () => {
    const base = issuers()[0]!
    const shaped = issuers({ introspection: { ...base.introspection!, tokenShape: { minLength: 20, maxLength: 64, charset: 'base64url', prefix: 'at_' } } })
    const refused: string[] = []
    const tokens = createTokenVerifier(shaped, {
      now: () => start,
      introspectionObserver: { called: () => undefined, cacheHit: () => undefined, refused: (name, reason) => refused.push(`${name} ${reason}`) },
    })
    verifiers.push(tokens)
    for (const value of ['abcdefghijklmnopqrstuvwxyz', 'at_short', `at_${'a'.repeat(62)}`, 'at_abcdefghijklmnop+qrstuvw', 'at_abcdefghijklmnopqrstuvw==']) {
      await rejectsWith(tokens.verify(presented(value), expect(), start), 'GW_TOKEN_INVALID')
    }
    assert.equal(server.introspectionCalls.length, 0)
    assert.deepEqual(refused, Array(5).fill('main shape'))
    const token = await tokens.verify(presented('at_abcdefghijklmnopqrstuvw'), expect(), start)
    assert.equal(token.format, 'opaque')
    assert.equal(server.introspectionCalls.length, 1)
  })

  test('by default a string longer than 4096 characters is refused without a call', async () => {
    await rejectsWith(verifier().verify(presented('a'.repeat(4097)), expect(), start), 'GW_TOKEN_INVALID')
    assert.equal(server.introspectionCalls.length, 0)
    await verifier().verify(presented('a'.repeat(4096)), expect(), start)
    assert.equal(server.introspectionCalls.length, 1)
  })

  test('the client address reaches the introspection bounds', async () => {
    server.introspect = () => new Promise(() => undefined)
    const base = issuers()[0]!
    const tokens = verifier(issuers({ introspection: { ...base.introspection!, maxPendingPerClient: 1, timeoutMs: 60_000 } }))
    void tokens.verify(presented('opaque-pending'), expect(), start, { clientAddress: '198.51.100.7' }).catch(() => undefined)
    await rejectsWith(tokens.verify(presented('opaque-next'), expect(), start, { clientAddress: '198.51.100.7' }), 'GW_INTROSPECTION_THROTTLED')
  })

  test('introspectJwt calls of signed JWTs are not held to the per-address bound, only to the global ones', async () => {
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    server.introspect = async () => {
      if (server.introspectionCalls.length >= 2) release()
      await released
      return { body: { active: true, iss: issuerId } }
    }
    const base = issuers()[0]!
    const tokens = verifier(issuers({ introspectJwt: true, introspection: { ...base.introspection!, maxPendingPerClient: 1 } }))
    const [first, second] = await Promise.all([signAccessToken(es256, start), signAccessToken(es256, start)])
    const checks = [first, second].map((jwt) => tokens.verify(presented(jwt), expect(), start, { clientAddress: '198.51.100.7' }))
    for (const check of checks) void check.catch(release)
    const results = await Promise.allSettled(checks)
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'fulfilled'],
      JSON.stringify(results.map((r) => r.status === 'rejected' && String(r.reason))),
    )
  })

  test('an inactive opaque token is GW_TOKEN_INACTIVE', async () => {
    server.introspect = () => ({ body: { active: false } })
    await rejectsWith(verifier().verify(presented('opaque-revoked'), expect(), start), 'GW_TOKEN_INACTIVE')
  })

  test('introspectJwt: a revoked JWT is refused, a live one passes', async () => {
    const tokens = verifier(issuers({ introspectJwt: true, introspectJwtCacheSeconds: 5 }))
    const jwt = presented(await signAccessToken(es256, start))
    server.introspect = () => ({ body: { active: true, iss: issuerId } })
    assert.equal((await tokens.verify(jwt, expect(), start)).format, 'jwt')
    assert.equal(server.introspectionCalls.at(-1)?.form.get('token'), jwt.value)
    server.introspect = () => ({ body: { active: false } })
    await rejectsWith(tokens.verify(jwt, expect(), start + 6_000), 'GW_TOKEN_REVOKED')
  })

  test('issuer unreachable with no keys: GW_ISSUER_UNAVAILABLE, and not ready', async () => {
    const tokens = verifier(issuers({ caPem: pki.untrustedRoot.certPem }))
    await rejectsWith(tokens.verify(presented(await signAccessToken(es256, start)), expect(), start), 'GW_ISSUER_UNAVAILABLE')
    assert.equal(tokens.ready(), false)
  })

  test('ready() once every key set is loaded', async () => {
    const tokens = verifier()
    await tokens.verify(presented(await signAccessToken(es256, start)), expect(), start)
    await tokens.verify(presented(await signAccessToken(es256, start, { claims: { iss: otherIssuerId } })), expect(['other']), start)
    assert.equal(tokens.ready(), true)
  })

  test('configuration mistakes are refused at creation', () => {
    assert.throws(() => createTokenVerifier(issuers({ algorithms: ['RS256'] }), { now: () => start }), /RS256/)
    assert.throws(() => createTokenVerifier([{ name: 'x', issuer: issuerId, audience: audienceId }], { now: () => start }), /jwksUri or introspection/)
    assert.throws(
      () =>
        createTokenVerifier([{ name: 'x', issuer: issuerId, audience: audienceId, jwksUri: 'https://127.0.0.1:1/', introspectJwt: true }], {
          now: () => start,
        }),
      /introspectJwt/,
    )
  })
})

describe('issuers behind the authorization-server façade (issuers[].facade)', () => {
  test('jwks: a legacy JWT without typ at+jwt or cnf is verified by the JWKS (requireTyp false) and marked for its record; a forged one is refused', async () => {
    const legacy = await signAccessToken(es256, start, { header: { typ: 'JWT' }, claims: { cnf: undefined } })
    const tokens = verifier(issuers({ facade: 'jwks', requireTyp: false }))
    const token = await tokens.verify(presented(legacy), expect(), start)
    assert.equal(token.facade, 'jwks')
    assert.deepEqual(token.binding, {})
    assert.equal(server.introspectionCalls.length, 0)
    const [header, payload] = legacy.split('.')
    await rejectsWith(tokens.verify(presented(`${header}.${payload}.AAAA`), expect(), start), 'GW_TOKEN_INVALID')
    await rejectsWith(tokens.verify(presented('opaque-abc'), expect(), start), 'GW_TOKEN_INVALID')
  })

  test('introspection: JWTs and opaque tokens alike are introspected, and an inactive one is refused before any record is read', async () => {
    server.introspect = () => ({
      body: { active: true, iss: issuerId, aud: audienceId, sub: 'legacy-user', scope: 'accounts', exp: startSeconds + 300, token_type: 'Bearer' },
    })
    const tokens = verifier(issuers({ facade: 'introspection' }))
    const opaque = await tokens.verify(presented('legacy-opaque'), expect(), start)
    assert.equal(opaque.facade, 'introspection')
    const jwt = await tokens.verify(presented(await signAccessToken(es256, start, { claims: { cnf: undefined } })), expect(), start)
    assert.equal(jwt.facade, 'introspection')
    assert.equal(server.introspectionCalls.length, 2)
    server.introspect = () => ({ body: { active: false } })
    await rejectsWith(tokens.verify(presented('legacy-inactive'), expect(), start), 'GW_TOKEN_INACTIVE')
  })

  test('registry: nothing is asked of the legacy server; the token waits for its record; a string of the wrong shape is refused', async () => {
    const tokens = verifier(issuers({ facade: 'registry' }))
    const opaque = await tokens.verify(presented('legacy-opaque-token'), expect(), start)
    assert.deepEqual([opaque.facade, opaque.format, opaque.issuerName, opaque.scopes.size, opaque.exp], ['registry', 'opaque', 'main', 0, undefined])
    const jwt = await tokens.verify(presented(await signAccessToken(es256, start, { claims: { cnf: undefined } })), expect(), start)
    assert.deepEqual([jwt.facade, jwt.format], ['registry', 'jwt'])
    assert.equal(server.introspectionCalls.length, 0)
    assert.equal(server.jwksRequests, 0)
    await rejectsWith(tokens.verify(presented('x'.repeat(5000)), expect(), start), 'GW_TOKEN_INVALID')
  })

  test('registry needs neither jwksUri nor introspection; introspection and jwks need theirs', () => {
    const bare = { name: 'legacy', issuer: issuerId, audience: audienceId }
    verifier([{ ...bare, facade: 'registry' }])
    assert.throws(() => createTokenVerifier([{ ...bare, facade: 'introspection', jwksUri: server.jwksUri }], { now: () => start }), TypeError)
    assert.throws(() => createTokenVerifier([{ ...bare, facade: 'jwks', introspection: issuers()[0]!.introspection }], { now: () => start }), TypeError)
  })
})
