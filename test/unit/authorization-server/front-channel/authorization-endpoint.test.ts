// The authorization endpoint: only client_id and a request_uri of that client count, the customer is sent
// (303) to the legacy login with the gateway's own state and PKCE pair, and every refusal before a redirect
// URI is trusted is an error page. Real memory replay store under the real front-channel state.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { answerAuthorizationRequest } from '../../../../src/authorization-server/front-channel/authorization-endpoint.ts'
import { REQUEST_URI_PREFIX } from '../../../../src/authorization-server/front-channel/par-endpoint.ts'
import type { BrowserAnswer } from '../../../../src/authorization-server/front-channel/browser-answer.ts'
import { createFrontChannelState } from '../../../../src/authorization-server/front-channel/state.ts'
import type { OAuthErrorCode } from '../../../../src/authorization-server/errors.ts'
import type { TokenRequestFacts } from '../../../../src/authorization-server/token-endpoint.ts'
import { createMemoryReplayStore } from '../../../../src/replay/memory-store.ts'
import { authorizationSettings, browserRequest, codePartner, frontChannelState, push, pushedRequest, registryOf } from '../../../support/front-channel.ts'

const partners = registryOf(codePartner('fintech', 'gw-fintech'), codePartner('other', 'gw-other'))

function redirectOf(answer: BrowserAnswer): URL {
  assert.equal(answer.kind, 'redirect', answer.kind === 'error-page' ? answer.error.message : '')
  return new URL(answer.location)
}

function assertErrorPage(answer: BrowserAnswer, code: OAuthErrorCode, rule: string): void {
  assert.equal(answer.kind, 'error-page', answer.kind === 'redirect' ? `redirected to ${answer.location}` : '')
  assert.equal(answer.error.code, code, answer.error.detail)
  assert.equal(answer.error.rule, rule, answer.error.detail)
}

test('it sends the browser to the legacy login with the pushed parameters, its own state and its own S256 PKCE pair', async () => {
  const state = frontChannelState()
  const { requestUri, ref } = await push(state)
  const facts: TokenRequestFacts = {}
  const answer = await answerAuthorizationRequest(
    browserRequest({ client_id: 'fintech', request_uri: requestUri }),
    authorizationSettings(),
    { partners, state },
    facts,
  )
  const location = redirectOf(answer)
  assert.equal(location.origin + location.pathname, 'https://legacy.bank.example/auth')
  const sent = Object.fromEntries(location.searchParams)
  assert.deepEqual(Object.keys(sent).sort(), ['client_id', 'code_challenge', 'code_challenge_method', 'redirect_uri', 'response_type', 'scope', 'state'])
  assert.equal(sent.response_type, 'code')
  assert.equal(sent.client_id, 'gw-fintech', 'the legacy client, not the partner')
  assert.equal(sent.redirect_uri, 'https://api.bank.example/oauth2/callback')
  assert.equal(sent.scope, 'accounts')
  assert.equal(sent.code_challenge_method, 'S256')
  assert.match(sent.state!, /^[A-Za-z0-9_-]{43}$/, '256 bits of state (FAPI 2.0 SP §5.4.1-4)')
  assert.notEqual(sent.state, 'partner-state-1', 'never the partner state')
  assert.notEqual(sent.code_challenge, pushedRequest().codeChallenge, 'never the partner challenge')
  assert.equal(facts.clientId, 'fintech')

  const session = await state.takeSession(sent.state!)
  assert.ok(session)
  assert.equal(session.requestRef, ref)
  assert.equal(session.clientId, 'fintech')
  assert.match(session.legacyCodeVerifier!, /^[A-Za-z0-9_-]{43}$/)
  assert.equal(createHash('sha256').update(session.legacyCodeVerifier!).digest('base64url'), sent.code_challenge)
})

test('only client_id and request_uri count, an outside state or redirect_uri is ignored (OIDF StateOnlyOutsideRequestObjectNotUsed)', async () => {
  const state = frontChannelState()
  const { requestUri } = await push(state)
  const answer = await answerAuthorizationRequest(
    browserRequest({
      client_id: 'fintech',
      request_uri: requestUri,
      state: 'outside-state',
      redirect_uri: 'https://attacker.example/cb',
      scope: 'payments',
      response_type: 'token',
      nonce: 'outside',
    }),
    authorizationSettings({ openid: true }),
    { partners, state },
    {},
  )
  const sent = redirectOf(answer).searchParams
  assert.notEqual(sent.get('state'), 'outside-state')
  assert.equal(sent.get('redirect_uri'), 'https://api.bank.example/oauth2/callback')
  assert.equal(sent.get('scope'), 'accounts')
  assert.equal(sent.get('response_type'), 'code')
  assert.equal(sent.get('nonce'), null, 'no nonce was pushed')
})

