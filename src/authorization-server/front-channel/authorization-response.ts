// The redirect back to the partner once its redirect URI is trusted (it is the pushed one): the code
// or an RFC 6749 §4.1.2.1 error and the partner's own state, with `iss` = the gateway's issuer
// (RFC 9207) in the query, or, when the partner asked for JARM (response_mode=jwt), all of it in one
// JWT signed by the gateway (`?response=`, JARM §2.3.4), which then carries `iss` itself.
import { OAuthError } from '../errors.ts'
import type { GatewayKeySource } from '../keys/key-source.ts'
import { errorPage, type BrowserAnswer } from './browser-answer.ts'
import { signAuthorizationResponse, type ResponseParameters } from './jarm.ts'
import type { PushedRequest } from './state.ts'

/** RFC 6749 §4.1.2.1: the errors an authorization response carries, and so the only legacy errors passed on. */
const RFC6749_ERRORS: ReadonlySet<string> = new Set([
  'invalid_request',
  'unauthorized_client',
  'access_denied',
  'unsupported_response_type',
  'invalid_scope',
  'server_error',
  'temporarily_unavailable',
])

/** The gateway's own refusals may also be RFC 9101 §7's request errors. */
const GATEWAY_ERRORS: ReadonlySet<string> = new Set([...RFC6749_ERRORS, 'invalid_request_uri', 'invalid_request_object'])

/** What every authorization response is made with. */
export interface ResponseContext {
  readonly issuer: string
  /** The gateway's own keys: JARM responses are signed with the current signing key. */
  readonly keys: GatewayKeySource | undefined
  readonly nowMs: number
}

/** The URL with parameters added to its query; the query it already had is kept byte for byte (RFC 6749 §3.1.2). */
export function withParameters(target: string, parameters: Record<string, string | undefined>): string {
  const url = new URL(target)
  const added = new URLSearchParams()
  for (const [name, value] of Object.entries(parameters)) if (value !== undefined) added.append(name, value)
  const own = url.search.slice(1)
  url.search = own === '' ? added.toString() : `${own}&${added.toString()}`
  return url.href
}

/** The partner's redirect URI with the response: in its query with iss, or as one signed JWT. */
async function responseLocation(pushed: PushedRequest, context: ResponseContext, parameters: ResponseParameters): Promise<string> {
  if (pushed.responseMode !== 'jwt') return withParameters(pushed.redirectUri, { ...parameters, state: pushed.state, iss: context.issuer })
  const response = await signAuthorizationResponse(context.keys, {
    issuer: context.issuer,
    clientId: pushed.clientId,
    nowMs: context.nowMs,
    parameters: { ...parameters, state: pushed.state },
  })
  return withParameters(pushed.redirectUri, { response })
}

/** Throws when the response cannot be made (a JARM response that cannot be signed); the caller then refuses. */
export async function redirectWithCode(pushed: PushedRequest, context: ResponseContext, code: string): Promise<BrowserAnswer> {
  return { kind: 'redirect', location: await responseLocation(pushed, context, { code }) }
}

/**
 * A response the partner cannot receive in the form it asked for (a stored redirect URI that is no URL,
 * which the PAR endpoint checks, or a JARM response that cannot be signed) ends on an error page instead:
 * never a plain response to a partner that asked for a signed one. The page shows why it could not be
 * sent when the gateway knows (a signing failure), else the refusal it was meant to carry.
 */
async function redirectOrPage(
  pushed: PushedRequest,
  context: ResponseContext,
  parameters: ResponseParameters,
  outcome: { readonly refusal: OAuthError } | { readonly passedOn: string },
): Promise<BrowserAnswer> {
  let location: string
  try {
    location = await responseLocation(pushed, context, parameters)
  } catch (error) {
    if (error instanceof OAuthError) return errorPage(error)
    if ('refusal' in outcome) return errorPage(outcome.refusal)
    return errorPage(new OAuthError('AS_INTERNAL', { detail: 'redirect_uri: the stored one is no URL', rule: 'redirect_uri', cause: error }))
  }
  return { kind: 'redirect', location, ...outcome }
}

/** The gateway's own refusal, sent to the partner; its description stays with the gateway. */
export async function redirectWithRefusal(pushed: PushedRequest, context: ResponseContext, refusal: OAuthError): Promise<BrowserAnswer> {
  const error = GATEWAY_ERRORS.has(refusal.error) ? refusal.error : 'server_error'
  return redirectOrPage(pushed, context, { error }, { refusal })
}

/** The legacy server's error, passed on when it is one of RFC 6749 §4.1.2.1, else server_error; never its description. */
export async function redirectWithLegacyError(pushed: PushedRequest, context: ResponseContext, legacyError: string): Promise<BrowserAnswer> {
  const error = RFC6749_ERRORS.has(legacyError) ? legacyError : 'server_error'
  return redirectOrPage(pushed, context, { error }, { passedOn: error })
}
