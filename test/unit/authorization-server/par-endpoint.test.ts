// The PAR endpoint (RFC 9126) with real parts: partner client authentication with real keys and
// certificates, DPoP proofs signed by real keys, the front-channel state on the memory replay store.
// Each refusal names the OpenID conformance-suite check it mirrors where there is one.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type { X509Certificate } from 'node:crypto'
import { CompactEncrypt, UnsecuredJWT, exportJWK, generateKeyPair } from 'jose'
import { createClientAuthenticator, type ClientAuthenticator } from '../../../src/authorization-server/client-authentication/authenticate.ts'
import {
  answerPushedAuthorizationRequest,
  REQUEST_URI_PREFIX,
  requestRefOf,
  type ParDeps,
  type ParRequest,
  type ParSettings,
} from '../../../src/authorization-server/front-channel/par-endpoint.ts'
import { createFrontChannelState, type FrontChannelState } from '../../../src/authorization-server/front-channel/state.ts'
import type { TokenRequestFacts } from '../../../src/authorization-server/token-endpoint.ts'
import type { Partner } from '../../../src/authorization-server/partners.ts'
import { createProofKeyCache } from '../../../src/checks/dpop/proof-key-cache.ts'
import { createProof, generateDpopKey, type DpopKey } from '../../../src/client/partner-client.ts'
import { partnerSchema, type PartnerConfig } from '../../../src/config/schema.ts'
import { createMemoryReplayStore } from '../../../src/replay/memory-store.ts'
import type { ReplayStore } from '../../../src/replay/store.ts'
import type { PeerCertificateVerdict } from '../../../src/types.ts'
import type { GatewayKeySource } from '../../../src/authorization-server/keys/key-source.ts'
import { pkcePair, signRequestObject } from '../../support/authorization-requests.ts'
import { encryptRequestObject, testKeySource, type TestKeySource } from '../../support/gateway-keys.ts'
import { createTestCa, validPeer, type TestCa } from '../../support/client-certificates.ts'
import { jwtParams, refusedWith, registryOf, signAssertion, signingKey, type SigningKey } from '../../support/client-authentication.ts'

const ISSUER = 'https://api.bank.example'
const PAR_URL = `${ISSUER}/oauth2/par`
const TOKEN_URL = `${ISSUER}/oauth2/token`
const REDIRECT_URI = 'https://fintech.example/callback'
const OTHER_REDIRECT_URI = 'https://fintech.example/other-callback'
/** RFC 4514 order, as registered; the certificate carries it the other way round (DER order). */
const TLS_SUBJECT = 'CN=partner-mtls,O=Example Fintech,C=DE'

const settings: ParSettings = { issuer: ISSUER, parUrl: PAR_URL, requestLifetimeSeconds: 90, requestObject: 'optional' }
const requiredObjects: ParSettings = { ...settings, requestObject: 'required' }

let es256: SigningKey
let ps256: SigningKey
let eddsa: SigningKey
let rs256: SigningKey
let othersKey: SigningKey
let ca: TestCa
let mtlsCert: X509Certificate
let store: ReplayStore
let state: FrontChannelState
let authenticator: ClientAuthenticator
let deps: ParDeps

function partnerOf(clientId: string, authentication: PartnerConfig['authentication'], extra: Partial<PartnerConfig> = {}): Partner {
  const config = partnerSchema.parse({
    clientId,
    authentication,
    grantTypes: ['authorization_code', 'refresh_token'],
    scopes: ['accounts', 'payments'],
    redirectUris: [REDIRECT_URI, OTHER_REDIRECT_URI],
    legacy: 'shared',
    ...extra,
  })
  return {
    clientId,
    config,
    grantTypes: new Set(config.grantTypes),
    scopes: new Set(config.scopes),
    legacy: { clientId: 'legacy', authentication: 'client_secret_basic', secret: 'not-used' },
  }
}

before(async () => {
  ;[es256, ps256, eddsa, rs256, othersKey] = await Promise.all([
    signingKey('ES256'),
    signingKey('PS256'),
    signingKey('EdDSA'),
    signingKey('RS256'),
    signingKey('ES256'),
  ])
  ca = await createTestCa()
  mtlsCert = await ca.issue({ subject: 'C=DE, O=Example Fintech, CN=partner-mtls' })
  const keys = { keys: [es256.publicJwk, ps256.publicJwk, eddsa.publicJwk, rs256.publicJwk] }
  const partners = registryOf(
    partnerOf('fintech', { method: 'private_key_jwt', jwks: keys }),
    partnerOf('signing-fintech', { method: 'private_key_jwt', jwks: keys }, { requireSignedRequestObject: true }),
    partnerOf('other', { method: 'private_key_jwt', jwks: { keys: [othersKey.publicJwk] } }),
    partnerOf('machine', { method: 'private_key_jwt', jwks: keys }, { grantTypes: ['client_credentials'] }),
    partnerOf('mtls-fintech', { method: 'tls_client_auth', subjectDn: TLS_SUBJECT }),
    partnerOf('mtls-signing', { method: 'tls_client_auth', subjectDn: TLS_SUBJECT }, { requireSignedRequestObject: true }),
  )
  store = createMemoryReplayStore({ maxEntries: 10_000, now: Date.now })
  state = createFrontChannelState(store)
  authenticator = createClientAuthenticator({ issuer: ISSUER, clockToleranceSeconds: 10, maxLifetimeSeconds: 300 }, { partners, store })
  deps = {
    authenticator,
    state,
    proofs: {
      dpop: { algorithms: ['ES256', 'PS256', 'EdDSA'], maxAgeSeconds: 60, maxFutureSeconds: 10, maxJtiLength: 256, nonceMode: 'off', nonces: undefined },
      proofKeys: createProofKeyCache({ maxEntries: 10 }),
      verifyOn: 'eventLoop',
      store,
      replayTtlMs: 71_000,
    },
  }
})

