// authorize(), the request pipeline, with its real steps: the route table, the DPoP check with real
// signed proofs, the in-memory replay store and revoked-token list. The token verifier and the
// revocation checker are stand-ins that record their calls (both have tests of their own against a
// real issuer and real OCSP/CRL sources); here only the order of the steps is under test.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { authorize, type AuthorizeDeps, type GatewayRequest } from '../../src/authorize.ts'
import { readCredentialHeaders } from '../../src/checks/credentials.ts'
import { createProofKeyCache } from '../../src/checks/dpop/proof-key-cache.ts'
import type { RevocationChecker } from '../../src/checks/revocation.ts'
import { routePolicySchema } from '../../src/config/schema.ts'
import { createProof, generateDpopKey, type DpopKey } from '../../src/client/partner-client.ts'
import { createMemoryReplayStore } from '../../src/replay/memory-store.ts'
import { createRouteTable } from '../../src/routes/route-table.ts'
import { createRevokedTokenList } from '../../src/tokens/revoked-tokens.ts'
import type { TokenVerifier } from '../../src/tokens/verifier.ts'
import type { ReplayStore } from '../../src/replay/store.ts'
import { createBindingRegistry, type BindingRecord } from '../../src/tokens/binding-registry.ts'
import { accessTokenHash } from '../../src/client/partner-client.ts'
import type { AccessToken, ClientCert, PeerCertificateVerdict } from '../../src/types.ts'

const BASE = 'https://api.bank.example'

interface Harness {
  readonly deps: AuthorizeDeps
  readonly calls: string[]
  readonly store: ReplayStore
  request(options: {
    token?: string
    proof?: string
    scheme?: 'DPoP' | 'Bearer'
    target?: string
    peer?: PeerCertificateVerdict
    checkBody?: () => Promise<void>
  }): GatewayRequest
}

function harness(tokenFor: (value: string) => AccessToken | Error): Harness {
  const calls: string[] = []
  const store = createMemoryReplayStore({ maxEntries: 1000, now: Date.now, sweepIntervalMs: 60_000 })
  const recordingStore = {
    ...store,
    async claimUnlessPresent(claimKey: string, ttlMs: number, blockingKey: string) {
      calls.push('replay')
      return store.claimUnlessPresent(claimKey, ttlMs, blockingKey)
    },
    async claimAndRead(claimKey: string, ttlMs: number, blockingKey: string, readKey: string) {
      calls.push('replay+record')
      return store.claimAndRead(claimKey, ttlMs, blockingKey, readKey)
    },
    async readUnlessPresent(readKey: string, blockingKey: string) {
      calls.push('revoked+record')
      return store.readUnlessPresent(readKey, blockingKey)
    },
    async has(key: string) {
      calls.push('revoked')
      return store.has(key)
    },
  }
  const tokens: TokenVerifier = {
    async verify(presented) {
      calls.push('token')
      const answer = tokenFor(presented.value)
      if (answer instanceof Error) throw answer
      return answer
    },
    ready: () => true,
    close: async () => undefined,
  }
  const revocation: RevocationChecker = {
    async check() {
      calls.push('revocation')
    },
  }
  const routes = createRouteTable(
    [
      routePolicySchema.parse({
        name: 'accounts-read',
        path: '/accounts/**',
        methods: ['GET'],
        upstream: 'api',
        scopes: ['accounts:read'],
        binding: 'dpop-or-mtls',
      }),
    ],
    ['bank'],
  )
  const deps: AuthorizeDeps = {
    routes,
    revocation,
    tokens,
    revokedTokens: createRevokedTokenList(recordingStore),
    dpop: { algorithms: ['ES256', 'PS256', 'EdDSA'], maxAgeSeconds: 60, maxFutureSeconds: 10, maxJtiLength: 256, nonceMode: 'off', nonces: undefined },
    proofKeys: createProofKeyCache({ maxEntries: 100 }),
    verifyProofsOn: 'eventLoop',
    replay: recordingStore,
    replayTtlMs: 91_000,
    publicBaseUrl: BASE,
  }
  return {
    deps,
    calls,
    store,
    request: ({ token, proof, scheme = 'DPoP', target = '/accounts/1', peer = { kind: 'absent' }, checkBody }) => ({
      method: 'GET',
      target,
      headers: readCredentialHeaders([...(token ? ['authorization', `${scheme} ${token}`] : []), ...(proof ? ['dpop', proof] : [])]),
      peer,
      checkBody,
      nowMs: Date.now(),
    }),
  }
}

