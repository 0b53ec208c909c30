// The redirect back to the partner once its redirect URI is trusted (it is the pushed one): the code
// or an RFC 6749 §4.1.2.1 error, the partner's own state, and `iss` = the gateway's issuer (RFC 9207).
import type { OAuthError } from '../errors.ts'
import { errorPage, type BrowserAnswer } from './browser-answer.ts'
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

/** The URL with parameters added to its query; the query it already had is kept byte for byte (RFC 6749 §3.1.2). */
export function withParameters(target: string, parameters: Record<string, string | undefined>): string {
  const url = new URL(target)
  const added = new URLSearchParams()
  for (const [name, value] of Object.entries(parameters)) if (value !== undefined) added.append(name, value)
  const own = url.search.slice(1)
  url.search = own === '' ? added.toString() : `${own}&${added.toString()}`
  return url.href
}

export function redirectWithCode(pushed: PushedRequest, issuer: string, code: string): BrowserAnswer {
  return { kind: 'redirect', location: withParameters(pushed.redirectUri, { code, state: pushed.state, iss: issuer }) }
}

/** The gateway's own refusal, sent to the partner; its description stays with the gateway. */
export function redirectWithRefusal(pushed: PushedRequest, issuer: string, refusal: OAuthError): BrowserAnswer {
  const error = GATEWAY_ERRORS.has(refusal.error) ? refusal.error : 'server_error'
  try {
    return { kind: 'redirect', location: withParameters(pushed.redirectUri, { error, state: pushed.state, iss: issuer }), refusal }
  } catch {
    // A stored redirect URI that is no URL (the PAR endpoint checks them): nowhere to redirect to.
    return errorPage(refusal)
  }
}

/** The legacy server's error, passed on when it is one of RFC 6749 §4.1.2.1, else server_error; never its description. */
export function redirectWithLegacyError(pushed: PushedRequest, issuer: string, legacyError: string): BrowserAnswer {
  const error = RFC6749_ERRORS.has(legacyError) ? legacyError : 'server_error'
  return { kind: 'redirect', location: withParameters(pushed.redirectUri, { error, state: pushed.state, iss: issuer }), passedOn: error }
}
