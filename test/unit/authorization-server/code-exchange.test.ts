// The code exchange with the front channel on (issue 14 point 5; fapi-requirements A9, A12, A14): the code
// is the gateway's, checked before the legacy server's code is redeemed with the gateway's callback URL.
// Real legacy server (its codes obtained through its own login and consent pages), real client
// authentication, real DPoP proofs, real memory replay store behind the front-channel state, bindings and
// revoked list. Every refusal also asserts that the legacy token endpoint was not called.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes, type X509Certificate } from 'node:crypto'
import { signInForCode, startLegacyServer } from '../../../dev/legacy-server.ts'
import { createLegacyClient } from '../../../src/authorization-server/legacy-client.ts'
import { createClientAuthenticator } from '../../../src/authorization-server/client-authentication/authenticate.ts'
import { answerTokenRequest, type TokenEndpointDeps, type TokenRequest } from '../../../src/authorization-server/token-endpoint.ts'
import { hashToken } from '../../../src/checks/credentials.ts'
import { legacyCodeRedemption, pkceVerifierMatches } from '../../../src/authorization-server/front-channel/code-exchange.ts'
import { createFrontChannelState, type FrontChannelState, type IssuedCode } from '../../../src/authorization-server/front-channel/state.ts'
import type { OAuthErrorCode } from '../../../src/authorization-server/errors.ts'
import { createMemoryReplayStore } from '../../../src/replay/memory-store.ts'
import type { ReplayStore } from '../../../src/replay/store.ts'
import { createBindingRegistry, type BindingRegistry } from '../../../src/tokens/binding-registry.ts'
import { createRevokedTokenList, type RevokedTokenList } from '../../../src/tokens/revoked-tokens.ts'
import { createProofKeyCache } from '../../../src/checks/dpop/proof-key-cache.ts'
import { createProof, generateDpopKey, type DpopKey } from '../../../src/client/partner-client.ts'
import { partnerSchema, type PartnerConfig } from '../../../src/config/schema.ts'
import type { Partner, PartnerRegistry } from '../../../src/authorization-server/partners.ts'
import type { PeerCertificateVerdict } from '../../../src/types.ts'
import { jwtParams, refusedWith, signAssertion, signingKey, type SigningKey } from '../../support/client-authentication.ts'
import { createTestCa, validPeer } from '../../support/client-certificates.ts'
import { testPki } from '../../support/gateway.ts'

const ISSUER = 'https://api.bank.example'
const TOKEN_URL = `${ISSUER}/oauth2/token`
const CALLBACK_URL = `${ISSUER}/oauth2/callback`
const PARTNER_REDIRECT = 'https://fintech.example/cb'
const LEGACY_CREDENTIALS = { clientId: 'gw-fintech', authentication: 'client_secret_basic', secret: 'legacy-secret' } as const

const legacy = await startLegacyServer({
  pki: await testPki(),
  clients: [
    {
      clientId: 'gw-fintech',
      clientSecret: 'legacy-secret',
      grantTypes: ['authorization_code', 'refresh_token'],
      scopes: ['accounts'],
      redirectUris: [CALLBACK_URL],
    },
  ],
})
after(() => legacy.close())
const legacyTokenPath = new URL(legacy.tokenEndpoint).pathname
const legacyClient = createLegacyClient({ tokenEndpoint: legacy.tokenEndpoint, caPem: legacy.caPem, connectTimeoutMs: 2000, timeoutMs: 5000, connections: 2 })
after(() => legacyClient.close())

function partnerOf(clientId: string, authentication: PartnerConfig['authentication']): Partner {
  const config = partnerSchema.parse({
    clientId,
    authentication,
    grantTypes: ['authorization_code', 'refresh_token'],
    scopes: ['accounts'],
    redirectUris: [PARTNER_REDIRECT],
    legacy: { clientId: 'gw-fintech', secretEnv: 'UNUSED' },
  })
  return { clientId, config, grantTypes: new Set(config.grantTypes), scopes: new Set(config.scopes), legacy: LEGACY_CREDENTIALS }
}

let fintechKey: SigningKey
let otherKey: SigningKey
let tlsCert: X509Certificate
let tlsPeer: PeerCertificateVerdict
let partners: PartnerRegistry