test('a POST form works as the query does', async () => {
  const state = frontChannelState()
  const { requestUri } = await push(state)
  const answer = await answerAuthorizationRequest(
    browserRequest({ client_id: 'fintech', request_uri: requestUri }, 'POST'),
    authorizationSettings(),
    { partners, state },
    {},
  )
  assert.equal(redirectOf(answer).searchParams.get('client_id'), 'gw-fintech')
})

test('the query the legacy endpoint URL already has is kept as it is', async () => {
  const state = frontChannelState()
  const { requestUri } = await push(state)
  const answer = await answerAuthorizationRequest(
    browserRequest({ client_id: 'fintech', request_uri: requestUri }),
    authorizationSettings({ legacyAuthorizationEndpoint: 'https://legacy.bank.example/auth?tenant=retail%20bank&ui=1' }),
    { partners, state },
    {},
  )
  assert.equal(answer.kind, 'redirect')
  assert.ok(answer.location.startsWith('https://legacy.bank.example/auth?tenant=retail%20bank&ui=1&response_type=code&'), answer.location)
})

test('without legacy PKCE no challenge is sent and the session keeps no verifier', async () => {
  const state = frontChannelState()
  const { requestUri } = await push(state)
  const answer = await answerAuthorizationRequest(
    browserRequest({ client_id: 'fintech', request_uri: requestUri }),
    authorizationSettings({ legacyPkce: false }),
    { partners, state },
    {},
  )
  const sent = redirectOf(answer).searchParams
  assert.equal(sent.get('code_challenge'), null)
  assert.equal(sent.get('code_challenge_method'), null)
  assert.equal((await state.takeSession(sent.get('state')!))?.legacyCodeVerifier, undefined)
})

test('the pushed nonce goes on only with openid, 64 characters intact (OIDF EnsureAuthorizationRequestWith64CharNonceSuccess)', async () => {
  const nonce = 'n'.repeat(64)
  const state = frontChannelState()
  const { requestUri } = await push(state, pushedRequest({ nonce, scope: 'openid accounts' }))
  const request = browserRequest({ client_id: 'fintech', request_uri: requestUri })
  const withOpenid = redirectOf(await answerAuthorizationRequest(request, authorizationSettings({ openid: true }), { partners, state }, {}))
  assert.equal(withOpenid.searchParams.get('nonce'), nonce)
  assert.equal(withOpenid.searchParams.get('scope'), 'openid accounts')
  const without = redirectOf(await answerAuthorizationRequest(request, authorizationSettings(), { partners, state }, {}))
  assert.equal(without.searchParams.get('nonce'), null)
})

test('a reload before authentication works (OIDF PAREnsureServerAcceptsReusedRequestUriBeforeAuthenticationCompletion)', async () => {
  const state = frontChannelState()
  const { requestUri, ref } = await push(state)
  const request = browserRequest({ client_id: 'fintech', request_uri: requestUri })
  const first = redirectOf(await answerAuthorizationRequest(request, authorizationSettings(), { partners, state }, {}))
  const second = redirectOf(await answerAuthorizationRequest(request, authorizationSettings(), { partners, state }, {}))
  assert.notEqual(first.searchParams.get('state'), second.searchParams.get('state'))
  assert.equal(await state.useRequest(ref, 1000), true, 'still unused')
})

test('the pushed request outlives its request_uri for as long as the customer may take at the legacy login', async () => {
  let storeNow = Date.now()
  const state = createFrontChannelState(createMemoryReplayStore({ maxEntries: 100, now: () => storeNow }))
  const { requestUri, ref } = await push(state)
  await answerAuthorizationRequest(browserRequest({ client_id: 'fintech', request_uri: requestUri }), authorizationSettings(), { partners, state }, {})
  // Five minutes on: past the 90 s the PAR endpoint stored it for, within the 600 s session.
  storeNow += 300_000
  assert.ok(await state.readRequest(ref))
  storeNow += 301_000
  assert.equal(await state.readRequest(ref), undefined)
})