function accessToken(key: DpopKey, scopes: string[]): AccessToken {
  return {
    format: 'opaque',
    issuerName: 'bank',
    iss: 'https://as.bank.example',
    sub: 'customer-42',
    clientId: 'partner-a',
    scopes: new Set(scopes),
    audiences: [BASE],
    exp: undefined,
    jti: undefined,
    binding: { jkt: key.jkt },
    tokenType: 'DPoP',
  }
}

describe('authorize()', () => {
  it('grants a DPoP-bound request after every step, in order, and refuses the same proof again as a replay', async () => {
    const key = await generateDpopKey('ES256')
    const h = harness(() => accessToken(key, ['accounts:read']))
    const proof = await createProof(key, { htm: 'GET', htu: `${BASE}/accounts/1`, accessToken: 'opaque-token-1' })
    const bodies: string[] = []
    const verdict = await authorize(h.request({ token: 'opaque-token-1', proof, checkBody: async () => void bodies.push('read') }), h.deps)
    assert.ok(verdict.ok, verdict.ok ? '' : verdict.refusal.error.code)
    assert.equal(verdict.grant.route.name, 'accounts-read')
    assert.equal(verdict.grant.proof?.jkt, key.jkt)
    assert.deepEqual(h.calls, ['token', 'replay'])
    assert.deepEqual(bodies, ['read'], 'the body is read once, after the replay claim')
    const again = await authorize(h.request({ token: 'opaque-token-1', proof }), h.deps)
    assert.ok(!again.ok)
    assert.equal(again.refusal.error.code, 'GW_DPOP_REPLAY')
    assert.equal(again.refusal.check, 'replay')
  })

  it('a request a later step refuses never burns the jti, and never has its body read', async () => {
    const key = await generateDpopKey('ES256')
    const h = harness(() => accessToken(key, ['payments:write']))
    const proof = await createProof(key, { htm: 'GET', htu: `${BASE}/accounts/1`, accessToken: 'opaque-token-2' })
    let bodyRead = false
    const verdict = await authorize(h.request({ token: 'opaque-token-2', proof, checkBody: async () => void (bodyRead = true) }), h.deps)
    assert.ok(!verdict.ok)
    assert.equal(verdict.refusal.error.code, 'GW_SCOPE_INSUFFICIENT')
    assert.equal(verdict.refusal.check, 'scope')
    assert.equal(verdict.refusal.token?.clientId, 'partner-a', 'the refusal carries what was known, for the event')
    assert.deepEqual(h.calls, ['token'], 'no replay claim')
    assert.equal(bodyRead, false)
  })

  it('stops at the first refusal: an unknown route asks no verifier, a missing token asks no verifier', async () => {
    const key = await generateDpopKey('ES256')
    const h = harness(() => accessToken(key, ['accounts:read']))
    const unknown = await authorize(h.request({ token: 't', target: '/admin' }), h.deps)
    assert.ok(!unknown.ok)
    assert.equal(unknown.refusal.error.code, 'GW_ROUTE_UNKNOWN')
    assert.equal(unknown.refusal.check, 'route')
    const missing = await authorize(h.request({}), h.deps)
    assert.ok(!missing.ok)
    assert.equal(missing.refusal.error.code, 'GW_TOKEN_MISSING')
    assert.equal(missing.refusal.check, 'credentials')
    assert.equal(missing.refusal.route?.name, 'accounts-read')
    assert.deepEqual(h.calls, [])
  })

  it('asks the revocation checker only when a certificate was presented, and before the token', async () => {
    const key = await generateDpopKey('ES256')
    const h = harness(() => accessToken(key, ['accounts:read']))
    const cert: ClientCert = {
      thumbprint: 'x'.repeat(43),
      subject: 'CN=partner-a',
      issuer: 'CN=CA',
      serialNumber: '01',
      notAfter: Date.now() + 60_000,
      chainDer: [],
    }
    const proof = await createProof(key, { htm: 'GET', htu: `${BASE}/accounts/1`, accessToken: 'opaque-token-3' })
    const verdict = await authorize(h.request({ token: 'opaque-token-3', proof, peer: { kind: 'valid', cert } }), h.deps)
    assert.ok(verdict.ok)
    assert.deepEqual(h.calls, ['revocation', 'token', 'replay'])
  })

  it('turns an unexpected failure in a step into GW_INTERNAL with its cause, never a throw', async () => {
    const failure = new TypeError('verifier bug')
    const h = harness(() => failure)
    const verdict = await authorize(h.request({ token: 'opaque-token-4' }), h.deps)
    assert.ok(!verdict.ok)
    assert.equal(verdict.refusal.error.code, 'GW_INTERNAL')
    assert.equal(verdict.refusal.error.cause, failure)
    assert.equal(verdict.refusal.check, 'token', 'the step it happened in')
  })
})

