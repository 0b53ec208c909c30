// The authorization-code flow through the façade (issue 14), end to end: a real FAPI client (oauth4webapi:
// PAR, PKCE S256, private_key_jwt, DPoP, RFC 9207 iss validation, signed request objects), a scripted
// browser that logs in at the real legacy server's own pages (oidc-provider), the real gateway in front,
// and a resource request that reaches the upstream. Each refusal says what the legacy server and the
// upstream saw.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import * as oauth from 'oauth4webapi'
import { CompactEncrypt, exportPKCS8, generateKeyPair, importJWK, type JWK } from 'jose'
import { request } from 'undici'
import { startFacadeEnvironment, type FacadeEnvironment } from '../../dev/facade-environment.ts'
import { createUserAgent, type UserAgent } from '../../dev/user-agent.ts'
import { captureLog, testPki } from '../support/gateway.ts'
import { discover, dpopKeys, transport, withNonceRetry, type Transport } from '../support/fapi-client.ts'
import { createLogger } from '../../src/observability/log.ts'

const REDIRECT_URI = 'https://partner-a.example/callback'

describe('the authorization-code flow through the façade, in front of the legacy login pages', () => {
  let env: FacadeEnvironment
  let t: Transport
  let as: oauth.AuthorizationServer
  let browser: UserAgent
  const client: oauth.Client = { client_id: 'partner-a' }
  let auth: oauth.ClientAuth
  const { sink, log } = captureLog()

  before(async () => {
    const pki = await testPki()
    env = await startFacadeEnvironment({ logger: createLogger('info', sink), pki, frontChannel: true, gateway: { eventStream: sink } })
    t = await transport()
    const issuer = new URL(env.issuer)
    as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { ...t.options, algorithm: 'oauth2' }))
    auth = oauth.PrivateKeyJwt({ key: env.partnerA.privateKey, kid: env.partnerA.publicJwk.kid })
    browser = createUserAgent({ caPem: pki.root.certPem })
  })
  after(async () => {
    await browser?.close()
    await t?.agent.close()
    await env?.close()
  })

  /** PAR, then the browser from the gateway's authorization endpoint through the legacy login to the redirect URI. */
  async function authorize(dpop: oauth.DPoPHandle, extra: Record<string, string> = {}) {
    const verifier = oauth.generateRandomCodeVerifier()
    const state = oauth.generateRandomState()
    const parameters = {
      response_type: 'code',
      redirect_uri: REDIRECT_URI,
      scope: 'accounts:read',
      code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      ...extra,
    }
    const pushed = await withNonceRetry(async () =>
      oauth.processPushedAuthorizationResponse(as, client, await oauth.pushedAuthorizationRequest(as, client, auth, parameters, { ...t.options, DPoP: dpop })),
    )
    assert.ok(pushed.expires_in < 600)
    const start = new URL(as.authorization_endpoint!)
    start.searchParams.set('client_id', client.client_id)
    start.searchParams.set('request_uri', pushed.request_uri)
    const browsed = await browser.browse(start.href, { stopAt: REDIRECT_URI })
    return { verifier, state, browsed, requestUri: pushed.request_uri }
  }

  async function exchange(dpop: oauth.DPoPHandle, callback: URLSearchParams, verifier: string) {
    return withNonceRetry(async () =>
      oauth.processAuthorizationCodeResponse(
        as,
        client,
        await oauth.authorizationCodeGrantRequest(as, client, auth, callback, REDIRECT_URI, verifier, { ...t.options, DPoP: dpop }),
      ),
    )
  }

  async function resource(accessToken: string, dpop?: oauth.DPoPHandle) {
    try {
      return await withNonceRetry(() =>
        oauth.protectedResourceRequest(accessToken, 'GET', new URL('/accounts/42', env.issuer), new Headers(), null, { ...t.options, DPoP: dpop }),
      )
    } catch (error) {
      if (error instanceof oauth.WWWAuthenticateChallengeError) return error.response
      throw error
    }
  }

  it('publishes the front channel in its metadata: PAR required, code only, iss in the response', () => {
    assert.equal(as.require_pushed_authorization_requests, true)
    assert.deepEqual(as.response_types_supported, ['code'])
    assert.equal(as.authorization_response_iss_parameter_supported, true)
    assert.ok(as.pushed_authorization_request_endpoint?.startsWith(env.issuer))
  })

  it('PAR → authorize → legacy login → callback → code → DPoP-bound token → resource request that reaches the upstream', async () => {
    const dpop = oauth.DPoP(client, await dpopKeys())
    const { verifier, state, browsed } = await authorize(dpop)
    const gatewaySteps = browsed.steps.filter((step) => step.url.startsWith(env.issuer))
    assert.ok(gatewaySteps.length >= 2, 'the authorization endpoint and the callback')
    for (const step of gatewaySteps) assert.equal(step.status, 303, `${new URL(step.url).pathname} redirects with 303`)
    assert.equal(browsed.url.searchParams.get('iss'), env.issuer, 'RFC 9207 iss')
    // oauth4webapi checks iss and state (RFC 9207) as a FAPI client must.
    const callback = oauth.validateAuthResponse(as, client, browsed.url, state)
    const tokens = await exchange(dpop, callback, verifier)
    assert.equal(tokens.token_type, 'dpop')
    const seen = env.upstream.received.length
    assert.equal((await resource(tokens.access_token, dpop)).status, 200)
    assert.equal(env.upstream.received.length, seen + 1)
    assert.equal((await resource(tokens.access_token, oauth.DPoP(client, await dpopKeys()))).status, 401, 'another key')
  })

  it('a code used twice is invalid_grant, and what its first use issued is revoked (AttemptReuseAuthorizationCodeAfterOneSecond)', async () => {
    const dpop = oauth.DPoP(client, await dpopKeys())
    const { verifier, state, browsed } = await authorize(dpop)
    const callback = oauth.validateAuthResponse(as, client, browsed.url, state)
    const tokens = await exchange(dpop, callback, verifier)
    assert.equal((await resource(tokens.access_token, dpop)).status, 200)
    const legacyTokenCalls = env.legacy.requestsTo(new URL(env.legacy.tokenEndpoint).pathname).length
    await assert.rejects(exchange(dpop, callback, verifier), (error: unknown) => error instanceof oauth.ResponseBodyError && error.error === 'invalid_grant')
    assert.equal(env.legacy.requestsTo(new URL(env.legacy.tokenEndpoint).pathname).length, legacyTokenCalls, 'the legacy code is never redeemed twice')
    assert.equal((await resource(tokens.access_token, dpop)).status, 401, 'the first token is revoked')
  })

  it('a wrong PKCE verifier is invalid_grant (PARIncorrectPKCECodeVerifierRejected)', async () => {
    const dpop = oauth.DPoP(client, await dpopKeys())
    const { state, browsed } = await authorize(dpop)
    const callback = oauth.validateAuthResponse(as, client, browsed.url, state)
    await assert.rejects(
      exchange(dpop, callback, oauth.generateRandomCodeVerifier()),
      (error: unknown) => error instanceof oauth.ResponseBodyError && error.error === 'invalid_grant',
    )
  })

  it('the code is bound to the PAR-time DPoP key: another key at the token endpoint is refused (EnsureTokenEndpointFailsWithMismatchedDpopJkt)', async () => {
    const dpop = oauth.DPoP(client, await dpopKeys())
    const { verifier, state, browsed } = await authorize(dpop)
    const callback = oauth.validateAuthResponse(as, client, browsed.url, state)
    await assert.rejects(exchange(oauth.DPoP(client, await dpopKeys()), callback, verifier), (error: unknown) => error instanceof oauth.ResponseBodyError)
  })

  it('a signed request object (RFC 9101) carries the request; only its content counts', async () => {
    const dpop = oauth.DPoP(client, await dpopKeys())
    const verifier = oauth.generateRandomCodeVerifier()
    const state = oauth.generateRandomState()
    const requestObject = await oauth.issueRequestObject(
      as,
      client,
      {
        response_type: 'code',
        redirect_uri: REDIRECT_URI,
        scope: 'accounts:read',
        code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
      },
      { key: env.partnerA.privateKey, kid: env.partnerA.publicJwk.kid },
    )
    const pushed = await withNonceRetry(async () =>
      oauth.processPushedAuthorizationResponse(
        as,
        client,
        await oauth.pushedAuthorizationRequest(as, client, auth, { request: requestObject }, { ...t.options, DPoP: dpop }),
      ),
    )
    const start = new URL(as.authorization_endpoint!)
    start.search = new URLSearchParams({ client_id: client.client_id, request_uri: pushed.request_uri, state: 'outside-state-ignored' }).toString()
    const browsed = await browser.browse(start.href, { stopAt: REDIRECT_URI })
    const callback = oauth.validateAuthResponse(as, client, browsed.url, state)
    const tokens = await exchange(dpop, callback, verifier)
    assert.equal((await resource(tokens.access_token, dpop)).status, 200)
  })

  it('another client’s request_uri ends on an error page at the gateway, never redirected (PAREnsureRequestUriIsBoundToClient)', async () => {
    const dpop = oauth.DPoP(client, await dpopKeys())
    const verifier = oauth.generateRandomCodeVerifier()
    const pushed = await withNonceRetry(async () =>
      oauth.processPushedAuthorizationResponse(
        as,
        client,
        await oauth.pushedAuthorizationRequest(
          as,
          client,
          auth,
          {
            response_type: 'code',
            redirect_uri: REDIRECT_URI,
            scope: 'accounts:read',
            code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
            code_challenge_method: 'S256',
          },
          { ...t.options, DPoP: dpop },
        ),
      ),
    )
    const start = new URL(as.authorization_endpoint!)
    start.search = new URLSearchParams({ client_id: 'partner-b', request_uri: pushed.request_uri }).toString()
    const legacyCalls = env.legacy.requests.length
    const browsed = await browser.browse(start.href, { stopAt: REDIRECT_URI })
    assert.equal(browsed.page?.status, 400)
    assert.equal(browsed.steps.length, 1, 'no redirect at all')
    assert.equal(env.legacy.requests.length, legacyCalls)
    assert.match(String(browsed.page?.headers['content-type']), /^text\/html/)
    assert.equal(browsed.page?.headers['access-control-allow-origin'], undefined, 'no CORS on the authorization endpoint')
  })

  it('an unknown state at the callback ends on an error page, and no legacy code is redeemed', async () => {
    const legacyTokenCalls = env.legacy.requestsTo(new URL(env.legacy.tokenEndpoint).pathname).length
    const response = await request(`${env.issuer}/oauth2/callback?code=stolen&state=made-up`, { dispatcher: t.agent })
    assert.equal(response.statusCode, 400)
    await response.body.text()
    assert.equal(env.legacy.requestsTo(new URL(env.legacy.tokenEndpoint).pathname).length, legacyTokenCalls)
  })

  it('PAR refuses: no PKCE, plain PKCE, an unregistered redirect_uri, response_type token, a request_uri inside, GET', async () => {
    const form = async (params: Record<string, string>) => {
      const dpop = oauth.DPoP(client, await dpopKeys())
      try {
        await withNonceRetry(async () =>
          oauth.processPushedAuthorizationResponse(as, client, await oauth.pushedAuthorizationRequest(as, client, auth, params, { ...t.options, DPoP: dpop })),
        )
        return 'accepted'
      } catch (error) {
        return error instanceof oauth.ResponseBodyError ? `${error.status} ${error.error}` : String(error)
      }
    }
    const base = { response_type: 'code', redirect_uri: REDIRECT_URI, scope: 'accounts:read' }
    const challenge = await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier())
    assert.equal(await form(base), '400 invalid_request', 'PAREnsurePKCERequired')
    assert.equal(await form({ ...base, code_challenge: challenge, code_challenge_method: 'plain' }), '400 invalid_request', 'PAREnsurePlainPKCERejected')
    assert.equal(
      await form({ ...base, code_challenge: challenge, code_challenge_method: 'S256', redirect_uri: 'https://evil.example/cb' }),
      '400 invalid_request',
    )
    assert.equal(
      await form({ ...base, code_challenge: challenge, code_challenge_method: 'S256', response_type: 'token' }),
      '400 unsupported_response_type',
      'EnsureResponseTypeTokenFails',
    )
    assert.match(
      await form({ ...base, code_challenge: challenge, code_challenge_method: 'S256', request_uri: 'urn:ietf:params:oauth:request_uri:x' }),
      /^400 /,
      'PARRejectRequestUriInParAuthorizationFormParams',
    )
    const get = await request(as.pushed_authorization_request_endpoint!, { dispatcher: t.agent })
    assert.equal(get.statusCode, 405, 'PARRejectInvalidHttpVerb')
    await get.body.text()
  })

  it('refresh after the code flow, with a new DPoP key: the refresh token is bound to the client, the new token to the new key', async () => {
    const dpop = oauth.DPoP(client, await dpopKeys())
    const { verifier, state, browsed } = await authorize(dpop, { scope: 'accounts:read' })
    const tokens = await exchange(dpop, oauth.validateAuthResponse(as, client, browsed.url, state), verifier)
    assert.ok(tokens.refresh_token, 'the legacy server issued a refresh token')
    const later = oauth.DPoP(client, await dpopKeys())
    const refreshed = await withNonceRetry(async () =>
      oauth.processRefreshTokenResponse(
        as,
        client,
        await oauth.refreshTokenGrantRequest(as, client, auth, tokens.refresh_token!, { ...t.options, DPoP: later }),
      ),
    )
    assert.equal((await resource(refreshed.access_token, later)).status, 200)
    assert.equal((await resource(refreshed.access_token, dpop)).status, 401, 'bound to the key of the refresh request')
  })

  it('a request_uri is used once, at the point of authorization: once one authorization completed, it ends on an error page before any login (PARAttemptReuseRequestUri)', async () => {
    const dpop = oauth.DPoP(client, await dpopKeys())
    const { browsed, requestUri } = await authorize(dpop)
    assert.ok(browsed.url.searchParams.get('code'))
    const again = new URL(as.authorization_endpoint!)
    again.search = new URLSearchParams({ client_id: client.client_id, request_uri: requestUri }).toString()
    const legacyCalls = env.legacy.requests.length
    const second = await browser.browse(again.href, { stopAt: REDIRECT_URI })
    assert.equal(second.page?.status, 400)
    assert.match(second.page?.text ?? '', /invalid_request_uri/)
    assert.equal(second.steps.length, 1, 'not sent to the legacy login again')
    assert.equal(env.legacy.requests.length, legacyCalls)
  })

  it('a customer who cancels at the legacy login: access_denied at the redirect URI, with the partner state and iss', async () => {
    const dpop = oauth.DPoP(client, await dpopKeys())
    const verifier = oauth.generateRandomCodeVerifier()
    const state = oauth.generateRandomState()
    const pushed = await withNonceRetry(async () =>
      oauth.processPushedAuthorizationResponse(
        as,
        client,
        await oauth.pushedAuthorizationRequest(
          as,
          client,
          auth,
          {
            response_type: 'code',
            redirect_uri: REDIRECT_URI,
            scope: 'accounts:read',
            code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
            code_challenge_method: 'S256',
            state,
            // A18: a 64-character nonce and a long state are handled.
            nonce: 'n'.repeat(64),
          },
          { ...t.options, DPoP: dpop },
        ),
      ),
    )
    const start = new URL(as.authorization_endpoint!)
    start.search = new URLSearchParams({ client_id: client.client_id, request_uri: pushed.request_uri }).toString()
    // A new browser: one with a session at the legacy server would not see its login page again.
    const fresh = createUserAgent({ caPem: (await testPki()).root.certPem })
    const cancelled = await fresh.browse(start.href, { stopAt: REDIRECT_URI, cancel: true }).finally(() => fresh.close())
    assert.equal(cancelled.url.searchParams.get('error'), 'access_denied')
    assert.equal(cancelled.url.searchParams.get('state'), state)
    assert.equal(cancelled.url.searchParams.get('iss'), env.issuer)
  })

  it('tls_client_auth partner: PAR and code exchange over mTLS, a certificate-bound token accepted with that certificate only', async () => {
    const pki = await testPki()
    const tB = await transport(pki.partnerB)
    const tA = await transport(pki.partnerA)
    try {
      const clientB: oauth.Client = { client_id: 'partner-b' }
      const redirectB = 'https://partner-b.example/callback'
      const verifier = oauth.generateRandomCodeVerifier()
      const state = oauth.generateRandomState()
      const pushed = await oauth.processPushedAuthorizationResponse(
        as,
        clientB,
        await oauth.pushedAuthorizationRequest(
          as,
          clientB,
          oauth.TlsClientAuth(),
          {
            response_type: 'code',
            redirect_uri: redirectB,
            scope: 'accounts:read',
            code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
            code_challenge_method: 'S256',
            state,
          },
          tB.options,
        ),
      )
      const start = new URL(as.authorization_endpoint!)
      start.search = new URLSearchParams({ client_id: clientB.client_id, request_uri: pushed.request_uri }).toString()
      const browsed = await browser.browse(start.href, { stopAt: redirectB })
      const callback = oauth.validateAuthResponse(as, clientB, browsed.url, state)
      const tokens = await oauth.processAuthorizationCodeResponse(
        as,
        clientB,
        await oauth.authorizationCodeGrantRequest(as, clientB, oauth.TlsClientAuth(), callback, redirectB, verifier, tB.options),
      )
      assert.equal(tokens.token_type, 'bearer')
      const call = async (via: Transport) => {
        try {
          return await oauth.protectedResourceRequest(tokens.access_token, 'GET', new URL('/accounts/42', env.issuer), new Headers(), null, via.options)
        } catch (error) {
          if (error instanceof oauth.WWWAuthenticateChallengeError) return error.response
          throw error
        }
      }
      assert.equal((await call(tB)).status, 200)
      assert.equal((await call(tA)).status, 401, 'another partner certificate')
    } finally {
      await Promise.allSettled([tB.agent.close(), tA.agent.close()])
    }
  })

  it('every refusal of the front channel is a security event, and no code, token or assertion is in any log line', () => {
    const refusals = log.events().filter((e) => e.event.reason?.startsWith('AS_'))
    const routes = new Set(refusals.map((e) => e.fapi?.route))
    assert.ok(routes.has('authorization-server-par'))
    assert.ok(routes.has('authorization-server-authorization'))
    assert.ok(routes.has('authorization-server-callback'))
    assert.doesNotMatch(log.lines.join('\n'), /eyJ[A-Za-z0-9_-]{20,}\.eyJ/)
  })
})

