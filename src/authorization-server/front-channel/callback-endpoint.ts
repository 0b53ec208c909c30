// The callback (issue 14): the legacy server sends the browser back here. The answer is matched to a
// request in progress by the gateway's own state before anything else is read; an unknown or used
// state ends there and its legacy code is never redeemed. The pushed request is then marked used (the
// point of authorization, RFC 9126 §7.3), and the partner gets a code of the gateway's own that stands
// for the legacy code, with its state and `iss` (RFC 9207), or the legacy server's error; as a JWT
// signed by the gateway when the partner asked for JARM.
import type { TokenRequestFacts } from '../token-endpoint.ts'
import { OAuthError } from '../errors.ts'
import type { GatewayKeySource } from '../keys/key-source.ts'
import { asOAuthError, errorPage, fromState, type BrowserAnswer, type BrowserRequest } from './browser-answer.ts'
import { redirectWithCode, redirectWithLegacyError, redirectWithRefusal, type ResponseContext } from './authorization-response.ts'
import { currentSigner, jarmUnavailable } from './jarm.ts'
import { newSecret, SECRET_SHAPE } from './secrets.ts'
import type { AuthorizationSession, FrontChannelState, PushedRequest } from './state.ts'

/** RFC 6749 §A.11: a code is visible ASCII; longer than this is no code a legacy server issues. */
const LEGACY_CODE = /^[\x20-\x7e]{1,2048}$/

/** The configuration's largest authorizationCode.sessionLifetimeSeconds. */
const MAX_SESSION_LIFETIME_SECONDS = 3600

export interface CallbackSettings {
  readonly issuer: string
  /** FAPI 2.0 SP §5.3.2.1-11: at most 60. */
  readonly codeLifetimeSeconds: number
  /** authorizationCode.sessionLifetimeSeconds: how long a pushed request's "used" mark must outlive it. Default its maximum, 3600. */
  readonly sessionLifetimeSeconds?: number
}

export interface CallbackDeps {
  readonly state: FrontChannelState
  /** The gateway's own keys; without a signing key among them, JARM responses cannot be sent. */
  readonly keys?: GatewayKeySource | undefined
}

function responseContext(request: BrowserRequest, settings: CallbackSettings, deps: CallbackDeps): ResponseContext {
  return { issuer: settings.issuer, keys: deps.keys, nowMs: request.nowMs }
}

/** The session the gateway's state stands for, taken once; an error page otherwise (no redirect URI is trusted yet). */
async function sessionOf(request: BrowserRequest, deps: CallbackDeps): Promise<AuthorizationSession> {
  const states = request.query.getAll('state')
  // A state of another shape was never the gateway's: no store lookup for it.
  if (states.length !== 1 || !SECRET_SHAPE.test(states[0]!))
    throw new OAuthError('AS_AUTHORIZATION_STATE_INVALID', { detail: `state: ${states.length === 0 ? 'missing' : 'not the gateway’s'}` })
  const session = await fromState(deps.state.takeSession(states[0]!), 'state: the session could not be read')
  if (session === undefined) throw new OAuthError('AS_AUTHORIZATION_STATE_INVALID', { detail: 'state: unknown or already used' })
  if (session.expiresAt < request.nowMs) throw new OAuthError('AS_AUTHORIZATION_STATE_INVALID', { detail: 'state: session expired' })
  return session
}

async function pushedRequestOf(session: AuthorizationSession, deps: CallbackDeps): Promise<PushedRequest> {
  const pushed = await fromState(deps.state.readRequest(session.requestRef), 'request_uri: the pushed request could not be read')
  if (pushed === undefined) throw new OAuthError('AS_REQUEST_URI_INVALID', { detail: 'request_uri: gone before the authorization completed' })
  if (pushed.clientId !== session.clientId) throw new OAuthError('AS_REQUEST_URI_INVALID', { detail: 'request_uri: pushed by another client' })
  return pushed
}

/** The redirect to the partner, once its redirect URI (the pushed one) is trusted. */
async function authorizationResponse(
  request: BrowserRequest,
  session: AuthorizationSession,
  pushed: PushedRequest,
  settings: CallbackSettings,
  deps: CallbackDeps,
): Promise<BrowserAnswer> {
  const { query, nowMs } = request
  const context = responseContext(request, settings, deps)
  // Remembered for as long as any session of this request could still come back.
  const usedTtlMs = Math.max(0, pushed.expiresAt - nowMs) + (settings.sessionLifetimeSeconds ?? MAX_SESSION_LIFETIME_SECONDS) * 1000
  const first = await fromState(deps.state.useRequest(session.requestRef, usedTtlMs), 'request_uri: could not be marked used')
  // RFC 9126 §7.3: a second authorization with the same request_uri (OIDF PARAttemptReuseRequestUri expects invalid_request_uri).
  if (!first) return redirectWithRefusal(pushed, context, new OAuthError('AS_REQUEST_URI_INVALID', { detail: 'request_uri: already used' }))
  // The signing key went away since PAR (a reload): no code is issued that could not be delivered signed.
  if (pushed.responseMode === 'jwt' && currentSigner(deps.keys, nowMs) === undefined) return errorPage(jarmUnavailable())

  const errors = query.getAll('error')
  if (errors.length > 0) return redirectWithLegacyError(pushed, context, errors.length === 1 ? errors[0]! : 'server_error')
  const codes = query.getAll('code')
  if (codes.length !== 1 || !LEGACY_CODE.test(codes[0]!))
    return redirectWithRefusal(pushed, context, new OAuthError('AS_LEGACY_BAD_ANSWER', { detail: 'code: missing, repeated or malformed' }))

  const code = newSecret()
  const lifetimeMs = settings.codeLifetimeSeconds * 1000
  const issued = {
    clientId: pushed.clientId,
    redirectUri: pushed.redirectUri,
    codeChallenge: pushed.codeChallenge,
    dpopJkt: pushed.dpopJkt,
    scope: pushed.scope,
    legacyCode: codes[0]!,
    legacyCodeVerifier: session.legacyCodeVerifier,
    issuedAt: nowMs,
    expiresAt: nowMs + lifetimeMs,
  }
  await fromState(deps.state.issueCode(code, issued, lifetimeMs), 'code: could not be stored')
  return await redirectWithCode(pushed, context, code)
}

export async function answerCallback(
  request: BrowserRequest,
  settings: CallbackSettings,
  deps: CallbackDeps,
  facts: TokenRequestFacts,
): Promise<BrowserAnswer> {
  if (request.method !== 'GET') return errorPage(new OAuthError('AS_METHOD_NOT_ALLOWED', { detail: `method: ${request.method.slice(0, 16)}` }), 'GET')
  let session: AuthorizationSession
  let pushed: PushedRequest
  try {
    session = await sessionOf(request, deps)
    facts.clientId = session.clientId
    pushed = await pushedRequestOf(session, deps)
  } catch (error) {
    return errorPage(asOAuthError(error, 'callback: request handling failed'))
  }
  try {
    return await authorizationResponse(request, session, pushed, settings, deps)
  } catch (error) {
    return redirectWithRefusal(pushed, responseContext(request, settings, deps), asOAuthError(error, 'callback: response failed'))
  }
}
