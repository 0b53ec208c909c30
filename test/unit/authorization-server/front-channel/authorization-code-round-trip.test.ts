// The whole browser trip through a real legacy server (oidc-provider with its development login and
// consent pages): the gateway's redirect, the legacy login, the legacy server's redirect to the gateway's
// callback, and the gateway's redirect to the partner with a code of its own, the partner's state and iss.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { Agent, request } from 'undici'
import { startLegacyServer } from '../../../../dev/legacy-server.ts'
import { createUserAgent } from '../../../../dev/user-agent.ts'
import { answerAuthorizationRequest } from '../../../../src/authorization-server/front-channel/authorization-endpoint.ts'
import type { BrowserAnswer } from '../../../../src/authorization-server/front-channel/browser-answer.ts'
import { answerCallback } from '../../../../src/authorization-server/front-channel/callback-endpoint.ts'
import { createDevPki } from '../../../../dev/pki.ts'
import {
  authorizationSettings,
  browserRequest,
  CALLBACK_URL,
  callbackSettings,
  codePartner,
  frontChannelState,
  ISSUER,
  push,
  pushedRequest,
  registryOf,
} from '../../../support/front-channel.ts'

const legacy = await startLegacyServer({
  pki: await createDevPki(),
  clients: [{ clientId: 'gw-fintech', clientSecret: 'legacy-secret', grantTypes: ['authorization_code'], scopes: ['accounts'], redirectUris: [CALLBACK_URL] }],
})
const legacyAgent = new Agent({ connect: { ca: legacy.caPem } })
after(() => Promise.all([legacy.close(), legacyAgent.close()]))

const partners = registryOf(codePartner('fintech', 'gw-fintech'))
const settings = authorizationSettings({ legacyAuthorizationEndpoint: legacy.authorizationEndpoint })

function locationOf(answer: BrowserAnswer): string {
  assert.equal(answer.kind, 'redirect', answer.kind === 'error-page' ? answer.error.message : '')
  return answer.location
}

/** Push, authorize, and the legacy login: the legacy server's redirect to the gateway's callback. */
async function throughLegacyLogin(cancel = false) {
  const state = frontChannelState()
  const { requestUri } = await push(state, pushedRequest({ state: 'partner-state-7' }))
  const toLegacy = locationOf(
    await answerAuthorizationRequest(browserRequest({ client_id: 'fintech', request_uri: requestUri }), settings, { partners, state }, {}),
  )
  assert.ok(toLegacy.startsWith(`${legacy.authorizationEndpoint}?`))
  const browser = createUserAgent({ caPem: legacy.caPem })
  try {
    const { url, steps, page } = await browser.browse(toLegacy, { stopAt: CALLBACK_URL, cancel })
    assert.equal(page, undefined, page?.text)
    assert.ok(steps.every((step) => step.status !== 307))
    return { state, toCallback: url }
  } finally {
    await browser.close()
  }
}

test('legacy login → a gateway code with the partner state and iss; the stored code holds the legacy code, redeemable with our verifier', async () => {
  const { state, toCallback } = await throughLegacyLogin()
  const legacyCode = toCallback.searchParams.get('code')
  assert.ok(legacyCode, toCallback.href)
  const toPartner = new URL(locationOf(await answerCallback(browserRequest(toCallback.searchParams), callbackSettings, { state }, {})))
  assert.equal(toPartner.origin + toPartner.pathname, 'https://fintech.example/callback')
  assert.equal(toPartner.searchParams.get('state'), 'partner-state-7')
  assert.equal(toPartner.searchParams.get('iss'), ISSUER)
  const code = toPartner.searchParams.get('code')!
  assert.notEqual(code, legacyCode)

  const redeemed = await state.redeemCode(code)
  assert.equal(redeemed?.issued.legacyCode, legacyCode)
  assert.equal(redeemed.issued.clientId, 'fintech')
  assert.equal(legacy.requestsTo('/token').length, 0, 'the front channel never redeems a legacy code')

  // What the token endpoint will do with it: the legacy server takes the code with the gateway's own verifier.
  const redeemedAtLegacy = await request(legacy.tokenEndpoint, {
    method: 'POST',
    dispatcher: legacyAgent,
    headers: {
      authorization: `Basic ${Buffer.from('gw-fintech:legacy-secret').toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: legacyCode,
      redirect_uri: CALLBACK_URL,
      code_verifier: redeemed.issued.legacyCodeVerifier!,
    }).toString(),
  })
  const body = (await redeemedAtLegacy.body.json()) as Record<string, unknown>
  assert.equal(redeemedAtLegacy.statusCode, 200, JSON.stringify(body))
  assert.equal(typeof body.access_token, 'string')
})

test('the legacy redirect replayed at the callback is an error page and its code goes nowhere', async () => {
  const { state, toCallback } = await throughLegacyLogin()
  assert.equal((await answerCallback(browserRequest(toCallback.searchParams), callbackSettings, { state }, {})).kind, 'redirect')
  const replayed = await answerCallback(browserRequest(toCallback.searchParams), callbackSettings, { state }, {})
  assert.equal(replayed.kind, 'error-page')
  assert.equal(replayed.error.code, 'AS_AUTHORIZATION_STATE_INVALID')
})

test('a customer who cancels at the legacy login: the partner gets access_denied with its state and iss, and no description', async () => {
  const { state, toCallback } = await throughLegacyLogin(true)
  assert.equal(toCallback.searchParams.get('error'), 'access_denied')
  assert.ok(toCallback.searchParams.get('error_description'))
  const toPartner = new URL(locationOf(await answerCallback(browserRequest(toCallback.searchParams), callbackSettings, { state }, {})))
  assert.deepEqual(Object.fromEntries(toPartner.searchParams), { error: 'access_denied', state: 'partner-state-7', iss: ISSUER })
})