after(async () => {
  authenticator.close()
  await store.close()
})

const pkce = pkcePair()

/** The authorization parameters of a legitimate pushed request. */
function authorizationParams(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const params: Record<string, string | undefined> = {
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: 'accounts',
    state: 'partner-state',
    nonce: 'partner-nonce',
    code_challenge: pkce.challenge,
    code_challenge_method: 'S256',
    ...extra,
  }
  return Object.fromEntries(Object.entries(params).filter((entry): entry is [string, string] => entry[1] !== undefined))
}

interface RequestOptions {
  readonly clientId?: string
  readonly assertionAudience?: string
  readonly proofHeaders?: readonly string[]
  readonly peer?: PeerCertificateVerdict
  /** The gateway's own keys (JARM signing, request-object decryption); default none. */
  readonly keys?: GatewayKeySource
}

/** A pushed request authenticated with private_key_jwt (or, for a tls_client_auth partner given a peer, with the certificate). */
async function parRequest(params: Record<string, string>, options: RequestOptions = {}): Promise<ParRequest> {
  const clientId = options.clientId ?? 'fintech'
  const authentication =
    options.peer === undefined ? jwtParams(await signAssertion(es256, clientId, options.assertionAudience ?? ISSUER)) : { client_id: clientId }
  return {
    params: new Map(Object.entries({ ...authentication, ...params })),
    authorization: undefined,
    proofHeaders: options.proofHeaders ?? [],
    peer: options.peer ?? { kind: 'absent' },
    peerCertificate: undefined,
    nowMs: Date.now(),
  }
}

async function push(params: Record<string, string>, options: RequestOptions = {}, parSettings: ParSettings = settings) {
  const facts: TokenRequestFacts = {}
  const request = await parRequest(params, options)
  const answer = await answerPushedAuthorizationRequest(request, parSettings, { ...deps, keys: options.keys }, facts)
  const ref = requestRefOf(answer.request_uri)
  assert.ok(ref, 'the request_uri carries a reference')
  return { answer, facts, request, stored: await state.readRequest(ref) }
}

function refused(params: Record<string, string>, code: Parameters<typeof refusedWith>[1], rule: string, options: RequestOptions = {}, parSettings = settings) {
  return refusedWith(
    parRequest(params, options).then((request) => answerPushedAuthorizationRequest(request, parSettings, { ...deps, keys: options.keys }, {})),
    code,
    rule,
  )
}

const proofAtPar = (key: DpopKey, htu = PAR_URL) => createProof(key, { htm: 'POST', htu })