before(async () => {
  ;[fintechKey, otherKey] = await Promise.all([signingKey('ES256'), signingKey('ES256')])
  const ca = await createTestCa()
  tlsCert = await ca.issue({ subject: 'C=DE, O=Example Bank, CN=fintech-tls' })
  tlsPeer = validPeer(tlsCert, ca.cert)
  const all = [
    partnerOf('fintech', { method: 'private_key_jwt', jwks: { keys: [fintechKey.publicJwk] } }),
    partnerOf('other', { method: 'private_key_jwt', jwks: { keys: [otherKey.publicJwk] } }),
    partnerOf('fintech-tls', { method: 'tls_client_auth', subjectDn: 'CN=fintech-tls,O=Example Bank,C=DE' }),
  ]
  const byId = new Map(all.map((p) => [p.clientId, p]))
  partners = { get: (id) => byId.get(id), legacyCredentials: () => LEGACY_CREDENTIALS, size: byId.size }
})

interface Gateway {
  readonly store: ReplayStore
  readonly state: FrontChannelState
  readonly bindings: BindingRegistry
  readonly revoked: RevokedTokenList
  readonly deps: TokenEndpointDeps
}

/** storeNow: the store's clock, to let its entries expire without waiting. */
function gateway(storeNow: () => number = Date.now): Gateway {
  const store = createMemoryReplayStore({ maxEntries: 10_000, now: storeNow })
  const state = createFrontChannelState(store)
  const bindings = createBindingRegistry(store)
  const revoked = createRevokedTokenList(store)
  return {
    store,
    state,
    bindings,
    revoked,
    deps: {
      authenticator: createClientAuthenticator({ issuer: ISSUER, clockToleranceSeconds: 10, maxLifetimeSeconds: 300 }, { partners, store }),
      legacy: legacyClient,
      bindings,
      proofs: {
        dpop: { algorithms: ['ES256'], maxAgeSeconds: 60, maxFutureSeconds: 10, maxJtiLength: 256, nonceMode: 'off', nonces: undefined },
        proofKeys: createProofKeyCache({ maxEntries: 10 }),
        verifyOn: 'eventLoop',
        store,
        replayTtlMs: 71_000,
      },
      frontChannel: { state, revokedTokens: revoked, callbackUrl: CALLBACK_URL },
    },
  }
}

const settings = { url: TOKEN_URL, resourceIssuer: 'legacy', accessTokenMaxLifetimeSeconds: 3600, refreshTokenLifetimeSeconds: 86400, openid: false }

const pkcePair = () => {
  const verifier = randomBytes(32).toString('base64url')
  return { verifier, challenge: createHash('sha256').update(verifier, 'ascii').digest('base64url') }
}

/** A real legacy code for the gateway's callback, and the gateway's own code standing for it, as the callback issues it. */
async function issueCode(gw: Gateway, overrides: Partial<IssuedCode> = {}) {
  const legacyCode = await signInForCode(legacy, { clientId: 'gw-fintech', redirectUri: CALLBACK_URL, scope: 'accounts' })
  const { verifier, challenge } = pkcePair()
  const code = randomBytes(32).toString('base64url')
  const now = Date.now()
  const issued: IssuedCode = {
    clientId: 'fintech',
    redirectUri: PARTNER_REDIRECT,
    codeChallenge: challenge,
    dpopJkt: undefined,
    scope: 'accounts',
    legacyCode,
    legacyCodeVerifier: undefined,
    issuedAt: now,
    expiresAt: now + 60_000,
    ...overrides,
  }
  await gw.state.issueCode(code, issued, 60_000)
  return { code, verifier }
}

interface RequestOptions {
  readonly clientId?: string
  readonly key?: SigningKey
  readonly dpopKey?: DpopKey | null
  readonly peer?: PeerCertificateVerdict
  readonly peerCertificate?: X509Certificate
}

async function codeRequest(params: Record<string, string | undefined>, options: RequestOptions = {}): Promise<TokenRequest> {
  const clientId = options.clientId ?? 'fintech'
  const form: Record<string, string> = { grant_type: 'authorization_code' }
  for (const [name, value] of Object.entries(params)) if (value !== undefined) form[name] = value
  const authentication = options.peer ? { client_id: clientId, ...form } : jwtParams(await signAssertion(options.key ?? fintechKey, clientId, ISSUER), form)
  const dpopKey = options.dpopKey === undefined ? await generateDpopKey('ES256') : options.dpopKey
  return {
    params: new Map(Object.entries(authentication)),
    authorization: undefined,
    proofHeaders: dpopKey ? [await createProof(dpopKey, { htm: 'POST', htu: TOKEN_URL })] : [],
    peer: options.peer ?? { kind: 'absent' },
    peerCertificate: options.peerCertificate,
    nowMs: Date.now(),
  }
}

const legacyTokenCalls = () => legacy.requestsTo(legacyTokenPath).length

