// The authorization endpoint (issue 14, FAPI 2.0 SP §5.3.2.2, RFC 9126 §4): the browser brings only
// client_id and a request_uri of that client; everything else it brings is ignored (SP §5.3.3.2-6).
// The customer is sent to the legacy server's own login and consent pages with the pushed parameters,
// the gateway's callback, the gateway's own state and, where the legacy server takes PKCE, the
// gateway's own PKCE pair. The request is not marked used here: a reload before the customer has
// authenticated must work (SP §5.3.2.2 note 3); the callback marks it.
import type { TokenRequestFacts } from '../token-endpoint.ts'
import { OAuthError, oauthRefuse } from '../errors.ts'
import type { GatewayKeySource } from '../keys/key-source.ts'
import { REQUEST_URI_PREFIX, requestRefOf } from './par-endpoint.ts'
import type { PartnerRegistry } from '../partners.ts'
import { asOAuthError, errorPage, fromState, type BrowserAnswer, type BrowserRequest } from './browser-answer.ts'
import { redirectWithRefusal, withParameters } from './authorization-response.ts'
import { currentSigner, jarmUnavailable } from './jarm.ts'
import { newPkcePair, newSecret } from './secrets.ts'
import type { FrontChannelState, PushedRequest } from './state.ts'

/** RFC 9126 §2.2. The PAR endpoint's module exports the same prefix; one of the two goes once both are in. */

const MAX_CLIENT_ID_LENGTH = 255
const MAX_REQUEST_REF_LENGTH = 256

export interface AuthorizationEndpointSettings {
  readonly issuer: string
  /** The gateway's callback, registered at the legacy server as every legacy client's redirect URI. */
  readonly callbackUrl: string
  readonly legacyAuthorizationEndpoint: string
  readonly legacyPkce: boolean
  readonly sessionLifetimeSeconds: number
  readonly openid: boolean
}

export interface AuthorizationEndpointDeps {
  readonly partners: PartnerRegistry
  readonly state: FrontChannelState
  /** The gateway's own keys; a JARM request goes to the legacy server only while the gateway can sign its response. */
  readonly keys?: GatewayKeySource | undefined
}

/** Exactly one value of a parameter; none or several is malformed. */
function single(query: URLSearchParams, name: string, maxLength: number): string {
  const values = query.getAll(name)
  if (values.length !== 1 || values[0] === '')
    throw new OAuthError('AS_REQUEST_MALFORMED', { detail: `${name}: ${values.length === 0 ? 'missing' : 'empty or repeated'}` })
  if (values[0]!.length > maxLength) throw new OAuthError('AS_REQUEST_MALFORMED', { detail: `${name}: too long` })
  return values[0]!
}

function pushedRef(requestUri: string): string {
  return requestRefOf(requestUri) ?? oauthRefuse('AS_REQUEST_URI_INVALID', 'request_uri: not one the gateway issued')
}

/** The pushed request behind the request_uri, when it is this client's and still valid; an error page otherwise. */
async function pushedRequestOf(request: BrowserRequest, deps: AuthorizationEndpointDeps): Promise<{ ref: string; pushed: PushedRequest }> {
  const clientId = single(request.query, 'client_id', MAX_CLIENT_ID_LENGTH)
  const ref = pushedRef(single(request.query, 'request_uri', REQUEST_URI_PREFIX.length + MAX_REQUEST_REF_LENGTH))
  const pushed = await fromState(deps.state.readRequest(ref), 'request_uri: the pushed request could not be read')
  if (pushed === undefined) throw new OAuthError('AS_REQUEST_URI_INVALID', { detail: 'request_uri: unknown' })
  if (pushed.expiresAt < request.nowMs) throw new OAuthError('AS_REQUEST_URI_INVALID', { detail: 'request_uri: expired' })
  // RFC 9126 §4: bound to the client that pushed it (OIDF PAREnsureRequestUriIsBoundToClient).
  if (pushed.clientId !== clientId) throw new OAuthError('AS_REQUEST_URI_INVALID', { detail: 'request_uri: pushed by another client' })
  if (deps.partners.get(clientId) === undefined) throw new OAuthError('AS_REQUEST_URI_INVALID', { detail: 'client_id: no longer registered' })
  // RFC 9126 §7.3: once an authorization with it completed, the customer is not sent to log in again for nothing
  // (the callback's claim stays the rule; this only answers sooner).
  if (await fromState(deps.state.isRequestUsed(ref), 'request_uri: could not be read')) {
    throw new OAuthError('AS_REQUEST_URI_INVALID', { detail: 'request_uri: already used' })
  }
  return { ref, pushed }
}

async function sendToLegacyServer(
  ref: string,
  pushed: PushedRequest,
  request: BrowserRequest,
  settings: AuthorizationEndpointSettings,
  deps: AuthorizationEndpointDeps,
): Promise<BrowserAnswer> {
  // The signing key went away since PAR (a reload): the customer is not sent to log in for a response that cannot be signed.
  if (pushed.responseMode === 'jwt' && currentSigner(deps.keys, request.nowMs) === undefined) throw jarmUnavailable()
  const partner = deps.partners.get(pushed.clientId)!
  const state = newSecret()
  const pkce = settings.legacyPkce ? newPkcePair() : undefined
  const sessionMs = settings.sessionLifetimeSeconds * 1000
  // The callback reads the pushed request when the customer comes back, which may be after the request_uri expired:
  // it is kept as long as the session (its expiresAt, which governs the request_uri, stays as it was).
  const keepMs = Math.max(sessionMs, pushed.expiresAt - request.nowMs)
  await fromState(deps.state.pushRequest(ref, pushed, keepMs), 'request_uri: the pushed request could not be kept')
  const session = { requestRef: ref, clientId: pushed.clientId, legacyCodeVerifier: pkce?.verifier, expiresAt: request.nowMs + sessionMs }
  await fromState(deps.state.startSession(state, session, sessionMs), 'state: the session could not be stored')
  const location = withParameters(settings.legacyAuthorizationEndpoint, {
    response_type: 'code',
    client_id: partner.legacy.clientId,
    redirect_uri: settings.callbackUrl,
    scope: pushed.scope,
    state,
    code_challenge: pkce?.challenge,
    code_challenge_method: pkce && 'S256',
    nonce: settings.openid ? pushed.nonce : undefined,
  })
  return { kind: 'redirect', location }
}

export async function answerAuthorizationRequest(
  request: BrowserRequest,
  settings: AuthorizationEndpointSettings,
  deps: AuthorizationEndpointDeps,
  facts: TokenRequestFacts,
): Promise<BrowserAnswer> {
  if (request.method !== 'GET' && request.method !== 'POST')
    return errorPage(new OAuthError('AS_METHOD_NOT_ALLOWED', { detail: `method: ${request.method.slice(0, 16)}` }), 'GET, POST')
  let found: { ref: string; pushed: PushedRequest }
  try {
    found = await pushedRequestOf(request, deps)
  } catch (error) {
    // No redirect URI is trusted yet: never a redirect (no open redirector).
    return errorPage(asOAuthError(error, 'authorization endpoint: request handling failed'))
  }
  facts.clientId = found.pushed.clientId
  try {
    return await sendToLegacyServer(found.ref, found.pushed, request, settings, deps)
  } catch (error) {
    // The pushed redirect URI was checked at PAR: from here on, errors go back to the partner.
    const context = { issuer: settings.issuer, keys: deps.keys, nowMs: request.nowMs }
    return redirectWithRefusal(found.pushed, context, asOAuthError(error, 'authorization endpoint: redirect failed'))
  }
}