test('a missing, empty, repeated or oversized client_id or request_uri is an error page, never a redirect', async () => {
  const state = frontChannelState()
  const { requestUri } = await push(state)
  const deps = { partners, state }
  const cases: [Record<string, string> | URLSearchParams, string][] = [
    [{ request_uri: requestUri }, 'client_id'],
    [{ client_id: 'fintech' }, 'request_uri'],
    [{ client_id: '', request_uri: requestUri }, 'client_id'],
    [
      new URLSearchParams([
        ['client_id', 'fintech'],
        ['client_id', 'other'],
        ['request_uri', requestUri],
      ]),
      'client_id',
    ],
    [
      new URLSearchParams([
        ['client_id', 'fintech'],
        ['request_uri', requestUri],
        ['request_uri', requestUri],
      ]),
      'request_uri',
    ],
    [{ client_id: 'x'.repeat(256), request_uri: requestUri }, 'client_id'],
    [{ client_id: 'fintech', request_uri: REQUEST_URI_PREFIX + 'r'.repeat(257) }, 'request_uri'],
  ]
  for (const [query, rule] of cases)
    assertErrorPage(await answerAuthorizationRequest(browserRequest(query), authorizationSettings(), deps, {}), 'AS_REQUEST_MALFORMED', rule)
})

test('a foreign, unknown, expired or another client’s request_uri is an error page (OIDF PAREnsureRequestUriIsBoundToClient, PARAttemptToUseExpiredRequestUri)', async () => {
  const state = frontChannelState()
  const deps = { partners, state }
  const settings = authorizationSettings()
  const valid = await push(state)
  const expired = await push(state, pushedRequest({ expiresAt: Date.now() - 1 }))
  const removed = await push(state, pushedRequest({ clientId: 'removed' }))
  const cases: [Record<string, string>, string][] = [
    [{ client_id: 'fintech', request_uri: valid.ref }, 'request_uri'],
    [{ client_id: 'fintech', request_uri: `urn:example:${valid.ref}` }, 'request_uri'],
    [{ client_id: 'fintech', request_uri: REQUEST_URI_PREFIX }, 'request_uri'],
    [{ client_id: 'fintech', request_uri: `${REQUEST_URI_PREFIX}unknown` }, 'request_uri'],
    [{ client_id: 'fintech', request_uri: expired.requestUri }, 'request_uri'],
    [{ client_id: 'other', request_uri: valid.requestUri }, 'request_uri'],
    [{ client_id: 'removed', request_uri: removed.requestUri }, 'client_id'],
  ]
  for (const [query, rule] of cases) {
    const facts: TokenRequestFacts = {}
    assertErrorPage(await answerAuthorizationRequest(browserRequest(query), settings, deps, facts), 'AS_REQUEST_URI_INVALID', rule)
    assert.equal(facts.clientId, undefined)
  }
  // The legitimate request still passes after all of that.
  assert.equal((await answerAuthorizationRequest(browserRequest({ client_id: 'fintech', request_uri: valid.requestUri }), settings, deps, {})).kind, 'redirect')
})

test('a method other than GET or POST is a 405 error page', async () => {
  const state = frontChannelState()
  const { requestUri } = await push(state)
  for (const method of ['PUT', 'DELETE', 'OPTIONS', 'HEAD']) {
    const answer = await answerAuthorizationRequest(
      browserRequest({ client_id: 'fintech', request_uri: requestUri }, method),
      authorizationSettings(),
      { partners, state },
      {},
    )
    assertErrorPage(answer, 'AS_METHOD_NOT_ALLOWED', 'method')
    assert.equal(answer.kind === 'error-page' && answer.allow, 'GET, POST')
  }
})

test('a store that cannot answer is a 503 error page (fail closed)', async () => {
  const store = createMemoryReplayStore({ maxEntries: 100, now: Date.now })
  const state = createFrontChannelState(store)
  const { requestUri } = await push(state)
  await store.close()
  const answer = await answerAuthorizationRequest(
    browserRequest({ client_id: 'fintech', request_uri: requestUri }),
    authorizationSettings(),
    { partners, state },
    {},
  )
  assertErrorPage(answer, 'AS_STORE_UNAVAILABLE', 'request_uri')
})

test('response_mode=jwt (JARM) without a signing key of the gateway (gone since PAR): an error page, and the legacy server is never asked', async () => {
  const state = frontChannelState()
  const { requestUri } = await push(state, pushedRequest({ responseMode: 'jwt' }))
  const answer = await answerAuthorizationRequest(
    browserRequest({ client_id: 'fintech', request_uri: requestUri }),
    authorizationSettings(),
    { partners, state },
    {},
  )
  assertErrorPage(answer, 'AS_REQUEST_MALFORMED', 'response_mode')
})