/** The request must be refused with code and rule, and the legacy token endpoint never called. */
async function refusedBeforeLegacy(gw: Gateway, request: TokenRequest, code: OAuthErrorCode, rule: string, expectedError: string) {
  const before = legacyTokenCalls()
  const error = await refusedWith(answerTokenRequest(request, settings, gw.deps, {}), code, rule)
  assert.equal(error.error, expectedError)
  assert.equal(legacyTokenCalls(), before, 'the legacy token endpoint was not called')
}

describe('code exchange: the legitimate request', () => {
  test('EnsureDpopAuthCodeBindingSuccess: a DPoP-bound code redeemed with a proof by its key gives a DPoP token whose record exists', async () => {
    const gw = gateway()
    const dpopKey = await generateDpopKey('ES256')
    const { code, verifier } = await issueCode(gw, { dpopJkt: dpopKey.jkt })
    const before = legacy.requests.length
    const answer = await answerTokenRequest(
      await codeRequest({ code, redirect_uri: PARTNER_REDIRECT, code_verifier: verifier }, { dpopKey }),
      settings,
      gw.deps,
      {},
    )
    assert.equal(answer.body.token_type, 'DPoP')
    assert.equal(answer.body.scope, 'accounts')
    assert.equal(typeof answer.body.refresh_token, 'string')
    const record = await gw.bindings.lookup(hashToken(answer.body.access_token as string))
    assert.equal(record?.jkt, dpopKey.jkt)
    assert.equal(record?.clientId, 'fintech')
    assert.equal(record?.legacyClientId, 'gw-fintech')
    assert.equal((await gw.bindings.lookup(hashToken(answer.body.refresh_token as string)))?.kind, 'refresh_token')

    const calls = legacy.requests.slice(before)
    assert.deepEqual(
      calls.map((call) => [call.path, call.grantType, call.clientId]),
      [[legacyTokenPath, 'authorization_code', 'gw-fintech']],
      'the legacy code was redeemed exactly once, with the legacy credentials',
    )
    assert.deepEqual(
      [...(await gw.state.issuedFor(code))].sort(),
      [hashToken(answer.body.access_token as string), hashToken(answer.body.refresh_token as string)].sort(),
      'the issued tokens are remembered for a reuse',
    )
  })

  test('a code with no DPoP binding is redeemed by a tls_client_auth partner: a certificate-bound token', async () => {
    const gw = gateway()
    const { code, verifier } = await issueCode(gw, { clientId: 'fintech-tls' })
    const answer = await answerTokenRequest(
      await codeRequest(
        { code, redirect_uri: PARTNER_REDIRECT, code_verifier: verifier },
        { clientId: 'fintech-tls', peer: tlsPeer, peerCertificate: tlsCert, dpopKey: null },
      ),
      settings,
      gw.deps,
      {},
    )
    assert.equal(answer.body.token_type, 'Bearer')
    const record = await gw.bindings.lookup(hashToken(answer.body.access_token as string))
    assert.equal(record?.x5t, tlsPeer.kind === 'valid' ? tlsPeer.cert.thumbprint : undefined)
  })

  test('without the front channel an authorization code is passed on to the legacy server unchanged', async () => {
    const gw = gateway()
    const deps = { ...gw.deps, frontChannel: undefined }
    const legacyCode = await signInForCode(legacy, { clientId: 'gw-fintech', redirectUri: CALLBACK_URL, scope: 'accounts' })
    const answer = await answerTokenRequest(await codeRequest({ code: legacyCode, redirect_uri: CALLBACK_URL }), settings, deps, {})
    assert.equal(answer.body.token_type, 'DPoP')
  })
})