describe('a legitimate pushed request', () => {
  test('is answered with a request_uri and expires_in, and stored with what the authorization endpoint needs', async () => {
    const { answer, facts, request, stored } = await push(authorizationParams())
    assert.ok(answer.request_uri.startsWith(REQUEST_URI_PREFIX))
    assert.equal(answer.expires_in, 90)
    assert.equal(facts.clientId, 'fintech')
    // Stored as JSON: the fields without a value (dpopJkt, responseMode) are absent, read back as undefined.
    assert.deepEqual(stored, {
      clientId: 'fintech',
      redirectUri: REDIRECT_URI,
      scope: 'accounts',
      state: 'partner-state',
      nonce: 'partner-nonce',
      codeChallenge: pkce.challenge,
      expiresAt: request.nowMs + 90_000,
    })
  })

  test('gets a reference of 256 random bits, a new one each time (FAPI 2.0 SP §5.4.1-4, A19)', async () => {
    const first = await push(authorizationParams())
    const second = await push(authorizationParams())
    const ref = requestRefOf(first.answer.request_uri)!
    assert.equal(Buffer.from(ref, 'base64url').length, 32)
    assert.notEqual(first.answer.request_uri, second.answer.request_uri)
  })

  test('needs neither scope, state nor nonce', async () => {
    const { stored } = await push(authorizationParams({ scope: undefined, state: undefined, nonce: undefined }))
    assert.equal(stored?.scope, undefined)
    assert.equal(stored?.state, undefined)
    assert.equal(stored?.nonce, undefined)
  })

  test('may name any of the redirect URIs registered for the partner', async () => {
    const { stored } = await push(authorizationParams({ redirect_uri: OTHER_REDIRECT_URI }))
    assert.equal(stored?.redirectUri, OTHER_REDIRECT_URI)
  })

  test('EnsureAuthorizationRequestWith64CharNonceSuccess, ...WithLongState: a 64-character nonce and a 512-character state are kept', async () => {
    const nonce = 'n'.repeat(64)
    const longState = 's'.repeat(512)
    const { stored } = await push(authorizationParams({ nonce, state: longState }))
    assert.equal(stored?.nonce, nonce)
    assert.equal(stored?.state, longState)
  })

  test('response_mode query is the default; jwt (JARM) is refused while the gateway has no signing key', async () => {
    assert.equal((await push(authorizationParams({ response_mode: 'query' }))).stored?.responseMode, undefined)
    await refused(authorizationParams({ response_mode: 'jwt' }), 'AS_REQUEST_MALFORMED', 'response_mode')
    await refused(authorizationParams({ response_mode: 'query.jwt' }), 'AS_REQUEST_MALFORMED', 'response_mode')
  })

  test('from a tls_client_auth partner authenticates with its certificate', async () => {
    const { facts, stored } = await push(authorizationParams(), { clientId: 'mtls-fintech', peer: validPeer(mtlsCert, ca.cert) })
    assert.equal(facts.clientId, 'mtls-fintech')
    assert.equal(stored?.clientId, 'mtls-fintech')
  })
})

describe('requestRefOf', () => {
  test('gives back the reference of a request_uri the endpoint handed out', async () => {
    const { answer } = await push(authorizationParams())
    assert.equal(requestRefOf(answer.request_uri), answer.request_uri.slice(REQUEST_URI_PREFIX.length))
  })

  test('gives nothing for another prefix, an empty or a malformed reference', () => {
    const ref = 'a'.repeat(43)
    assert.equal(requestRefOf(`urn:example:${ref}`), undefined)
    assert.equal(requestRefOf(`https://api.bank.example/par/${ref}`), undefined)
    assert.equal(requestRefOf(REQUEST_URI_PREFIX), undefined)
    assert.equal(requestRefOf(`${REQUEST_URI_PREFIX}${ref}x`), undefined)
    assert.equal(requestRefOf(`${REQUEST_URI_PREFIX}${'a'.repeat(42)}+`), undefined)
  })
})

describe('client authentication, as at the token endpoint', () => {
  test('EnsureClientAssertionInTokenEndpoint (A2): a request without client authentication is refused with invalid_client', async () => {
    const request: ParRequest = {
      params: new Map(Object.entries({ client_id: 'fintech', ...authorizationParams() })),
      authorization: undefined,
      proofHeaders: [],
      peer: { kind: 'absent' },
      peerCertificate: undefined,
      nowMs: Date.now(),
    }
    const error = await refusedWith(answerPushedAuthorizationRequest(request, settings, deps, {}), 'AS_CLIENT_AUTH_MISSING', 'client_assertion')
    assert.equal(error.error, 'invalid_client')
  })

  test('PAREndpointAsAudienceFails (A3): an assertion with the PAR URL as aud is refused', async () => {
    await refused(authorizationParams(), 'AS_CLIENT_ASSERTION_INVALID', 'aud', { assertionAudience: PAR_URL })
  })

  test('a tls_client_auth partner without its certificate is refused', async () => {
    await refused(authorizationParams(), 'AS_CLIENT_CERTIFICATE_INVALID', 'certificate', { clientId: 'mtls-fintech', peer: { kind: 'absent' } })
  })

  test('a partner not registered for authorization_code is refused with unauthorized_client', async () => {
    const error = await refused(authorizationParams(), 'AS_GRANT_TYPE_NOT_ALLOWED', 'grant_type', { clientId: 'machine' })
    assert.equal(error.error, 'unauthorized_client')
  })
})

