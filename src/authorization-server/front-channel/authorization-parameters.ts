// The authorization request a partner pushes, as FAPI 2.0 SP §5.3.2.2 narrows it: the code flow only,
// a redirect URI registered for the partner exactly, PKCE with S256, scopes registered for the partner,
// and bounded state and nonce (long values handled, A18). Every refusal names its parameter as the rule.
import { OAuthError, type OAuthErrorCode } from '../errors.ts'
import type { Partner } from '../partners.ts'
import { jarmUnavailable } from './jarm.ts'

/** The parameters read from a pushed request (or from its request object): each one a string. */
export const AUTHORIZATION_PARAMETERS: readonly string[] = [
  'response_type',
  'redirect_uri',
  'scope',
  'state',
  'nonce',
  'code_challenge',
  'code_challenge_method',
  'response_mode',
  'dpop_jkt',
]

/** state and nonce up to this length are kept and passed on (OIDC nonces of 64 characters must pass). */
export const MAX_STATE_LENGTH = 512
/** RFC 7636 §4.2: 43 to 128 characters of the unreserved set. */
const CODE_CHALLENGE = /^[A-Za-z0-9._~-]{43,128}$/
/** RFC 7638 SHA-256 thumbprint, base64url without padding. */
const JWK_THUMBPRINT = /^[A-Za-z0-9_-]{43}$/
/** Printable, without control characters; RFC 6749 Appendix A.5 restricts state to VSCHAR. */
const VISIBLE = /^[\x20-\x7e]+$/

export interface AuthorizationParameters {
  readonly redirectUri: string
  readonly scope: string | undefined
  readonly state: string | undefined
  readonly nonce: string | undefined
  readonly codeChallenge: string
  readonly dpopJkt: string | undefined
  readonly responseMode: 'jwt' | undefined
}

/** Labels with an underscore (redirect_uri: …) are not read as rules by OAuthError, so the rule is named. */
export function refuseParameter(code: OAuthErrorCode, parameter: string, problem: string): never {
  throw new OAuthError(code, { detail: `${parameter}: ${problem}`, rule: parameter })
}

function checkResponseType(params: ReadonlyMap<string, string>): void {
  const responseType = params.get('response_type')
  if (responseType === undefined || responseType === '') refuseParameter('AS_REQUEST_MALFORMED', 'response_type', 'missing')
  if (responseType !== 'code') refuseParameter('AS_RESPONSE_TYPE_UNSUPPORTED', 'response_type', 'only code')
}

function registeredRedirectUri(params: ReadonlyMap<string, string>, partner: Partner): string {
  const redirectUri = params.get('redirect_uri')
  if (redirectUri === undefined || redirectUri === '') refuseParameter('AS_REDIRECT_URI_INVALID', 'redirect_uri', 'missing')
  // RFC 9700 §4.1.3: exact string comparison, no pattern, no normalisation.
  if (!partner.config.redirectUris.includes(redirectUri)) refuseParameter('AS_REDIRECT_URI_INVALID', 'redirect_uri', 'not registered for the client')
  return redirectUri
}

function s256Challenge(params: ReadonlyMap<string, string>): string {
  const challenge = params.get('code_challenge')
  const method = params.get('code_challenge_method')
  if (challenge === undefined || challenge === '') refuseParameter('AS_PKCE_INVALID', 'code_challenge', 'missing')
  if (!CODE_CHALLENGE.test(challenge)) refuseParameter('AS_PKCE_INVALID', 'code_challenge', 'not 43 to 128 unreserved characters')
  if (method === undefined) refuseParameter('AS_PKCE_INVALID', 'code_challenge_method', 'missing (plain by default)')
  if (method !== 'S256') refuseParameter('AS_PKCE_INVALID', 'code_challenge_method', 'only S256')
  return challenge
}

function registeredScope(params: ReadonlyMap<string, string>, partner: Partner): string | undefined {
  const requested = params.get('scope')
  if (requested === undefined) return undefined
  const scopes = requested.split(' ').filter(Boolean)
  const refused = scopes.filter((scope) => !partner.scopes.has(scope))
  if (refused.length > 0) refuseParameter('AS_SCOPE_NOT_ALLOWED', 'scope', `${refused.length} scope(s) not registered for the client`)
  return scopes.length === 0 ? undefined : scopes.join(' ')
}

function boundedText(params: ReadonlyMap<string, string>, name: 'state' | 'nonce'): string | undefined {
  const value = params.get(name)
  if (value === undefined) return undefined
  if (value.length > MAX_STATE_LENGTH) refuseParameter('AS_REQUEST_MALFORMED', name, `longer than ${MAX_STATE_LENGTH} characters`)
  if (!VISIBLE.test(value)) refuseParameter('AS_REQUEST_MALFORMED', name, 'empty or not printable ASCII')
  return value
}

/** JARM §2.3.4: for the code flow, `jwt` means `query.jwt`. */
function responseModeOf(params: ReadonlyMap<string, string>, jarm: boolean): 'jwt' | undefined {
  const mode = params.get('response_mode')
  if (mode === undefined || mode === 'query') return undefined
  if (mode === 'jwt' || mode === 'query.jwt') {
    // JARM (FAPI 2.0 Message Signing) needs a signing key of the gateway's own: without one, refused here, before any login.
    if (!jarm) throw jarmUnavailable()
    return 'jwt'
  }
  return refuseParameter('AS_REQUEST_MALFORMED', 'response_mode', jarm ? 'only query, jwt or query.jwt' : 'only query')
}

function dpopJktOf(params: ReadonlyMap<string, string>): string | undefined {
  const jkt = params.get('dpop_jkt')
  if (jkt === undefined) return undefined
  if (!JWK_THUMBPRINT.test(jkt)) refuseParameter('AS_REQUEST_MALFORMED', 'dpop_jkt', 'not a SHA-256 JWK thumbprint')
  return jkt
}

export interface AuthorizationParameterOptions {
  /** The gateway can sign authorization responses now: response_mode=jwt (JARM) is accepted. */
  readonly jarm: boolean
}

/** Throws OAuthError for the first parameter that breaks a rule. */
export function checkAuthorizationParameters(
  params: ReadonlyMap<string, string>,
  partner: Partner,
  options: AuthorizationParameterOptions = { jarm: false },
): AuthorizationParameters {
  checkResponseType(params)
  return {
    redirectUri: registeredRedirectUri(params, partner),
    codeChallenge: s256Challenge(params),
    scope: registeredScope(params, partner),
    state: boundedText(params, 'state'),
    nonce: boundedText(params, 'nonce'),
    responseMode: responseModeOf(params, options.jarm),
    dpopJkt: dpopJktOf(params),
  }
}
