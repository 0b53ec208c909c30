// The callback: matched by the gateway's own state before anything else, single use, then the partner's
// redirect URI with a code of the gateway's own (standing for the legacy code), the partner's state and
// iss; legacy errors passed on as RFC 6749 §4.1.2.1 errors. Real memory replay store under the real
// front-channel state; the browser's trip through the legacy login is in authorization-code-round-trip.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { answerAuthorizationRequest } from '../../../../src/authorization-server/front-channel/authorization-endpoint.ts'
import type { BrowserAnswer } from '../../../../src/authorization-server/front-channel/browser-answer.ts'
import { answerCallback } from '../../../../src/authorization-server/front-channel/callback-endpoint.ts'
import { createFrontChannelState, type FrontChannelState, type PushedRequest } from '../../../../src/authorization-server/front-channel/state.ts'
import type { OAuthErrorCode } from '../../../../src/authorization-server/errors.ts'
import type { TokenRequestFacts } from '../../../../src/authorization-server/token-endpoint.ts'
import { createMemoryReplayStore } from '../../../../src/replay/memory-store.ts'
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

const partners = registryOf(codePartner('fintech', 'gw-fintech'))

/** The gateway's state for a pushed request, as the authorization endpoint hands it to the legacy server. */
async function authorize(state: FrontChannelState, requestUri: string): Promise<string> {
  const answer = await answerAuthorizationRequest(
    browserRequest({ client_id: 'fintech', request_uri: requestUri }),
    authorizationSettings(),
    { partners, state },
    {},
  )
  assert.equal(answer.kind, 'redirect')
  return new URL(answer.location).searchParams.get('state')!
}

async function started(request: PushedRequest = pushedRequest()) {
  const state = frontChannelState()
  const pushed = await push(state, request)
  return { state, ...pushed, gatewayState: await authorize(state, pushed.requestUri) }
}

function redirectOf(answer: BrowserAnswer): URL {
  assert.equal(answer.kind, 'redirect', answer.kind === 'error-page' ? answer.error.message : '')
  return new URL(answer.location)
}

function assertErrorPage(answer: BrowserAnswer, code: OAuthErrorCode, rule: string): void {
  assert.equal(answer.kind, 'error-page', answer.kind === 'redirect' ? `redirected to ${answer.location}` : '')
  assert.equal(answer.error.code, code, answer.error.detail)
  assert.equal(answer.error.rule, rule, answer.error.detail)
}

test('a legacy code becomes a gateway code, sent with the partner state and iss; the stored code holds the legacy code and the gateway verifier', async () => {
  const { state, gatewayState } = await started(pushedRequest({ dpopJkt: 'jkt-1' }))
  const facts: TokenRequestFacts = {}
  const nowMs = Date.now()
  const answer = await answerCallback(browserRequest({ state: gatewayState, code: 'legacy-code-1' }, 'GET', nowMs), callbackSettings, { state }, facts)
  const location = redirectOf(answer)
  assert.equal(location.origin + location.pathname, 'https://fintech.example/callback')
  assert.deepEqual([...location.searchParams.keys()], ['code', 'state', 'iss'])
  const code = location.searchParams.get('code')!
  assert.match(code, /^[A-Za-z0-9_-]{43}$/, '256 bits (FAPI 2.0 SP §5.4.1-4)')
  assert.notEqual(code, 'legacy-code-1')
  assert.equal(location.searchParams.get('state'), 'partner-state-1')
  assert.equal(location.searchParams.get('iss'), ISSUER)
  assert.equal(facts.clientId, 'fintech')

  const redeemed = await state.redeemCode(code)
  assert.equal(redeemed?.use, 'first')
  const { legacyCodeVerifier, ...issued } = redeemed.issued
  assert.match(legacyCodeVerifier!, /^[A-Za-z0-9_-]{43}$/)
  assert.deepEqual(issued, {
    clientId: 'fintech',
    redirectUri: 'https://fintech.example/callback',
    codeChallenge: pushedRequest().codeChallenge,
    dpopJkt: 'jkt-1',
    scope: 'accounts',
    legacyCode: 'legacy-code-1',
    issuedAt: nowMs,
    expiresAt: nowMs + 60_000,
  })
})

test('the redirect URI keeps its query; a long state with reserved characters comes back intact (OIDF EnsureAuthorizationRequestWithLongState)', async () => {
  const partnerState = `a b&c=d/é+%${'x'.repeat(500)}`
  const { state, gatewayState } = await started(pushedRequest({ redirectUri: 'https://fintech.example/cb?tenant=retail%20bank', state: partnerState }))
  const answer = await answerCallback(browserRequest({ state: gatewayState, code: 'legacy-code-1' }), callbackSettings, { state }, {})
  assert.equal(answer.kind, 'redirect')
  assert.ok(answer.location.startsWith('https://fintech.example/cb?tenant=retail%20bank&code='), answer.location)
  assert.equal(new URL(answer.location).searchParams.get('state'), partnerState)
})

