// JARM (FAPI 2.0 Message Signing, response_mode=jwt): with a signing key of the gateway, the
// authorization endpoint sends the customer on, and the callback answers with one JWT in `response`,
// signed by that key and verified here with jose against the key source's published JWKS, as a
// partner does. Errors after the redirect URI is trusted go the same way. Real keys (test key source),
// real memory replay store under the real front-channel state.
import { before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose'
import * as oauth from 'oauth4webapi'
import { answerAuthorizationRequest } from '../../../../src/authorization-server/front-channel/authorization-endpoint.ts'
import type { BrowserAnswer } from '../../../../src/authorization-server/front-channel/browser-answer.ts'
import { answerCallback } from '../../../../src/authorization-server/front-channel/callback-endpoint.ts'
import { JARM_LIFETIME_SECONDS, messageSigningMetadata, signAuthorizationResponse } from '../../../../src/authorization-server/front-channel/jarm.ts'
import type { FrontChannelState, PushedRequest } from '../../../../src/authorization-server/front-channel/state.ts'
import type { GatewayKeySource } from '../../../../src/authorization-server/keys/key-source.ts'
import type { OAuthErrorCode } from '../../../../src/authorization-server/errors.ts'
import {
  authorizationSettings,
  browserRequest,
  callbackSettings,
  codePartner,
  frontChannelState,
  ISSUER,
  push,
  pushedRequest,
  registryOf,
} from '../../../support/front-channel.ts'
import { testKeySource, type SigningAlgorithm, type TestKeySource } from '../../../support/gateway-keys.ts'

const partners = registryOf(codePartner('fintech', 'gw-fintech'))
const REDIRECT_URI = 'https://fintech.example/callback'

let keys: TestKeySource
before(async () => {
  keys = await testKeySource({ sign: 'ES256', decrypt: ['RSA-OAEP-256'] })
})

function redirectOf(answer: BrowserAnswer): URL {
  assert.equal(answer.kind, 'redirect', answer.kind === 'error-page' ? answer.error.message : '')
  return new URL(answer.location)
}

function assertErrorPage(answer: BrowserAnswer, code: OAuthErrorCode, rule: string): void {
  assert.equal(answer.kind, 'error-page', answer.kind === 'redirect' ? `redirected to ${answer.location}` : '')
  assert.equal(answer.error.code, code, answer.error.detail)
  assert.equal(answer.error.rule, rule, answer.error.detail)
}

/** The partner's side (JARM §2.4): the redirect carries `response` only, a JWT that verifies with the gateway's published keys. */
async function jarmClaims(answer: BrowserAnswer, source: GatewayKeySource = keys, nowMs = Date.now()): Promise<JWTPayload> {
  const location = redirectOf(answer)
  assert.equal(location.origin + location.pathname, REDIRECT_URI)
  assert.deepEqual([...location.searchParams.keys()], ['response'], 'iss, state, code only inside the JWT (RFC 9207 §2.4)')
  const response = location.searchParams.get('response')!
  const { payload } = await jwtVerify(response, createLocalJWKSet({ keys: [...source.publicJwks(nowMs).keys] }), {
    issuer: ISSUER,
    audience: 'fintech',
    requiredClaims: ['exp'],
  })
  assert.equal(decodeProtectedHeader(response).kid, source.signer(nowMs).kid)
  assert.ok(payload.exp! - Math.floor(nowMs / 1000) <= JARM_LIFETIME_SECONDS, 'short-lived (JARM §2.1: 10 minutes at most)')
  return payload
}

async function authorize(state: FrontChannelState, requestUri: string, source: GatewayKeySource | undefined = keys): Promise<BrowserAnswer> {
  return answerAuthorizationRequest(
    browserRequest({ client_id: 'fintech', request_uri: requestUri }),
    authorizationSettings(),
    { partners, state, keys: source },
    {},
  )
}

/** A JARM request pushed and sent to the legacy server: the gateway's state the legacy server brings back. */
async function started(request: PushedRequest = pushedRequest({ responseMode: 'jwt' })) {
  const state = frontChannelState()
  const pushed = await push(state, request)
  const location = redirectOf(await authorize(state, pushed.requestUri))
  assert.equal(location.origin + location.pathname, 'https://legacy.bank.example/auth', 'the customer goes on to the legacy login')
  return { state, ...pushed, gatewayState: location.searchParams.get('state')! }
}

function callback(state: FrontChannelState, query: Record<string, string>, source: GatewayKeySource | undefined = keys, nowMs = Date.now()) {
  return answerCallback(browserRequest(query, 'GET', nowMs), callbackSettings, { state, keys: source }, {})
}

describe('the code as a JARM response', () => {
  for (const alg of ['ES256', 'PS256', 'EdDSA'] as const satisfies readonly SigningAlgorithm[]) {
    test(`signed with ${alg}: iss, aud = client, exp within a minute, the code and the partner state, verified with the published JWKS`, async () => {
      const source = await testKeySource({ sign: alg })
      const state = frontChannelState()
      const pushed = await push(state, pushedRequest({ responseMode: 'jwt' }))
      const gatewayState = redirectOf(await authorize(state, pushed.requestUri, source)).searchParams.get('state')!
      const nowMs = Date.now()
      const answer = await callback(state, { state: gatewayState, code: 'legacy-code-1' }, source, nowMs)
      const payload = await jarmClaims(answer, source, nowMs)
      assert.equal(decodeProtectedHeader(redirectOf(answer).searchParams.get('response')!).alg, alg)
      assert.deepEqual(Object.keys(payload).sort(), ['aud', 'code', 'exp', 'iat', 'iss', 'state'])
      assert.equal(payload.state, 'partner-state-1')
      assert.equal(payload.exp, Math.floor(nowMs / 1000) + JARM_LIFETIME_SECONDS)
      const redeemed = await state.redeemCode(payload.code as string)
      assert.equal(redeemed?.use, 'first', 'the code in the JWT is the one the token endpoint redeems')
      assert.equal(redeemed.issued.legacyCode, 'legacy-code-1')
    })
  }

  test('without a partner state, the JWT carries none', async () => {
    const { state, gatewayState } = await started(pushedRequest({ responseMode: 'jwt', state: undefined }))
    const payload = await jarmClaims(await callback(state, { state: gatewayState, code: 'legacy-code-1' }))
    assert.equal(payload.state, undefined)
    assert.equal(typeof payload.code, 'string')
  })

  test('the redirect URI keeps its own query beside `response`', async () => {
    const { state, gatewayState } = await started(pushedRequest({ responseMode: 'jwt', redirectUri: `${REDIRECT_URI}?tenant=a` }))
    const location = redirectOf(await callback(state, { state: gatewayState, code: 'legacy-code-1' }))
    assert.deepEqual([...location.searchParams.keys()], ['tenant', 'response'])
  })

  test('a response_mode=query request is answered in the query as before, even with a signing key', async () => {
    const { state, gatewayState } = await started(pushedRequest())
    const location = redirectOf(await callback(state, { state: gatewayState, code: 'legacy-code-1' }))
    assert.deepEqual([...location.searchParams.keys()], ['code', 'state', 'iss'])
  })
})

describe('the partner library (oauth4webapi validateJwtAuthResponse) takes the response', () => {
  /** The gateway's JWKS as its jwks_uri serves it (that endpoint is built elsewhere): the key source's public keys. */
  function jwksFetch(source: GatewayKeySource): typeof fetch {
    return async () => Response.json(source.publicJwks(Date.now()), { headers: { 'cache-control': 'no-store' } })
  }
  const as: oauth.AuthorizationServer = {
    issuer: ISSUER,
    jwks_uri: `${ISSUER}/.well-known/jwks.json`,
    authorization_signing_alg_values_supported: ['ES256'],
    authorization_response_iss_parameter_supported: true,
  }
  const client: oauth.Client = { client_id: 'fintech' }

  test('a code: validated, with the partner state, and the code as the token request needs it', async () => {
    const { state, gatewayState } = await started()
    const location = redirectOf(await callback(state, { state: gatewayState, code: 'legacy-code-1' }))
    const params = await oauth.validateJwtAuthResponse(as, client, location, 'partner-state-1', { [oauth.customFetch]: jwksFetch(keys) })
    assert.match(params.get('code')!, /^[A-Za-z0-9_-]{43}$/)
    assert.equal(params.get('iss'), ISSUER)
  })

  test('a legacy error: the library reports the authorization error', async () => {
    const { state, gatewayState } = await started()
    const location = redirectOf(await callback(state, { state: gatewayState, error: 'access_denied' }))
    await assert.rejects(oauth.validateJwtAuthResponse(as, client, location, 'partner-state-1', { [oauth.customFetch]: jwksFetch(keys) }), (error) => {
      assert.ok(error instanceof oauth.AuthorizationResponseError)
      assert.equal(error.error, 'access_denied')
      return true
    })
  })

  test('a response for another client, or signed by a key the gateway does not publish, is rejected by the library', async () => {
    const { state, gatewayState } = await started()
    const location = redirectOf(await callback(state, { state: gatewayState, code: 'legacy-code-1' }))
    await assert.rejects(
      oauth.validateJwtAuthResponse({ ...as }, { client_id: 'other' }, location, 'partner-state-1', { [oauth.customFetch]: jwksFetch(keys) }),
      {
        code: oauth.JWT_CLAIM_COMPARISON,
      },
    )
    const stranger = await testKeySource({ sign: 'ES256' })
    // A fresh metadata object: the library caches the JWKS per authorization server object.
    await assert.rejects(oauth.validateJwtAuthResponse({ ...as }, client, location, 'partner-state-1', { [oauth.customFetch]: jwksFetch(stranger) }), {
      code: oauth.KEY_SELECTION,
    })
  })
})

describe('errors as JARM responses, once the redirect URI is trusted', () => {
  test('a legacy error (the customer cancelled) goes on inside the JWT, never its description', async () => {
    const { state, gatewayState } = await started()
    const answer = await callback(state, { state: gatewayState, error: 'access_denied', error_description: 'The user said <no>' })
    const payload = await jarmClaims(answer)
    assert.deepEqual(
      { error: payload.error, state: payload.state, description: payload.error_description },
      {
        error: 'access_denied',
        state: 'partner-state-1',
        description: undefined,
      },
    )
    assert.equal(answer.kind === 'redirect' && answer.passedOn, 'access_denied')
  })

  test("the gateway's own refusal (two authorizations with one request_uri, the other completed first) is a signed invalid_request_uri", async () => {
    const { state, requestUri, gatewayState } = await started()
    const second = redirectOf(await authorize(state, requestUri)).searchParams.get('state')!
    await jarmClaims(await callback(state, { state: gatewayState, code: 'legacy-code-1' }))
    const answer = await callback(state, { state: second, code: 'legacy-code-2' })
    const payload = await jarmClaims(answer)
    assert.equal(payload.error, 'invalid_request_uri')
    assert.equal(payload.code, undefined)
    assert.equal(answer.kind === 'redirect' && answer.refusal?.code, 'AS_REQUEST_URI_INVALID')
  })

  test('a legacy answer without a usable code is a signed server_error', async () => {
    const { state, gatewayState } = await started()
    const payload = await jarmClaims(await callback(state, { state: gatewayState }))
    assert.equal(payload.error, 'server_error')
  })

  test('before the redirect URI is trusted (an unknown state), still an error page, never a response', async () => {
    const answer = await callback(frontChannelState(), { state: 'Q'.repeat(43), code: 'legacy-code-1' })
    assertErrorPage(answer, 'AS_AUTHORIZATION_STATE_INVALID', 'state')
  })
})

describe('when the response cannot be signed', () => {
  test('the signing key went away between the authorization endpoint and the callback: an error page, no plain response', async () => {
    const { state, gatewayState } = await started()
    const decryptOnly = await testKeySource({ sign: undefined, decrypt: ['ECDH-ES'] })
    assertErrorPage(await callback(state, { state: gatewayState, code: 'legacy-code-1' }, decryptOnly), 'AS_REQUEST_MALFORMED', 'response_mode')
  })

  test('a signer that fails (an HSM that does not answer): an error page that says so, no plain response', async () => {
    const { state, gatewayState } = await started()
    const working = keys.signer(Date.now())
    const failing: GatewayKeySource = {
      ...keys,
      signer: () => ({ kid: working.kid, alg: working.alg, sign: () => Promise.reject(new Error('the signing service does not answer')) }),
    }
    assertErrorPage(await callback(state, { state: gatewayState, code: 'legacy-code-1' }, failing), 'AS_INTERNAL', 'response')
  })
})

describe('signAuthorizationResponse and messageSigningMetadata', () => {
  test('the response JWT carries the parameters given, iss, aud and a one-minute exp; undefined parameters are left out', async () => {
    const nowMs = Date.now()
    const jwt = await signAuthorizationResponse(keys, { issuer: ISSUER, clientId: 'fintech', nowMs, parameters: { code: 'c', state: undefined } })
    const { payload, protectedHeader } = await jwtVerify(jwt, createLocalJWKSet({ keys: [...keys.publicJwks(nowMs).keys] }), {
      issuer: ISSUER,
      audience: 'fintech',
    })
    assert.deepEqual(payload, { code: 'c', iss: ISSUER, aud: 'fintech', iat: Math.floor(nowMs / 1000), exp: Math.floor(nowMs / 1000) + 60 })
    assert.equal(protectedHeader.typ, 'JWT')
  })

  test('the parameters cannot replace iss, aud or exp', async () => {
    const nowMs = Date.now()
    const jwt = await signAuthorizationResponse(keys, { issuer: ISSUER, clientId: 'fintech', nowMs, parameters: { iss: 'https://evil.example', aud: 'x' } })
    const { payload } = await jwtVerify(jwt, createLocalJWKSet({ keys: [...keys.publicJwks(nowMs).keys] }), { issuer: ISSUER, audience: 'fintech' })
    assert.equal(payload.iss, ISSUER)
  })

  test('without keys, or without a signing key among them, it refuses', async () => {
    const response = { issuer: ISSUER, clientId: 'fintech', nowMs: Date.now(), parameters: { code: 'c' } }
    await assert.rejects(signAuthorizationResponse(undefined, response), { code: 'AS_REQUEST_MALFORMED', rule: 'response_mode' })
    await assert.rejects(signAuthorizationResponse(await testKeySource({ sign: undefined }), response), { code: 'AS_REQUEST_MALFORMED' })
  })

  test('the metadata announces jwt response modes with a signing key and request-object encryption with a decryption key; nothing without keys', async () => {
    const nowMs = Date.now()
    assert.deepEqual(messageSigningMetadata(undefined, nowMs), {})
    assert.deepEqual(messageSigningMetadata(keys, nowMs), {
      response_modes_supported: ['query', 'jwt', 'query.jwt'],
      authorization_signing_alg_values_supported: ['ES256'],
      request_object_encryption_alg_values_supported: ['RSA-OAEP-256'],
      request_object_encryption_enc_values_supported: ['A256GCM'],
    })
    assert.deepEqual(messageSigningMetadata(await testKeySource({ sign: 'PS256' }), nowMs), {
      response_modes_supported: ['query', 'jwt', 'query.jwt'],
      authorization_signing_alg_values_supported: ['PS256'],
    })
    // A rotation to PS256: the next key is published before it signs, and announced with it.
    const next = await testKeySource({ sign: 'PS256' })
    const rotating: GatewayKeySource = { ...keys, publicJwks: (at) => ({ keys: [...keys.publicJwks(at).keys, ...next.publicJwks(at).keys] }) }
    assert.deepEqual(messageSigningMetadata(rotating, nowMs).authorization_signing_alg_values_supported, ['ES256', 'PS256'])
    assert.deepEqual(Object.keys(messageSigningMetadata(await testKeySource({ sign: undefined, decrypt: ['ECDH-ES'] }), nowMs)), [
      'request_object_encryption_alg_values_supported',
      'request_object_encryption_enc_values_supported',
    ])
  })
})