describe('the authorization parameters', () => {
  test('PARRejectRequestUriInParAuthorizationFormParams (A5): a request_uri in the pushed request is refused', async () => {
    await refused(authorizationParams({ request_uri: `${REQUEST_URI_PREFIX}${'a'.repeat(43)}` }), 'AS_REQUEST_MALFORMED', 'request_uri')
  })

  test('a request without response_type is refused with invalid_request', async () => {
    await refused(authorizationParams({ response_type: undefined }), 'AS_REQUEST_MALFORMED', 'response_type')
  })

  for (const [check, responseType] of [
    ['EnsureResponseTypeCodeIdTokenFails', 'code id_token'],
    ['EnsureResponseTypeTokenFails', 'token'],
  ] as const) {
    test(`${check} (A8): response_type=${responseType} is refused with unsupported_response_type`, async () => {
      const error = await refused(authorizationParams({ response_type: responseType }), 'AS_RESPONSE_TYPE_UNSUPPORTED', 'response_type')
      assert.equal(error.error, 'unsupported_response_type')
    })
  }

  test('EnsureRequestObjectWithoutRedirectUriFails (A5): a request without redirect_uri is refused', async () => {
    await refused(authorizationParams({ redirect_uri: undefined }), 'AS_REDIRECT_URI_INVALID', 'redirect_uri')
  })

  for (const [what, redirectUri] of [
    ['an unregistered', 'https://attacker.example/callback'],
    ['a longer path than the registered', `${REDIRECT_URI}/more`],
    ['a query added to the registered', `${REDIRECT_URI}?next=https://attacker.example`],
    ['an http version of the registered', REDIRECT_URI.replace('https:', 'http:')],
    ['a differently cased', REDIRECT_URI.toUpperCase()],
  ]) {
    test(`EnsureRegisteredRedirectUri (A10): ${what} redirect_uri is refused`, async () => {
      await refused(authorizationParams({ redirect_uri: redirectUri }), 'AS_REDIRECT_URI_INVALID', 'redirect_uri')
    })
  }

  test('PAREnsurePKCERequired (A9): a request without code_challenge is refused', async () => {
    await refused(authorizationParams({ code_challenge: undefined, code_challenge_method: undefined }), 'AS_PKCE_INVALID', 'code_challenge')
  })

  test('PAREnsurePlainPKCERejected (A9): code_challenge_method=plain is refused', async () => {
    await refused(authorizationParams({ code_challenge_method: 'plain' }), 'AS_PKCE_INVALID', 'code_challenge_method')
  })

  test('a code_challenge without code_challenge_method (plain by RFC 7636 §4.3) is refused', async () => {
    await refused(authorizationParams({ code_challenge_method: undefined }), 'AS_PKCE_INVALID', 'code_challenge_method')
  })

  test('a code_challenge shorter than 43 characters or outside the RFC 7636 alphabet is refused', async () => {
    await refused(authorizationParams({ code_challenge: 'a'.repeat(42) }), 'AS_PKCE_INVALID', 'code_challenge')
    await refused(authorizationParams({ code_challenge: `${'a'.repeat(42)}+` }), 'AS_PKCE_INVALID', 'code_challenge')
  })

  test('a scope not registered for the partner is refused with invalid_scope', async () => {
    const error = await refused(authorizationParams({ scope: 'accounts admin' }), 'AS_SCOPE_NOT_ALLOWED', 'scope')
    assert.equal(error.error, 'invalid_scope')
  })

  test('EnsureAuthorizationRequestWithLongState / ...WithLongNonce (A18): over 512 characters is refused with invalid_request, not a failure', async () => {
    await refused(authorizationParams({ state: 's'.repeat(513) }), 'AS_REQUEST_MALFORMED', 'state')
    await refused(authorizationParams({ nonce: 'n'.repeat(513) }), 'AS_REQUEST_MALFORMED', 'nonce')
  })

  test('a state or nonce with control characters is refused', async () => {
    await refused(authorizationParams({ state: 'line\nbreak' }), 'AS_REQUEST_MALFORMED', 'state')
    await refused(authorizationParams({ nonce: '' }), 'AS_REQUEST_MALFORMED', 'nonce')
  })

  test('a response_mode other than query is refused', async () => {
    await refused(authorizationParams({ response_mode: 'fragment' }), 'AS_REQUEST_MALFORMED', 'response_mode')
    await refused(authorizationParams({ response_mode: 'form_post.jwt' }), 'AS_REQUEST_MALFORMED', 'response_mode')
  })
})

describe('DPoP at PAR (RFC 9449 §10, A14)', () => {
  test('dpop_jkt alone binds the future code to that key', async () => {
    const key = await generateDpopKey()
    const { stored, facts } = await push(authorizationParams({ dpop_jkt: key.jkt }))
    assert.equal(stored?.dpopJkt, key.jkt)
    assert.equal(facts.keyThumbprint, key.jkt)
  })

  test("EnsureDpopProofAtParEndpointBindingSuccess: a proof at PAR alone binds the future code to the proof's key", async () => {
    const key = await generateDpopKey('EdDSA')
    const { stored } = await push(authorizationParams(), { proofHeaders: [await proofAtPar(key)] })
    assert.equal(stored?.dpopJkt, key.jkt)
  })

  test('dpop_jkt with a proof of the same key is accepted', async () => {
    const key = await generateDpopKey('PS256')
    const { stored } = await push(authorizationParams({ dpop_jkt: key.jkt }), { proofHeaders: [await proofAtPar(key)] })
    assert.equal(stored?.dpopJkt, key.jkt)
  })

  test("EnsureMismatchedDpopJktFails: dpop_jkt naming another key than the proof's is refused with invalid_dpop_proof", async () => {
    const [key, other] = await Promise.all([generateDpopKey(), generateDpopKey()])
    const error = await refused(authorizationParams({ dpop_jkt: other.jkt }), 'AS_DPOP_INVALID', 'dpop_jkt', { proofHeaders: [await proofAtPar(key)] })
    assert.equal(error.error, 'invalid_dpop_proof')
  })

  test('a dpop_jkt that is not a SHA-256 thumbprint is refused', async () => {
    await refused(authorizationParams({ dpop_jkt: 'not-a-thumbprint' }), 'AS_REQUEST_MALFORMED', 'dpop_jkt')
  })

  test('a proof made for the token endpoint (htu) is refused at PAR', async () => {
    const key = await generateDpopKey()
    await refusedWith(
      parRequest(authorizationParams(), { proofHeaders: [await proofAtPar(key, TOKEN_URL)] }).then((r) =>
        answerPushedAuthorizationRequest(r, settings, deps, {}),
      ),
      'AS_DPOP_INVALID',
      'htu',
    )
  })

  test('a proof used twice is refused the second time', async () => {
    const key = await generateDpopKey()
    const proof = await proofAtPar(key)
    await push(authorizationParams(), { proofHeaders: [proof] })
    await refused(authorizationParams(), 'AS_DPOP_REPLAY', 'jti', { proofHeaders: [proof] })
  })
})