test('without a partner state none is sent', async () => {
  const { state, gatewayState } = await started(pushedRequest({ state: undefined }))
  const location = redirectOf(await answerCallback(browserRequest({ state: gatewayState, code: 'c' }), callbackSettings, { state }, {}))
  assert.deepEqual([...location.searchParams.keys()], ['code', 'iss'])
})

test('an unknown, missing, repeated or foreign-shaped state is an error page and its code goes nowhere', async () => {
  const { state, gatewayState } = await started()
  const cases: URLSearchParams[] = [
    new URLSearchParams({ code: 'legacy-code-1' }),
    new URLSearchParams({ state: 'A'.repeat(43), code: 'legacy-code-1' }),
    new URLSearchParams({ state: 'partner-state-1', code: 'legacy-code-1' }),
    new URLSearchParams({ state: `${gatewayState}x`, code: 'legacy-code-1' }),
    new URLSearchParams([
      ['state', gatewayState],
      ['state', gatewayState],
      ['code', 'legacy-code-1'],
    ]),
  ]
  for (const query of cases) {
    const facts: TokenRequestFacts = {}
    assertErrorPage(await answerCallback(browserRequest(query), callbackSettings, { state }, facts), 'AS_AUTHORIZATION_STATE_INVALID', 'state')
    assert.equal(facts.clientId, undefined)
  }
  // None of those took the session: the legitimate answer still passes.
  assert.equal((await answerCallback(browserRequest({ state: gatewayState, code: 'legacy-code-1' }), callbackSettings, { state }, {})).kind, 'redirect')
})

test('a state is used once: a replayed callback is an error page, whatever code it brings', async () => {
  const { state, gatewayState } = await started()
  assert.equal((await answerCallback(browserRequest({ state: gatewayState, code: 'legacy-code-1' }), callbackSettings, { state }, {})).kind, 'redirect')
  for (const code of ['legacy-code-1', 'legacy-code-2'])
    assertErrorPage(
      await answerCallback(browserRequest({ state: gatewayState, code }), callbackSettings, { state }, {}),
      'AS_AUTHORIZATION_STATE_INVALID',
      'state',
    )
})

test('a session past its lifetime is an error page', async () => {
  const { state, gatewayState } = await started()
  const late = browserRequest({ state: gatewayState, code: 'legacy-code-1' }, 'GET', Date.now() + 601_000)
  assertErrorPage(await answerCallback(late, callbackSettings, { state }, {}), 'AS_AUTHORIZATION_STATE_INVALID', 'state')
})

test('a session whose pushed request is gone is an error page: no redirect URI to trust', async () => {
  const state = frontChannelState()
  const gatewayState = 'S'.repeat(43)
  await state.startSession(gatewayState, { requestRef: 'gone', clientId: 'fintech', legacyCodeVerifier: undefined, expiresAt: Date.now() + 60_000 }, 60_000)
  assertErrorPage(
    await answerCallback(browserRequest({ state: gatewayState, code: 'c' }), callbackSettings, { state }, {}),
    'AS_REQUEST_URI_INVALID',
    'request_uri',
  )
})

test('a second authorization with the same request_uri is refused at its callback with invalid_request_uri (OIDF PARAttemptReuseRequestUri)', async () => {
  const state = frontChannelState()
  const { requestUri } = await push(state)
  const first = await authorize(state, requestUri)
  const reloaded = await authorize(state, requestUri)
  assert.ok(redirectOf(await answerCallback(browserRequest({ state: first, code: 'legacy-code-1' }), callbackSettings, { state }, {})).searchParams.get('code'))
  const answer = await answerCallback(browserRequest({ state: reloaded, code: 'legacy-code-2' }), callbackSettings, { state }, {})
  assert.deepEqual(Object.fromEntries(redirectOf(answer).searchParams), { error: 'invalid_request_uri', state: 'partner-state-1', iss: ISSUER })
  assert.equal(answer.kind === 'redirect' && answer.refusal?.code, 'AS_REQUEST_URI_INVALID')
})

test('a legacy error goes on as an RFC 6749 §4.1.2.1 error with state and iss, never its description; others are server_error', async () => {
  const cases: [Record<string, string> | URLSearchParams, string][] = [
    [{ error: 'access_denied', error_description: '<script>alert(1)</script>' }, 'access_denied'],
    [{ error: 'invalid_scope' }, 'invalid_scope'],
    [{ error: 'temporarily_unavailable' }, 'temporarily_unavailable'],
    [{ error: 'login_required' }, 'server_error'],
    [{ error: 'invalid_request_uri' }, 'server_error'],
    [{ error: 'access_denied', code: 'legacy-code-1' }, 'access_denied'],
    [
      new URLSearchParams([
        ['error', 'access_denied'],
        ['error', 'invalid_scope'],
      ]),
      'server_error',
    ],
  ]
  for (const [query, expected] of cases) {
    const { state, gatewayState } = await started()
    const params = new URLSearchParams(query)
    params.set('state', gatewayState)
    const answer = await answerCallback(browserRequest(params), callbackSettings, { state }, {})
    assert.deepEqual(Object.fromEntries(redirectOf(answer).searchParams), { error: expected, state: 'partner-state-1', iss: ISSUER }, params.toString())
    assert.equal(answer.kind === 'redirect' && answer.passedOn, expected)
  }
})