describe('the structured reason of a refusal', () => {
  it('names the rule a DPoP proof broke, so that tests and events match it without parsing the detail', async () => {
    const key = await generateDpopKey('ES256')
    const h = harness(() => accessToken(key, ['accounts:read']))
    const old = await createProof(key, { htm: 'GET', htu: `${BASE}/accounts/1`, accessToken: 'opaque-token-5', iat: Math.floor(Date.now() / 1000) - 600 })
    const tooOld = await authorize(h.request({ token: 'opaque-token-5', proof: old }), h.deps)
    assert.ok(!tooOld.ok)
    assert.deepEqual([tooOld.refusal.error.code, tooOld.refusal.check, tooOld.refusal.error.rule], ['GW_DPOP_INVALID', 'dpop', 'iat'])
    const elsewhere = await createProof(key, { htm: 'GET', htu: `${BASE}/accounts/2`, accessToken: 'opaque-token-5' })
    const wrongUrl = await authorize(h.request({ token: 'opaque-token-5', proof: elsewhere }), h.deps)
    assert.ok(!wrongUrl.ok)
    assert.equal(wrongUrl.refusal.error.rule, 'htu')
  })
})

/** A legacy token as the verifier hands it on for an issuer behind the façade: no binding, maybe no scope. */
function legacyToken(validate: 'introspection' | 'jwks' | 'registry', scopes: string[] = []): AccessToken {
  return {
    format: 'opaque',
    issuerName: 'bank',
    iss: 'https://as.bank.example',
    sub: validate === 'registry' ? undefined : 'customer-42',
    clientId: 'legacy-shared-client',
    scopes: new Set(scopes),
    audiences: validate === 'registry' ? [] : [BASE],
    exp: undefined,
    jti: undefined,
    binding: {},
    tokenType: validate === 'registry' ? undefined : 'Bearer',
    facade: validate,
  }
}

function recordFor(binding: { jkt?: string; x5t?: string }, overrides: Partial<BindingRecord> = {}): BindingRecord {
  const now = Math.floor(Date.now() / 1000)
  return {
    kind: 'access_token',
    issuerName: 'bank',
    clientId: 'partner-a',
    legacyClientId: 'legacy-shared-client',
    ...binding,
    scope: 'accounts:read openid',
    sub: 'customer-from-record',
    issuedAt: now,
    expiresAt: now + 300,
    ...overrides,
  }
}

function certificate(thumbprintSeed: string): ClientCert {
  return {
    thumbprint: accessTokenHash(thumbprintSeed),
    subject: 'CN=partner-a',
    issuer: 'CN=CA',
    serialNumber: '01',
    notAfter: Date.now() + 60_000,
    chainDer: [],
  }
}

