// The only place a refusal becomes an HTTP answer: status, WWW-Authenticate
// (RFC 6750 §3, RFC 9449 §7.1), a small JSON body, and nothing internal.
import { randomUUID } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import { catalogue, type ErrorCode } from './errors.ts'
import { oauthCatalogue, type OAuthError } from './authorization-server/errors.ts'
import type { AuthScheme } from './types.ts'

export interface ChallengeContext {
  /** The scheme the client used, when the Authorization header could be read. */
  readonly presentedScheme: AuthScheme | undefined
  /** Schemes the route accepts; both when no route matched. */
  readonly acceptsDpop: boolean
  readonly acceptsBearer: boolean
  /** Required scopes, for insufficient_scope. */
  readonly scopes: readonly string[]
  /** RFC 9449 §7.1 `algs`. */
  readonly dpopAlgs: readonly string[]
}

function quote(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`
}

function challenge(scheme: AuthScheme, params: [string, string][]): string {
  return params.length === 0 ? scheme : `${scheme} ${params.map(([k, v]) => `${k}=${quote(v)}`).join(', ')}`
}

export function wwwAuthenticate(code: ErrorCode, context: ChallengeContext): string[] {
  const spec = catalogue[code]
  if (spec.challenge === 'none') return []
  const error: [string, string][] =
    'error' in spec
      ? [
          ['error', spec.error],
          ['error_description', spec.description],
        ]
      : []
  if (code === 'GW_SCOPE_INSUFFICIENT' && context.scopes.length > 0) error.push(['scope', context.scopes.join(' ')])
  const algs: [string, string] = ['algs', context.dpopAlgs.join(' ')]

  // Which challenge carries the error: the scheme the client used; for proof errors DPoP;
  // when the client's scheme is unknown, every scheme the route accepts (RFC 9449 §7.2).
  const carriesError = (scheme: AuthScheme) =>
    spec.challenge === 'dpop' ? scheme === 'DPoP' : context.presentedScheme === undefined || context.presentedScheme === scheme

  const challenges: string[] = []
  if (context.acceptsDpop || spec.challenge === 'dpop' || context.presentedScheme === 'DPoP') {
    challenges.push(challenge('DPoP', carriesError('DPoP') ? [...error, algs] : [algs]))
  }
  if (context.acceptsBearer || context.presentedScheme === 'Bearer') {
    challenges.push(challenge('Bearer', carriesError('Bearer') ? error : []))
  }
  return challenges
}

export interface RefusalBody {
  readonly error: string
  readonly error_description: string
  readonly code: ErrorCode
  readonly interaction_id: string
}

const STATUS_ERRORS: Record<number, string> = {
  400: 'invalid_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  408: 'request_timeout',
  413: 'request_too_large',
  415: 'unsupported_media_type',
  429: 'too_many_requests',
  431: 'request_header_fields_too_large',
  499: 'client_closed',
  500: 'server_error',
  502: 'bad_gateway',
  503: 'temporarily_unavailable',
  504: 'gateway_timeout',
}

export function refusalBody(code: ErrorCode, interactionId: string): RefusalBody {
  const spec = catalogue[code]
  return {
    error: 'error' in spec ? spec.error : (STATUS_ERRORS[spec.status] ?? 'server_error'),
    error_description: spec.description,
    code,
    interaction_id: interactionId,
  }
}

export function sendRefusal(res: ServerResponse, code: ErrorCode, context: ChallengeContext, extraHeaders: Record<string, string>): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const spec = catalogue[code]
  const body = JSON.stringify(refusalBody(code, extraHeaders['x-fapi-interaction-id'] ?? ''))
  const challenges = wwwAuthenticate(code, context)
  res.statusCode = spec.status
  if (challenges.length > 0) res.setHeader('www-authenticate', challenges)
  res.setHeader('content-type', 'application/json')
  res.setHeader('cache-control', 'no-store')
  res.setHeader('content-length', Buffer.byteLength(body))
  for (const [name, value] of Object.entries(extraHeaders)) res.setHeader(name, value)
  if (spec.status === 408 || spec.status === 413 || spec.status === 431) res.setHeader('connection', 'close')
  // The introspection bounds free up within a call's time to the issuer (RFC 9110 §10.2.3).
  if (code === 'GW_INTROSPECTION_THROTTLED' || code === 'GW_INTROSPECTION_BUSY') res.setHeader('retry-after', '1')
  res.end(body)
}

const REASON_PHRASES: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 413: 'Content Too Large', 431: 'Request Header Fields Too Large' }

/**
 * The same answer as bytes, for a request Node could not parse (there is no ServerResponse to
 * write it to): always closes the connection, since the rest of the stream cannot be trusted.
 */
export function rawRefusal(code: ErrorCode, nowMs: number): { readonly bytes: string; readonly interactionId: string } {
  const interactionId = randomUUID()
  const { status } = catalogue[code]
  const body = JSON.stringify(refusalBody(code, interactionId))
  const head = [
    `HTTP/1.1 ${status} ${REASON_PHRASES[status] ?? 'Bad Request'}`,
    `Date: ${new Date(nowMs).toUTCString()}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Cache-Control: no-store',
    `X-Fapi-Interaction-Id: ${interactionId}`,
    'Connection: close',
  ]
  return { bytes: `${head.join('\r\n')}\r\n\r\n${body}`, interactionId }
}

/**
 * The authorization-server façade's refusal, in the form of RFC 6749 §5.2: a JSON body with
 * `error` and `error_description`, and a challenge only for a client that authenticated with an
 * Authorization header (`scheme`), which RFC 6749 §5.2 requires to be answered in its scheme.
 */
export function sendOAuthRefusal(res: ServerResponse, error: OAuthError, extraHeaders: Record<string, string>, scheme: string | undefined): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const spec = oauthCatalogue[error.code]
  const body = JSON.stringify({
    error: error.error,
    error_description: spec.description,
    code: error.code,
    interaction_id: extraHeaders['x-fapi-interaction-id'] ?? '',
  })
  res.statusCode = spec.status
  if (spec.status === 401 && scheme !== undefined) res.setHeader('www-authenticate', `${scheme} error="${spec.error}", error_description="${spec.description}"`)
  if (error.code === 'AS_METHOD_NOT_ALLOWED') res.setHeader('allow', 'POST')
  if (error.code === 'AS_RATE_LIMITED' || error.code === 'AS_LEGACY_UNAVAILABLE' || error.code === 'AS_STORE_UNAVAILABLE') res.setHeader('retry-after', '1')
  if (spec.status === 413) res.setHeader('connection', 'close')
  res.setHeader('content-type', 'application/json')
  res.setHeader('cache-control', 'no-store')
  res.setHeader('pragma', 'no-cache')
  res.setHeader('content-length', Buffer.byteLength(body))
  for (const [name, value] of Object.entries(extraHeaders)) res.setHeader(name, value)
  res.end(body)
}