test('a legacy answer without a usable code is server_error for the partner', async () => {
  const cases: URLSearchParams[] = [
    new URLSearchParams(),
    new URLSearchParams({ code: '' }),
    new URLSearchParams({ code: 'c'.repeat(2049) }),
    new URLSearchParams({ code: 'line\nbreak' }),
    new URLSearchParams([
      ['code', 'one'],
      ['code', 'two'],
    ]),
  ]
  for (const query of cases) {
    const { state, gatewayState } = await started()
    query.set('state', gatewayState)
    const answer = await answerCallback(browserRequest(query), callbackSettings, { state }, {})
    assert.deepEqual(Object.fromEntries(redirectOf(answer).searchParams), { error: 'server_error', state: 'partner-state-1', iss: ISSUER })
    assert.equal(answer.kind === 'redirect' && answer.refusal?.code, 'AS_LEGACY_BAD_ANSWER')
  }
})

test('the request is used up by a legacy error too', async () => {
  const state = frontChannelState()
  const { requestUri } = await push(state)
  const first = await authorize(state, requestUri)
  const second = await authorize(state, requestUri)
  await answerCallback(browserRequest({ state: first, error: 'access_denied' }), callbackSettings, { state }, {})
  const answer = await answerCallback(browserRequest({ state: second, code: 'legacy-code-1' }), callbackSettings, { state }, {})
  assert.equal(redirectOf(answer).searchParams.get('error'), 'invalid_request_uri')
})

test('a method other than GET is a 405 error page', async () => {
  const { state, gatewayState } = await started()
  const answer = await answerCallback(browserRequest({ state: gatewayState, code: 'c' }, 'POST'), callbackSettings, { state }, {})
  assertErrorPage(answer, 'AS_METHOD_NOT_ALLOWED', 'method')
  assert.equal(answer.kind === 'error-page' && answer.allow, 'GET')
})

test('response_mode=jwt (JARM) without a signing key of the gateway (gone since PAR): an error page, no code, never a plain response', async () => {
  const state = frontChannelState()
  const { ref } = await push(state, pushedRequest({ responseMode: 'jwt' }))
  const gatewayState = 'J'.repeat(43)
  await state.startSession(gatewayState, { requestRef: ref, clientId: 'fintech', legacyCodeVerifier: undefined, expiresAt: Date.now() + 60_000 }, 60_000)
  const answer = await answerCallback(browserRequest({ state: gatewayState, code: 'legacy-code-1' }), callbackSettings, { state }, {})
  assertErrorPage(answer, 'AS_REQUEST_MALFORMED', 'response_mode')
})

test('a store that cannot answer: an error page before the redirect URI is known, temporarily_unavailable to the partner after', async () => {
  const store = createMemoryReplayStore({ maxEntries: 100, now: Date.now })
  const real = createFrontChannelState(store)
  const pushed = await push(real)
  const gatewayState = await authorize(real, pushed.requestUri)
  // The one stand-in: a store failing between two of one callback's steps cannot be arranged otherwise.
  const failing: FrontChannelState = { ...real, issueCode: () => store.close().then(() => real.issueCode('x', {} as never, 1000)) }
  const answer = await answerCallback(browserRequest({ state: gatewayState, code: 'legacy-code-1' }), callbackSettings, { state: failing }, {})
  assert.deepEqual(Object.fromEntries(redirectOf(answer).searchParams), { error: 'temporarily_unavailable', state: 'partner-state-1', iss: ISSUER })
  assert.equal(answer.kind === 'redirect' && answer.refusal?.code, 'AS_STORE_UNAVAILABLE')

  const closed = await answerCallback(browserRequest({ state: 'Z'.repeat(43), code: 'c' }), callbackSettings, { state: real }, {})
  assertErrorPage(closed, 'AS_STORE_UNAVAILABLE', 'state')
})

test('a stored redirect URI that is no URL: an error page, never a throw', async () => {
  const { state, gatewayState } = await started(pushedRequest({ redirectUri: 'not a url' }))
  const answer = await answerCallback(browserRequest({ state: gatewayState, code: 'legacy-code-1' }), callbackSettings, { state }, {})
  assertErrorPage(answer, 'AS_INTERNAL', 'callback')
})