/** A pushed request whose parameters are only in a request object signed by key (default: the partner's ES256 key). */
async function objectRequest(
  claims: Record<string, unknown> = {},
  key: SigningKey = es256,
  clientId = 'fintech',
  typ: string | undefined = 'oauth-authz-req+jwt',
) {
  return { request: await signRequestObject(key, clientId, ISSUER, { ...authorizationParams(), ...claims }, { typ }) }
}

describe('signed request objects (RFC 9101, FAPI 2.0 Message Signing, A15)', () => {
  for (const alg of ['ES256', 'PS256', 'EdDSA']) {
    test(`a request object signed with ${alg} by a registered key is accepted`, async () => {
      const key = { ES256: () => es256, PS256: () => ps256, EdDSA: () => eddsa }[alg]!()
      const { stored } = await push(await objectRequest({ state: `state-${alg}` }, key))
      assert.equal(stored?.state, `state-${alg}`)
      assert.equal(stored?.codeChallenge, pkce.challenge)
    })
  }

  test('StateOnlyOutsideRequestObjectNotUsed (A7): only the content of the request object counts, the form parameters beside it are ignored', async () => {
    const outside = authorizationParams({ state: 'outside-state', redirect_uri: 'https://attacker.example/cb', scope: 'admin', response_type: 'token' })
    const { stored } = await push({ ...outside, ...(await objectRequest({ state: undefined, nonce: undefined, redirect_uri: OTHER_REDIRECT_URI })) })
    assert.equal(stored?.state, undefined)
    assert.equal(stored?.nonce, undefined)
    assert.equal(stored?.redirectUri, OTHER_REDIRECT_URI)
    assert.equal(stored?.scope, 'accounts')
  })

  test('PKCE given outside but not inside the request object is refused', async () => {
    const outside = authorizationParams()
    await refused(
      { ...outside, ...(await objectRequest({ code_challenge: undefined, code_challenge_method: undefined })) },
      'AS_PKCE_INVALID',
      'code_challenge',
    )
  })

  test('the rules of the parameters hold inside the request object: code_challenge_method=plain is refused', async () => {
    await refused(await objectRequest({ code_challenge_method: 'plain' }), 'AS_PKCE_INVALID', 'code_challenge_method')
  })

  test('dpop_jkt inside the request object binds the code', async () => {
    const key = await generateDpopKey()
    const { stored } = await push(await objectRequest({ dpop_jkt: key.jkt }))
    assert.equal(stored?.dpopJkt, key.jkt)
  })

  test('a request object without typ is accepted', async () => {
    const { stored } = await push(await objectRequest({}, es256, 'fintech', undefined))
    assert.equal(stored?.clientId, 'fintech')
  })

  test('a request object of another type (typ JWT) is refused', async () => {
    await refused(await objectRequest({}, es256, 'fintech', 'JWT'), 'AS_REQUEST_OBJECT_INVALID', 'typ')
  })

  test('EnsureUnsignedRequestAtParEndpointFails: with request objects required by the deployment, a plain pushed request is refused', async () => {
    const error = await refused(authorizationParams(), 'AS_REQUEST_OBJECT_INVALID', 'request', {}, requiredObjects)
    assert.equal(error.error, 'invalid_request_object')
  })

  test('with request objects required by the deployment, a signed one is accepted', async () => {
    const { stored } = await push(await objectRequest(), {}, requiredObjects)
    assert.equal(stored?.clientId, 'fintech')
  })

  test('a partner registered with requireSignedRequestObject is refused a plain pushed request, and accepted a signed one', async () => {
    await refused(authorizationParams(), 'AS_REQUEST_OBJECT_INVALID', 'request', { clientId: 'signing-fintech' })
    const { stored } = await push(await objectRequest({}, es256, 'signing-fintech'), { clientId: 'signing-fintech' })
    assert.equal(stored?.clientId, 'signing-fintech')
  })

  test('a tls_client_auth partner without registered keys cannot have its request object verified', async () => {
    await refused(await objectRequest({}, es256, 'mtls-signing'), 'AS_REQUEST_OBJECT_INVALID', 'signature', {
      clientId: 'mtls-signing',
      peer: validPeer(mtlsCert, ca.cert),
    })
  })

  const now = () => Math.floor(Date.now() / 1000)

  test('EnsureRequestObjectWithExpOver60Fails: exp more than 60 minutes after nbf is refused', async () => {
    await refused(await objectRequest({ nbf: now(), exp: now() + 3600 + 60 }), 'AS_REQUEST_OBJECT_INVALID', 'exp')
  })

  test('EnsureRequestObjectWithNbfOver60Fails: nbf more than 60 minutes in the past is refused', async () => {
    await refused(await objectRequest({ nbf: now() - 3600 - 60, exp: now() + 60 }), 'AS_REQUEST_OBJECT_INVALID', 'nbf')
  })

  test('EnsureRequestObjectWithoutExpFails', async () => {
    await refused(await objectRequest({ exp: undefined }), 'AS_REQUEST_OBJECT_INVALID', 'exp')
  })

  test('EnsureRequestObjectWithoutNbfFails', async () => {
    await refused(await objectRequest({ nbf: undefined }), 'AS_REQUEST_OBJECT_INVALID', 'nbf')
  })

  test('an expired request object is refused', async () => {
    await refused(await objectRequest({ nbf: now() - 600, exp: now() - 60 }), 'AS_REQUEST_OBJECT_INVALID', 'exp')
  })

  test('EnsureRequestObjectWithNbf8SecondsInTheFutureIsAccepted', async () => {
    const { stored } = await push(await objectRequest({ nbf: now() + 8, exp: now() + 300 }))
    assert.equal(stored?.clientId, 'fintech')
  })

  test('a request object with nbf 60 seconds in the future is refused', async () => {
    await refused(await objectRequest({ nbf: now() + 60, exp: now() + 300 }), 'AS_REQUEST_OBJECT_INVALID', 'nbf')
  })

  test('EnsureRequestObjectWithBadAudFails', async () => {
    await refused(await objectRequest({ aud: PAR_URL }), 'AS_REQUEST_OBJECT_INVALID', 'aud')
    await refused(await objectRequest({ aud: undefined }), 'AS_REQUEST_OBJECT_INVALID', 'aud')
  })

  test('EnsureServerAcceptsRequestObjectWithMultipleAud', async () => {
    const { stored } = await push(await objectRequest({ aud: ['https://other.example', ISSUER] }))
    assert.equal(stored?.clientId, 'fintech')
  })

  test('EnsureRequestObjectWithInvalidSignatureFails', async () => {
    const { request } = await objectRequest()
    const [header, payload, signature] = request.split('.') as [string, string, string]
    const flipped = Buffer.from(signature, 'base64url')
    flipped[0]! ^= 0x01
    await refused({ request: `${header}.${payload}.${flipped.toString('base64url')}` }, 'AS_REQUEST_OBJECT_INVALID', 'signature')
  })

  test('EnsureRequestObjectSignatureAlgorithmIsRS256Fails: a request object signed with RS256 by a registered RSA key is refused', async () => {
    await refused(await objectRequest({}, rs256), 'AS_REQUEST_OBJECT_INVALID', 'alg')
  })

  test('EnsureRequestObjectSignatureAlgorithmIsNotNone: an unsigned request object (alg none) is refused', async () => {
    const unsigned = new UnsecuredJWT({ ...authorizationParams(), iss: 'fintech', aud: ISSUER, client_id: 'fintech', nbf: now(), exp: now() + 300 }).encode()
    await refused({ request: unsigned }, 'AS_REQUEST_OBJECT_INVALID', 'alg')
  })

  test("EnsureMatchingKeyInAuthorizationRequest: a request object signed with another client's key is refused", async () => {
    await refused(await objectRequest({}, othersKey), 'AS_REQUEST_OBJECT_INVALID', 'signature')
  })

  test('a request object issued by another client is refused', async () => {
    await refused(await objectRequest({ iss: 'other' }), 'AS_REQUEST_OBJECT_INVALID', 'iss')
  })

  test('a request object naming another client_id, or none, is refused', async () => {
    await refused(await objectRequest({ client_id: 'other' }), 'AS_REQUEST_OBJECT_INVALID', 'client_id')
    await refused(await objectRequest({ client_id: undefined }), 'AS_REQUEST_OBJECT_INVALID', 'client_id')
  })

  test('PARRejectRequestUriInParAuthorizationRequest: a request_uri inside the request object is refused', async () => {
    await refused(await objectRequest({ request_uri: `${REQUEST_URI_PREFIX}${'a'.repeat(43)}` }), 'AS_REQUEST_OBJECT_INVALID', 'request_uri')
  })

  test('a parameter the flow reads given as a non-string inside the request object is refused', async () => {
    await refused(await objectRequest({ state: 12345 }), 'AS_REQUEST_OBJECT_INVALID', 'state')
  })

  test('an encrypted request object (JWE) is refused while the gateway has no decryption key', async () => {
    const { publicKey } = await generateKeyPair('RSA-OAEP-256')
    const inner = (await objectRequest()).request
    const jwe = await new CompactEncrypt(new TextEncoder().encode(inner))
      .setProtectedHeader({ alg: 'RSA-OAEP-256', enc: 'A256GCM', cty: 'JWT', kid: (await exportJWK(publicKey)).kid })
      .encrypt(publicKey)
    await refused({ request: jwe }, 'AS_REQUEST_OBJECT_INVALID', 'encrypted')
  })

  test('a request object over 32 KiB is refused before it is parsed', async () => {
    await refused(await objectRequest({ padding: 'p'.repeat(33 * 1024) }), 'AS_REQUEST_OBJECT_INVALID', 'size')
  })

  test('a request parameter that is not a JWT is refused', async () => {
    await refused({ request: 'not-a-jwt' }, 'AS_REQUEST_OBJECT_INVALID', 'format')
  })
})

