// What the front channel answers a browser: a 303 redirect (FAPI 2.0 SP §5.3.2.2-10/-11: never 307,
// which would repost a form) or a plain error page when no redirect URI can be trusted (RFC 6749
// §4.1.2.1: no open redirector). No CORS header ever (SP §5.2.3-3), nothing cached, no referrer,
// nothing from the request on the page.
import type { ServerResponse } from 'node:http'
import { OAuthError, oauthCatalogue } from '../errors.ts'

export interface BrowserRequest {
  readonly method: string
  /** The query; for a POST to the authorization endpoint, its form. */
  readonly query: URLSearchParams
  readonly nowMs: number
}

export type BrowserAnswer =
  | {
      readonly kind: 'redirect'
      readonly location: string
      /** The gateway's own refusal, sent to the partner's redirect URI as `error` (for metrics and security events). */
      readonly refusal?: OAuthError
      /** The legacy server's `error`, passed on to the partner (an outcome such as access_denied, not a gateway refusal). */
      readonly passedOn?: string
    }
  | {
      readonly kind: 'error-page'
      readonly error: OAuthError
      /** The methods the endpoint takes, for a 405. */
      readonly allow?: string
    }

export function errorPage(error: OAuthError, allow?: string): BrowserAnswer {
  return allow === undefined ? { kind: 'error-page', error } : { kind: 'error-page', error, allow }
}

/** Any failure as an OAuthError: the store's failures are AS_STORE_UNAVAILABLE, anything unexpected AS_INTERNAL. */
export function asOAuthError(error: unknown, detail: string): OAuthError {
  if (error instanceof OAuthError) return error
  return new OAuthError('AS_INTERNAL', { detail, cause: error })
}

/** Runs a call on the front channel's state; its failure is AS_STORE_UNAVAILABLE (fail closed). */
export async function fromState<T>(call: Promise<T>, detail: string): Promise<T> {
  try {
    return await call
  } catch (error) {
    throw new OAuthError('AS_STORE_UNAVAILABLE', { detail, cause: error })
  }
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!)
}

function headerValue(headers: Record<string, string>, name: string): string | undefined {
  return Object.entries(headers).find(([key]) => key.toLowerCase() === name)?.[1]
}

function errorPageHtml(error: OAuthError, interactionId: string | undefined): string {
  const lines = [
    '<!doctype html>',
    '<html lang="en">',
    '<head><meta charset="utf-8"><title>Authorization failed</title></head>',
    '<body>',
    '<h1>This authorization cannot be completed</h1>',
    `<p>Error: <code>${escapeHtml(error.error)}</code> (<code>${escapeHtml(error.code)}</code>)</p>`,
    ...(interactionId === undefined ? [] : [`<p>Interaction id: <code>${escapeHtml(interactionId)}</code></p>`]),
    '<p>Return to the application you came from and start again.</p>',
    '</body>',
    '</html>',
    '',
  ]
  return lines.join('\n')
}

/** Sends the answer with the caller's headers (x-fapi-interaction-id, …); never an Access-Control-* header. */
export function writeBrowserAnswer(res: ServerResponse, answer: BrowserAnswer, headers: Record<string, string>): void {
  for (const [name, value] of Object.entries(headers)) if (!name.toLowerCase().startsWith('access-control-')) res.setHeader(name, value)
  res.setHeader('cache-control', 'no-store')
  res.setHeader('pragma', 'no-cache')
  res.setHeader('referrer-policy', 'no-referrer')
  // FAPI 2.0 SP §5.2.3-2: no TLS stripping on the browser's way (preloading is the deployment's step).
  res.setHeader('strict-transport-security', 'max-age=31536000')
  if (answer.kind === 'redirect') {
    res.statusCode = 303
    res.setHeader('location', answer.location)
    res.setHeader('content-length', 0)
    res.end()
    return
  }
  const body = errorPageHtml(answer.error, headerValue(headers, 'x-fapi-interaction-id'))
  res.statusCode = oauthCatalogue[answer.error.code].status
  if (answer.allow !== undefined) res.setHeader('allow', answer.allow)
  res.setHeader('content-type', 'text/html; charset=utf-8')
  res.setHeader('content-security-policy', "default-src 'none'; frame-ancestors 'none'")
  res.setHeader('x-frame-options', 'DENY')
  res.setHeader('x-content-type-options', 'nosniff')
  res.setHeader('content-length', Buffer.byteLength(body))
  res.end(body)
}
