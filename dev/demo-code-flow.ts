// The demo's authorization-code flow through the façade (issue 14): partner-a pushes its request (PAR, PKCE S256,
// private_key_jwt, a DPoP proof that binds the code to its key); a scripted browser goes through the gateway's
// authorization endpoint to the legacy server's own login and consent pages and back through the gateway's
// callback; the code becomes a DPoP-bound token that reaches the upstream. Then the attacks on that flow.
import { createHash, randomBytes } from 'node:crypto'
import type { FacadeEnvironment } from './facade-environment.ts'
import { createUserAgent } from './user-agent.ts'
import { accessTokenOf, type FacadePartner } from './demo-facade-partner.ts'
import { flowError, type DemoScenario } from './demo-scenario.ts'
import { OAUTH_METADATA_PATH } from '../src/authorization-server/metadata.ts'
import type { DpopKey, PartnerResponse } from '../src/client/partner-client.ts'

const REDIRECT_URI = 'https://partner-a.example/callback'

export interface CodeFlowScenarios {
  /** PAR → authorize → legacy login → callback → code → DPoP-bound token → resource request. */
  readonly wholeFlow: DemoScenario
  /** The whole flow's token with a DPoP key other than the one it is bound to. */
  readonly anotherKey: DemoScenario
  /** The whole flow's code redeemed a second time. */
  readonly codeReplay: DemoScenario
  /** A new flow's code redeemed with a PKCE verifier other than the one of its challenge. */
  readonly wrongVerifier: DemoScenario
  /** partner-a's request_uri at the authorization endpoint with partner-b's client_id. */
  readonly anotherClientsRequestUri: DemoScenario
  /** The refresh token the whole flow obtained, once it ran. */
  refreshToken(): string | undefined
  close(): Promise<void>
}

interface Redeemable {
  readonly code: string
  readonly verifier: string
}

/** What a scenario shows when a step before it did not give what it needs. */
function notReached(why: string): PartnerResponse {
  return { status: 0, headers: {}, body: '', json: { error: why } }
}

const newVerifier = () => randomBytes(32).toString('base64url')

export async function buildCodeFlowScenarios(
  facade: FacadeEnvironment,
  partner: FacadePartner,
  partnerKey: DpopKey,
  imposterKey: DpopKey,
): Promise<CodeFlowScenarios> {
  const metadata = await partner.gateway.send('GET', OAUTH_METADATA_PATH, [])
  const parEndpoint = metadata.json?.pushed_authorization_request_endpoint
  const authorizationEndpoint = metadata.json?.authorization_endpoint
  if (typeof parEndpoint !== 'string' || typeof authorizationEndpoint !== 'string')
    throw new Error('the gateway publishes no authorization-code front channel (legacy.authorizationEndpoint unset)')
  const browser = createUserAgent({ caPem: facade.pki.root.certPem })
  const authorizeUrl = (clientId: string, requestUri: string) => {
    const url = new URL(authorizationEndpoint)
    url.search = new URLSearchParams({ client_id: clientId, request_uri: requestUri }).toString()
    return url
  }

  /** PAR: the request, with the PKCE challenge of a new verifier and the partner's own state. */
  const push = async () => {
    const verifier = newVerifier()
    const state = randomBytes(16).toString('base64url')
    const answer = await partner.post(
      parEndpoint,
      {
        response_type: 'code',
        redirect_uri: REDIRECT_URI,
        scope: 'accounts:read',
        code_challenge: createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256',
        state,
      },
      partnerKey,
    )
    const requestUri = answer.status === 201 && typeof answer.json?.request_uri === 'string' ? answer.json.request_uri : undefined
    return { answer, requestUri, verifier, state }
  }
  /** PAR, then the browser from the gateway's authorization endpoint through the legacy login back to the redirect URI. */
  const authorize = async (): Promise<Redeemable | PartnerResponse> => {
    const { answer, requestUri, verifier, state } = await push()
    if (requestUri === undefined) return answer
    const browsed = await browser.browse(authorizeUrl(facade.partnerA.clientId, requestUri).href, { stopAt: REDIRECT_URI })
    if (browsed.page) return { status: browsed.page.status, headers: browsed.page.headers, body: browsed.page.text, json: undefined }
    const callback = browsed.url.searchParams
    const code = callback.get('code')
    // RFC 9207: a code only from the issuer the partner asked, and only for its own request (its state).
    if (callback.get('iss') !== facade.issuer || callback.get('state') !== state || code === null)
      return notReached(callback.get('error') ?? 'iss or state not as sent')
    return { code, verifier }
  }
  const redeem = ({ code, verifier }: Redeemable) =>
    partner.post(facade.tokenEndpoint, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier }, partnerKey)

  let first: Redeemable | undefined
  let issued: string | undefined
  let refreshToken: string | undefined
  return {
    wholeFlow: {
      name: 'code flow through legacy login, used',
      expectStatus: 200,
      expectError: undefined,
      errorOf: flowError,
      run: async () => {
        const authorized = await authorize()
        if ('status' in authorized) return authorized
        first = authorized
        const tokens = await redeem(authorized)
        issued = accessTokenOf(tokens)
        refreshToken = typeof tokens.json?.refresh_token === 'string' ? tokens.json.refresh_token : undefined
        return issued ? partner.useToken(issued, partnerKey) : tokens
      },
    },
    anotherKey: {
      name: 'code-flow token, another DPoP key',
      expectStatus: 401,
      expectError: 'invalid_token',
      errorOf: flowError,
      run: async () => (issued ? partner.useToken(issued, imposterKey) : notReached('no token from the flow')),
    },
    codeReplay: {
      name: 'authorization code used twice',
      expectStatus: 400,
      expectError: 'invalid_grant',
      errorOf: flowError,
      run: async () => (first ? redeem(first) : notReached('no code from the flow')),
    },
    wrongVerifier: {
      name: 'wrong PKCE code_verifier',
      expectStatus: 400,
      expectError: 'invalid_grant',
      errorOf: flowError,
      run: async () => {
        const authorized = await authorize()
        return 'status' in authorized ? authorized : redeem({ code: authorized.code, verifier: newVerifier() })
      },
    },
    anotherClientsRequestUri: {
      name: "another client's request_uri",
      expectStatus: 400,
      expectError: 'invalid_request_uri',
      errorOf: flowError,
      run: async () => {
        const { answer, requestUri } = await push()
        if (requestUri === undefined) return answer
        // partner-b's client_id with partner-a's request_uri: an error page at the gateway, never a redirect.
        const url = authorizeUrl(facade.partnerB.clientId, requestUri)
        return partner.gateway.send('GET', url.pathname + url.search, [])
      },
    },
    refreshToken: () => refreshToken,
    close: () => browser.close(),
  }
}