describe('the state store', () => {
  test('a pushed request that cannot be kept is refused with temporarily_unavailable', async () => {
    const closedStore = createMemoryReplayStore({ maxEntries: 10, now: Date.now })
    await closedStore.close()
    const request = await parRequest(authorizationParams())
    const error = await refusedWith(
      answerPushedAuthorizationRequest(request, settings, { ...deps, state: createFrontChannelState(closedStore) }, {}),
      'AS_STORE_UNAVAILABLE',
      'store',
    )
    assert.equal(error.error, 'temporarily_unavailable')
  })
})

describe('JARM at PAR (FAPI 2.0 Message Signing, response_mode=jwt)', () => {
  let signing: TestKeySource
  let decryptionOnly: TestKeySource
  before(async () => {
    signing = await testKeySource({ sign: 'ES256' })
    decryptionOnly = await testKeySource({ sign: undefined, decrypt: ['RSA-OAEP-256'] })
  })

  test('with a signing key of the gateway, response_mode jwt and query.jwt are kept as jwt; query stays the default', async () => {
    assert.equal((await push(authorizationParams({ response_mode: 'jwt' }), { keys: signing })).stored?.responseMode, 'jwt')
    assert.equal((await push(authorizationParams({ response_mode: 'query.jwt' }), { keys: signing })).stored?.responseMode, 'jwt')
    assert.equal((await push(authorizationParams(), { keys: signing })).stored?.responseMode, undefined)
  })

  test('response_mode=jwt inside a signed request object is kept', async () => {
    const { stored } = await push(await objectRequest({ response_mode: 'jwt' }), { keys: signing })
    assert.equal(stored?.responseMode, 'jwt')
  })

  test('a key source without a signing key: response_mode=jwt is refused as without keys', async () => {
    const error = await refused(authorizationParams({ response_mode: 'jwt' }), 'AS_REQUEST_MALFORMED', 'response_mode', { keys: decryptionOnly })
    assert.equal(error.error, 'invalid_request')
  })

  test('response modes of other flows stay refused with a signing key (fragment.jwt, form_post.jwt, fragment)', async () => {
    for (const mode of ['fragment.jwt', 'form_post.jwt', 'fragment'])
      await refused(authorizationParams({ response_mode: mode }), 'AS_REQUEST_MALFORMED', 'response_mode', { keys: signing })
  })
})