describe('code exchange: refusals (nothing reaches the legacy server)', () => {
  test('an unknown code is invalid_grant', async () => {
    const gw = gateway()
    const request = await codeRequest({ code: randomBytes(32).toString('base64url'), redirect_uri: PARTNER_REDIRECT, code_verifier: pkcePair().verifier })
    await refusedBeforeLegacy(gw, request, 'AS_GRANT_INVALID', 'code', 'invalid_grant')
  })

  test('a request with no code is invalid_request', async () => {
    const gw = gateway()
    await refusedBeforeLegacy(gw, await codeRequest({ redirect_uri: PARTNER_REDIRECT }), 'AS_REQUEST_MALFORMED', 'code', 'invalid_request')
  })

  test('AttemptToUseExpiredAuthCode: a code past its expiresAt is invalid_grant', async () => {
    const gw = gateway()
    const now = Date.now()
    // Still in the store (its entry outlives it), but past its own expiry: the record's times decide.
    const { code, verifier } = await issueCode(gw, { issuedAt: now - 61_000, expiresAt: now - 1_000 })
    await refusedBeforeLegacy(
      gw,
      await codeRequest({ code, redirect_uri: PARTNER_REDIRECT, code_verifier: verifier }),
      'AS_GRANT_INVALID',
      'code',
      'invalid_grant',
    )
  })

  test('a code recorded with a lifetime over 60 seconds is invalid_grant', async () => {
    const gw = gateway()
    const now = Date.now()
    const { code, verifier } = await issueCode(gw, { issuedAt: now, expiresAt: now + 120_000 })
    await refusedBeforeLegacy(
      gw,
      await codeRequest({ code, redirect_uri: PARTNER_REDIRECT, code_verifier: verifier }),
      'AS_GRANT_INVALID',
      'code',
      'invalid_grant',
    )
  })

  test('EnsureAuthorizationCodeIsBoundToClient: another client redeeming the code is invalid_grant', async () => {
    const gw = gateway()
    const { code, verifier } = await issueCode(gw)
    const request = await codeRequest({ code, redirect_uri: PARTNER_REDIRECT, code_verifier: verifier }, { clientId: 'other', key: otherKey })
    await refusedBeforeLegacy(gw, request, 'AS_GRANT_INVALID', 'client_id', 'invalid_grant')
  })

  test('a redirect_uri other than the pushed one is invalid_grant (RFC 6749 §4.1.3)', async () => {
    const gw = gateway()
    const { code, verifier } = await issueCode(gw)
    const request = await codeRequest({ code, redirect_uri: 'https://fintech.example/other', code_verifier: verifier })
    await refusedBeforeLegacy(gw, request, 'AS_GRANT_INVALID', 'redirect_uri', 'invalid_grant')
  })

  test('a missing redirect_uri is invalid_grant', async () => {
    const gw = gateway()
    const { code, verifier } = await issueCode(gw)
    await refusedBeforeLegacy(gw, await codeRequest({ code, code_verifier: verifier }), 'AS_GRANT_INVALID', 'redirect_uri', 'invalid_grant')
  })

  test('PAREnsurePKCECodeVerifierRequired: no code_verifier is invalid_grant', async () => {
    const gw = gateway()
    const { code } = await issueCode(gw)
    await refusedBeforeLegacy(gw, await codeRequest({ code, redirect_uri: PARTNER_REDIRECT }), 'AS_GRANT_INVALID', 'code_verifier', 'invalid_grant')
  })

  test('PARIncorrectPKCECodeVerifierRejected: a verifier of another challenge is invalid_grant', async () => {
    const gw = gateway()
    const { code } = await issueCode(gw)
    const request = await codeRequest({ code, redirect_uri: PARTNER_REDIRECT, code_verifier: pkcePair().verifier })
    await refusedBeforeLegacy(gw, request, 'AS_GRANT_INVALID', 'code_verifier', 'invalid_grant')
  })

  test('a verifier outside RFC 7636 (too short, or not of its alphabet) is invalid_grant, even when it hashes to the challenge', async () => {
    for (const verifier of ['a'.repeat(42), `${'a'.repeat(42)}+`, 'a'.repeat(129)]) {
      const gw = gateway()
      const challenge = createHash('sha256').update(verifier, 'ascii').digest('base64url')
      const { code } = await issueCode(gw, { codeChallenge: challenge })
      const request = await codeRequest({ code, redirect_uri: PARTNER_REDIRECT, code_verifier: verifier })
      await refusedBeforeLegacy(gw, request, 'AS_GRANT_INVALID', 'code_verifier', 'invalid_grant')
    }
  })

  test('EnsureTokenEndpointFailsWithMismatchedDpopJkt: a proof by another key than the code is bound to is invalid_dpop_proof', async () => {
    const gw = gateway()
    const bound = await generateDpopKey('ES256')
    const { code, verifier } = await issueCode(gw, { dpopJkt: bound.jkt })
    const request = await codeRequest({ code, redirect_uri: PARTNER_REDIRECT, code_verifier: verifier }, { dpopKey: await generateDpopKey('ES256') })
    await refusedBeforeLegacy(gw, request, 'AS_DPOP_INVALID', 'dpop_jkt', 'invalid_dpop_proof')
  })

  test('a certificate-bound request cannot redeem a DPoP-bound code', async () => {
    const gw = gateway()
    const bound = await generateDpopKey('ES256')
    const { code, verifier } = await issueCode(gw, { clientId: 'fintech-tls', dpopJkt: bound.jkt })
    const request = await codeRequest(
      { code, redirect_uri: PARTNER_REDIRECT, code_verifier: verifier },
      { clientId: 'fintech-tls', peer: tlsPeer, peerCertificate: tlsCert, dpopKey: null },
    )
    await refusedBeforeLegacy(gw, request, 'AS_DPOP_INVALID', 'dpop_jkt', 'invalid_dpop_proof')
  })
})