describe('the gateway’s own keys in the flow: JARM responses and encrypted request objects (FAPI 2.0 Message Signing)', () => {
  let env: FacadeEnvironment
  let t: Transport
  let as: oauth.AuthorizationServer
  let browser: UserAgent
  const client: oauth.Client = { client_id: 'partner-a', authorization_signed_response_alg: 'ES256' }
  let auth: oauth.ClientAuth

  before(async () => {
    const pki = await testPki()
    const pem = async (alg: string, options: Record<string, unknown> = {}) =>
      exportPKCS8((await generateKeyPair(alg, { extractable: true, ...options })).privateKey)
    env = await startFacadeEnvironment({
      logger: createLogger('silent'),
      pki,
      frontChannel: true,
      files: { 'jarm.pem': await pem('ES256'), 'request-enc.pem': await pem('RSA-OAEP-256', { modulusLength: 2048 }) },
      authorizationServer: {
        keys: [
          { kid: 'jarm-1', use: 'sig', alg: 'ES256', privateKeyFile: 'jarm.pem' },
          { kid: 'enc-1', use: 'enc', alg: 'RSA-OAEP-256', privateKeyFile: 'request-enc.pem' },
        ],
      },
    })
    t = await transport()
    as = await discover(env.issuer, t)
    auth = oauth.PrivateKeyJwt({ key: env.partnerA.privateKey, kid: env.partnerA.publicJwk.kid })
    browser = createUserAgent({ caPem: pki.root.certPem })
  })
  after(async () => {
    await browser?.close()
    await t?.agent.close()
    await env?.close()
  })

  it('response_mode=jwt: the response is a JWT signed by the published key, iss inside only; oauth4webapi validates it and the code is redeemed', async () => {
    assert.ok(as.jwks_uri, 'jwks_uri published')
    assert.ok(as.response_modes_supported?.includes('jwt'))
    const dpop = oauth.DPoP(client, await dpopKeys())
    const verifier = oauth.generateRandomCodeVerifier()
    const state = oauth.generateRandomState()
    const pushed = await withNonceRetry(async () =>
      oauth.processPushedAuthorizationResponse(
        as,
        client,
        await oauth.pushedAuthorizationRequest(
          as,
          client,
          auth,
          {
            response_type: 'code',
            response_mode: 'jwt',
            redirect_uri: REDIRECT_URI,
            scope: 'accounts:read',
            code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
            code_challenge_method: 'S256',
            state,
          },
          { ...t.options, DPoP: dpop },
        ),
      ),
    )
    const start = new URL(as.authorization_endpoint!)
    start.search = new URLSearchParams({ client_id: client.client_id, request_uri: pushed.request_uri }).toString()
    const browsed = await browser.browse(start.href, { stopAt: REDIRECT_URI })
    assert.ok(browsed.url.searchParams.get('response'), 'a JARM response')
    assert.equal(browsed.url.searchParams.get('iss'), null, 'iss only inside the JWT')
    const callback = await oauth.validateJwtAuthResponse(as, client, browsed.url, state, t.options)
    const tokens = await withNonceRetry(async () =>
      oauth.processAuthorizationCodeResponse(
        as,
        client,
        await oauth.authorizationCodeGrantRequest(as, client, auth, callback, REDIRECT_URI, verifier, { ...t.options, DPoP: dpop }),
      ),
    )
    assert.equal(tokens.token_type, 'dpop')
  })

  it('an encrypted request object (RFC 9101 §6.1) to the published encryption key is decrypted, then verified', async () => {
    const jwks = (await (await request(as.jwks_uri!, { dispatcher: t.agent })).body.json()) as { keys: JWK[] }
    const encryptionJwk = jwks.keys.find((key) => key.use === 'enc')!
    const verifier = oauth.generateRandomCodeVerifier()
    const state = oauth.generateRandomState()
    const signed = await oauth.issueRequestObject(
      as,
      client,
      {
        response_type: 'code',
        redirect_uri: REDIRECT_URI,
        scope: 'accounts:read',
        code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
      },
      { key: env.partnerA.privateKey, kid: env.partnerA.publicJwk.kid },
    )
    const encrypted = await new CompactEncrypt(new TextEncoder().encode(signed))
      .setProtectedHeader({ alg: 'RSA-OAEP-256', enc: 'A256GCM', kid: encryptionJwk.kid, cty: 'JWT' })
      .encrypt(await importJWK(encryptionJwk, 'RSA-OAEP-256'))
    const dpop = oauth.DPoP(client, await dpopKeys())
    const pushed = await withNonceRetry(async () =>
      oauth.processPushedAuthorizationResponse(
        as,
        client,
        await oauth.pushedAuthorizationRequest(as, client, auth, { request: encrypted }, { ...t.options, DPoP: dpop }),
      ),
    )
    const start = new URL(as.authorization_endpoint!)
    start.search = new URLSearchParams({ client_id: client.client_id, request_uri: pushed.request_uri }).toString()
    const browsed = await browser.browse(start.href, { stopAt: REDIRECT_URI })
    const callback = oauth.validateAuthResponse(as, client, browsed.url, state)
    assert.ok(callback.get('code'))
  })
})