describe('encrypted request objects (RFC 9101 §6.1: a JWE to the gateway, the signed request object inside)', () => {
  let keys: TestKeySource
  let rsaKey: (typeof keys.encryptionJwks)[number]
  let ecKey: (typeof keys.encryptionJwks)[number]
  let unpublished: TestKeySource
  const now = () => Math.floor(Date.now() / 1000)

  before(async () => {
    keys = await testKeySource({ sign: 'ES256', decrypt: ['RSA-OAEP-256', 'ECDH-ES'] })
    ;[rsaKey, ecKey] = keys.encryptionJwks as [typeof rsaKey, typeof ecKey]
    unpublished = await testKeySource({ sign: undefined, decrypt: ['RSA-OAEP-256'] })
  })

  async function encryptedRequest(claims: Record<string, unknown> = {}, gatewayKey = rsaKey, options: Parameters<typeof encryptRequestObject>[2] = {}) {
    return { request: await encryptRequestObject((await objectRequest(claims)).request, gatewayKey, options) }
  }

  for (const alg of ['RSA-OAEP-256', 'ECDH-ES'] as const) {
    test(`a signed request object encrypted with ${alg} and A256GCM to a published key is decrypted, verified and kept`, async () => {
      const gatewayKey = alg === 'RSA-OAEP-256' ? rsaKey : ecKey
      const { stored } = await push(await encryptedRequest({ state: `sealed-${alg}` }, gatewayKey), { keys })
      assert.equal(stored?.state, `sealed-${alg}`)
      assert.equal(stored?.redirectUri, REDIRECT_URI)
      assert.equal(stored?.codeChallenge, pkce.challenge)
    })
  }

  test('without a kid in the JWE header, the current keys of its algorithm are tried', async () => {
    const { stored } = await push(await encryptedRequest({ state: 'no-kid' }, ecKey, { kid: undefined }), { keys })
    assert.equal(stored?.state, 'no-kid')
  })

  test('an encrypted request object satisfies requireSignedRequestObject', async () => {
    const { stored } = await push(await encryptedRequest({ state: 'required' }), { keys }, requiredObjects)
    assert.equal(stored?.state, 'required')
  })

  test('encrypted to a key the gateway does not hold (under a published kid, or an unknown kid) is refused', async () => {
    const foreign = unpublished.encryptionJwks[0]!
    await refused(await encryptedRequest({}, { ...foreign, kid: rsaKey.kid }), 'AS_REQUEST_OBJECT_INVALID', 'encrypted', { keys })
    await refused(await encryptedRequest({}, foreign), 'AS_REQUEST_OBJECT_INVALID', 'encrypted', { keys })
  })

  test("a kid naming the gateway's key of the other algorithm is refused", async () => {
    await refused(await encryptedRequest({}, rsaKey, { kid: ecKey.kid }), 'AS_REQUEST_OBJECT_INVALID', 'encrypted', { keys })
  })

  test('content encryption other than A256GCM is refused (A128GCM, A256CBC-HS512)', async () => {
    for (const enc of ['A128GCM', 'A256CBC-HS512'])
      await refused(await encryptedRequest({}, rsaKey, { enc }), 'AS_REQUEST_OBJECT_INVALID', 'encrypted', { keys })
  })

  test('key management other than RSA-OAEP-256 and ECDH-ES is refused (RSA-OAEP, RSA1_5, ECDH-ES+A256KW)', async () => {
    await refused(await encryptedRequest({}, rsaKey, { alg: 'RSA-OAEP' }), 'AS_REQUEST_OBJECT_INVALID', 'encrypted', { keys })
    // jose no longer makes RSA1_5 JWEs: the header is enough, the rest is never read.
    const rsa15 = `${Buffer.from(JSON.stringify({ alg: 'RSA1_5', enc: 'A256GCM', kid: rsaKey.kid })).toString('base64url')}.a.b.c.d`
    await refused({ request: rsa15 }, 'AS_REQUEST_OBJECT_INVALID', 'encrypted', { keys })
    await refused(await encryptedRequest({}, ecKey, { alg: 'ECDH-ES+A256KW' }), 'AS_REQUEST_OBJECT_INVALID', 'encrypted', { keys })
  })

  test('an unsigned plaintext (the claims as JSON, encrypted only) is refused', async () => {
    const claims = { ...authorizationParams(), iss: 'fintech', aud: ISSUER, client_id: 'fintech', nbf: now(), exp: now() + 300 }
    await refused({ request: await encryptRequestObject(JSON.stringify(claims), rsaKey) }, 'AS_REQUEST_OBJECT_INVALID', 'encrypted', { keys })
  })

  test('an unsigned JWT (alg none) inside is refused', async () => {
    const unsigned = new UnsecuredJWT({ ...authorizationParams(), iss: 'fintech', aud: ISSUER, client_id: 'fintech', nbf: now(), exp: now() + 300 }).encode()
    await refused({ request: await encryptRequestObject(unsigned, rsaKey) }, 'AS_REQUEST_OBJECT_INVALID', 'alg', { keys })
  })

  test('a JWE inside the JWE is refused', async () => {
    const inner = (await encryptedRequest()).request
    await refused({ request: await encryptRequestObject(inner, rsaKey) }, 'AS_REQUEST_OBJECT_INVALID', 'encrypted', { keys })
  })

  test('the request object inside is verified as a signed one: another client’s key, another audience, expired', async () => {
    const othersObject = (await objectRequest({}, othersKey)).request
    await refused({ request: await encryptRequestObject(othersObject, rsaKey) }, 'AS_REQUEST_OBJECT_INVALID', 'signature', { keys })
    const elsewhere = await signRequestObject(es256, 'fintech', 'https://other-as.example', authorizationParams())
    await refused({ request: await encryptRequestObject(elsewhere, rsaKey) }, 'AS_REQUEST_OBJECT_INVALID', 'aud', { keys })
    await refused(await encryptedRequest({ nbf: now() - 600, exp: now() - 300 }), 'AS_REQUEST_OBJECT_INVALID', 'exp', { keys })
  })

  test('a key source with no decryption key refuses every JWE', async () => {
    const signingOnly = await testKeySource({ sign: 'ES256' })
    await refused(await encryptedRequest(), 'AS_REQUEST_OBJECT_INVALID', 'encrypted', { keys: signingOnly })
  })
})