describe('code exchange: single use (RFC 6749 §4.1.2)', () => {
  test('AttemptReuseAuthorizationCodeAfterOneSecond: a second redemption is invalid_grant and ends the tokens of the first', async () => {
    const gw = gateway()
    const dpopKey = await generateDpopKey('ES256')
    const { code, verifier } = await issueCode(gw)
    const params = { code, redirect_uri: PARTNER_REDIRECT, code_verifier: verifier }
    const first = await answerTokenRequest(await codeRequest(params, { dpopKey }), settings, gw.deps, {})
    const issued = [hashToken(first.body.access_token as string), hashToken(first.body.refresh_token as string)]
    for (const tokenHash of issued) assert.ok(await gw.bindings.lookup(tokenHash), 'recorded after the first redemption')

    await refusedBeforeLegacy(gw, await codeRequest(params, { dpopKey }), 'AS_GRANT_INVALID', 'code_reuse', 'invalid_grant')
    for (const tokenHash of issued) {
      assert.equal(await gw.revoked.isRevoked(tokenHash), true, 'on the revoked list')
      assert.equal(await gw.bindings.lookup(tokenHash), undefined, 'its record removed')
    }
  })

  test('a reuse after the code record itself has expired is still recognised, from what the first redemption issued', async () => {
    let storeAheadMs = 0
    const gw = gateway(() => Date.now() + storeAheadMs)
    const { code, verifier } = await issueCode(gw)
    const params = { code, redirect_uri: PARTNER_REDIRECT, code_verifier: verifier }
    const first = await answerTokenRequest(await codeRequest(params), settings, gw.deps, {})
    const issued = [hashToken(first.body.access_token as string), hashToken(first.body.refresh_token as string)]
    // Two hours on: the code's entry and its redemption claim have expired; the memory of the issued tokens has not.
    storeAheadMs = 2 * 3_600_000
    assert.equal(await gw.state.redeemCode(code), undefined)
    await refusedBeforeLegacy(gw, await codeRequest(params), 'AS_GRANT_INVALID', 'code_reuse', 'invalid_grant')
    for (const tokenHash of issued) {
      assert.equal(await gw.revoked.isRevoked(tokenHash), true, 'on the revoked list')
      assert.equal(await gw.bindings.lookup(tokenHash), undefined, 'no record')
    }
  })

  test('a code refused by a later check is used up: the corrected request is then a reuse, and nothing was issued to end', async () => {
    const gw = gateway()
    const { code, verifier } = await issueCode(gw)
    await refusedBeforeLegacy(
      gw,
      await codeRequest({ code, redirect_uri: PARTNER_REDIRECT, code_verifier: pkcePair().verifier }),
      'AS_GRANT_INVALID',
      'code_verifier',
      'invalid_grant',
    )
    await refusedBeforeLegacy(
      gw,
      await codeRequest({ code, redirect_uri: PARTNER_REDIRECT, code_verifier: verifier }),
      'AS_GRANT_INVALID',
      'code_reuse',
      'invalid_grant',
    )
  })
})

describe('code exchange: parts', () => {
  test('the legacy code is redeemed with the callback URL, and the gateway PKCE verifier when there is one', () => {
    const base = { clientId: 'fintech', redirectUri: PARTNER_REDIRECT, codeChallenge: 'x', dpopJkt: undefined, scope: undefined, issuedAt: 0, expiresAt: 1 }
    const deps = gateway().deps.frontChannel!
    const withVerifier = legacyCodeRedemption({ ...base, legacyCode: 'L', legacyCodeVerifier: 'V' }, deps)
    assert.deepEqual(Object.fromEntries(withVerifier), { grant_type: 'authorization_code', code: 'L', redirect_uri: CALLBACK_URL, code_verifier: 'V' })
    const without = legacyCodeRedemption({ ...base, legacyCode: 'L', legacyCodeVerifier: undefined }, deps)
    assert.deepEqual(Object.fromEntries(without), { grant_type: 'authorization_code', code: 'L', redirect_uri: CALLBACK_URL })
  })

  test('pkceVerifierMatches: RFC 7636 appendix B example', () => {
    assert.equal(pkceVerifierMatches('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk', 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'), true)
    assert.equal(pkceVerifierMatches('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl', 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM'), false)
  })
})