describe('authorize() for a token of an issuer behind the façade (binding from its record)', () => {
  it('DPoP: the proof by the recorded key passes with one store round trip; the record completes the token; the proof again is a replay', async () => {
    const key = await generateDpopKey('ES256')
    const h = harness(() => legacyToken('registry'))
    await createBindingRegistry(h.store).record(accessTokenHash('legacy-1'), recordFor({ jkt: key.jkt }), 60_000)
    const proof = await createProof(key, { htm: 'GET', htu: `${BASE}/accounts/1`, accessToken: 'legacy-1' })
    const verdict = await authorize(h.request({ token: 'legacy-1', proof }), h.deps)
    assert.ok(verdict.ok, verdict.ok ? '' : verdict.refusal.error.code)
    assert.deepEqual(h.calls, ['token', 'replay+record'], 'one store call: the revoked list, the jti claim and the record')
    const { token } = verdict.grant
    assert.deepEqual(token.binding, { jkt: key.jkt })
    assert.deepEqual([...token.scopes], ['accounts:read', 'openid'])
    assert.equal(token.clientId, 'partner-a', 'the partner, not the legacy client')
    assert.equal(token.sub, 'customer-from-record')
    assert.equal(token.exp, recordFor({}).expiresAt)
    const again = await authorize(h.request({ token: 'legacy-1', proof }), h.deps)
    assert.ok(!again.ok)
    assert.deepEqual([again.refusal.error.code, again.refusal.check], ['GW_DPOP_REPLAY', 'replay'])
  })

  it("DPoP: a proof by another key is GW_DPOP_BINDING_MISMATCH naming that key; its jti claim cannot burn the right key's", async () => {
    const key = await generateDpopKey('ES256')
    const other = await generateDpopKey('ES256')
    const h = harness(() => legacyToken('introspection', ['accounts:read']))
    await createBindingRegistry(h.store).record(accessTokenHash('legacy-2'), recordFor({ jkt: key.jkt }), 60_000)
    const jti = 'same-jti'
    const wrong = await createProof(other, { htm: 'GET', htu: `${BASE}/accounts/1`, accessToken: 'legacy-2', jti })
    const refused = await authorize(h.request({ token: 'legacy-2', proof: wrong }), h.deps)
    assert.ok(!refused.ok)
    assert.deepEqual([refused.refusal.error.code, refused.refusal.check], ['GW_DPOP_BINDING_MISMATCH', 'dpop'])
    assert.equal(refused.refusal.error.keyThumbprint, other.jkt)
    const right = await createProof(key, { htm: 'GET', htu: `${BASE}/accounts/1`, accessToken: 'legacy-2', jti })
    const verdict = await authorize(h.request({ token: 'legacy-2', proof: right }), h.deps)
    assert.ok(verdict.ok, verdict.ok ? '' : verdict.refusal.error.code)
  })

  it("no record (issued by the legacy server directly) is GW_TOKEN_UNREGISTERED, claims no jti; so are a refresh token's and another issuer's records", async () => {
    const key = await generateDpopKey('ES256')
    const h = harness(() => legacyToken('introspection', ['accounts:read']))
    const registry = createBindingRegistry(h.store)
    const cases: [string, BindingRecord | undefined][] = [
      ['legacy-3a', undefined],
      ['legacy-3b', recordFor({ jkt: key.jkt }, { kind: 'refresh_token' })],
      ['legacy-3c', recordFor({ jkt: key.jkt }, { issuerName: 'other-bank' })],
    ]
    for (const [value, record] of cases) {
      if (record) await registry.record(accessTokenHash(value), record, 60_000)
      const proof = await createProof(key, { htm: 'GET', htu: `${BASE}/accounts/1`, accessToken: value, jti: `jti-${value}` })
      const dpop = await authorize(h.request({ token: value, proof }), h.deps)
      assert.ok(!dpop.ok)
      assert.deepEqual([dpop.refusal.error.code, dpop.refusal.check], ['GW_TOKEN_UNREGISTERED', 'token'], value)
      const bearer = await authorize(h.request({ token: value, scheme: 'Bearer' }), h.deps)
      assert.ok(!bearer.ok)
      assert.equal(bearer.refusal.error.code, 'GW_TOKEN_UNREGISTERED', value)
    }
    const claimKey = `dpop:{${accessTokenHash('legacy-3a')}}:${key.jkt}:${accessTokenHash('jti-legacy-3a')}`
    assert.equal(await h.store.has(claimKey), false, 'no record, no claim')
  })

  it('Bearer use of a DPoP-bound record is GW_TOKEN_DOWNGRADE', async () => {
    const key = await generateDpopKey('ES256')
    const h = harness(() => legacyToken('jwks', ['accounts:read']))
    await createBindingRegistry(h.store).record(accessTokenHash('legacy-4'), recordFor({ jkt: key.jkt }), 60_000)
    const verdict = await authorize(h.request({ token: 'legacy-4', scheme: 'Bearer' }), h.deps)
    assert.ok(!verdict.ok)
    assert.deepEqual([verdict.refusal.error.code, verdict.refusal.check], ['GW_TOKEN_DOWNGRADE', 'binding'])
  })

  it('certificate-bound record: the recorded certificate passes (one store call), another is GW_CERT_BINDING_MISMATCH', async () => {
    const h = harness(() => legacyToken('registry'))
    const cert = certificate('partner-a certificate')
    await createBindingRegistry(h.store).record(accessTokenHash('legacy-5'), recordFor({ x5t: cert.thumbprint }), 60_000)
    const verdict = await authorize(h.request({ token: 'legacy-5', scheme: 'Bearer', peer: { kind: 'valid', cert } }), h.deps)
    assert.ok(verdict.ok, verdict.ok ? '' : verdict.refusal.error.code)
    assert.deepEqual(h.calls, ['revocation', 'token', 'revoked+record'])
    const other = await authorize(h.request({ token: 'legacy-5', scheme: 'Bearer', peer: { kind: 'valid', cert: certificate('another') } }), h.deps)
    assert.ok(!other.ok)
    assert.equal(other.refusal.error.code, 'GW_CERT_BINDING_MISMATCH')
    const none = await authorize(h.request({ token: 'legacy-5', scheme: 'Bearer' }), h.deps)
    assert.ok(!none.ok)
    assert.equal(none.refusal.error.code, 'GW_CERT_BINDING_MISMATCH')
  })

  it('a revoked token is refused on both paths, in the same round trip', async () => {
    const key = await generateDpopKey('ES256')
    const cert = certificate('partner-a certificate')
    const h = harness((value) => legacyToken(value === 'legacy-6' ? 'introspection' : 'registry', ['accounts:read']))
    const registry = createBindingRegistry(h.store)
    const revoked = createRevokedTokenList(h.store)
    await registry.record(accessTokenHash('legacy-6'), recordFor({ jkt: key.jkt }), 60_000)
    await registry.record(accessTokenHash('legacy-7'), recordFor({ x5t: cert.thumbprint }), 60_000)
    await revoked.revoke(accessTokenHash('legacy-6'), 60_000)
    await revoked.revoke(accessTokenHash('legacy-7'), 60_000)
    const proof = await createProof(key, { htm: 'GET', htu: `${BASE}/accounts/1`, accessToken: 'legacy-6' })
    const dpop = await authorize(h.request({ token: 'legacy-6', proof }), h.deps)
    assert.ok(!dpop.ok)
    assert.deepEqual([dpop.refusal.error.code, dpop.refusal.check], ['GW_TOKEN_REVOKED', 'replay'])
    const mtls = await authorize(h.request({ token: 'legacy-7', scheme: 'Bearer', peer: { kind: 'valid', cert } }), h.deps)
    assert.ok(!mtls.ok)
    assert.equal(mtls.refusal.error.code, 'GW_TOKEN_REVOKED')
  })

  it("scopes: the record's, narrowed by what the token says; an expired record is GW_TOKEN_EXPIRED; a bad proof never reaches the store", async () => {
    const key = await generateDpopKey('ES256')
    const h = harness((value) => legacyToken('introspection', value === 'legacy-8' ? ['payments:write'] : []))
    const registry = createBindingRegistry(h.store)
    await registry.record(accessTokenHash('legacy-8'), recordFor({ jkt: key.jkt }), 60_000)
    const narrowed = await authorize(
      h.request({ token: 'legacy-8', proof: await createProof(key, { htm: 'GET', htu: `${BASE}/accounts/1`, accessToken: 'legacy-8' }) }),
      h.deps,
    )
    assert.ok(!narrowed.ok)
    assert.deepEqual([narrowed.refusal.error.code, narrowed.refusal.check], ['GW_SCOPE_INSUFFICIENT', 'scope'])
    assert.deepEqual([...(narrowed.refusal.token?.scopes ?? [])], [], 'payments:write was never granted through the gateway')

    const past = Math.floor(Date.now() / 1000) - 10
    await registry.record(accessTokenHash('legacy-9'), recordFor({ jkt: key.jkt }, { issuedAt: past - 300, expiresAt: past }), 60_000)
    const expired = await authorize(
      h.request({ token: 'legacy-9', proof: await createProof(key, { htm: 'GET', htu: `${BASE}/accounts/1`, accessToken: 'legacy-9' }) }),
      h.deps,
    )
    assert.ok(!expired.ok)
    assert.equal(expired.refusal.error.code, 'GW_TOKEN_EXPIRED')

    h.calls.length = 0
    const forged = await createProof(key, { htm: 'GET', htu: `${BASE}/accounts/2`, accessToken: 'legacy-8' })
    const badProof = await authorize(h.request({ token: 'legacy-8', proof: forged }), h.deps)
    assert.ok(!badProof.ok)
    assert.deepEqual([badProof.refusal.error.code, badProof.refusal.error.rule], ['GW_DPOP_INVALID', 'htu'])
    assert.deepEqual(h.calls, ['token'], 'refused before the store')
  })
})
