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
import type { AccessToken, ClientCert, PeerCertificateVerdict } from '../../src/types.ts'

const BASE = 'https://api.bank.example'

interface Harness {
  readonly deps: AuthorizeDeps
  readonly calls: string[]
  request(options: { token?: string; proof?: string; target?: string; peer?: PeerCertificateVerdict; checkBody?: () => Promise<void> }): GatewayRequest
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
    request: ({ token, proof, target = '/accounts/1', peer = { kind: 'absent' }, checkBody }) => ({
      method: 'GET',
      target,
      headers: readCredentialHeaders([...(token ? ['authorization', `DPoP ${token}`] : []), ...(proof ? ['dpop', proof] : [])]),
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
