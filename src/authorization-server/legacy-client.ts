// The gateway's client of the legacy OAuth 2.0 server: POSTs a form to its token (or RFC 7009 revocation)
// endpoint with the legacy client's secret, and hands back the JSON answer. Never retries: a code must be
// redeemed at most once. 2xx and 4xx JSON answers are returned for the caller to map; anything else is an
// OAuthError (AS_LEGACY_UNAVAILABLE, AS_LEGACY_TIMEOUT, AS_LEGACY_BAD_ANSWER), whose detail never holds a secret.
import { request } from 'undici'
import { createIssuerAgent, requireHttpsUrl } from '../tokens/jwks.ts'
import { OAuthError, oauthRefuse } from './errors.ts'
import type { LegacyCredentials } from './partners.ts'

export interface LegacyClientSettings {
  readonly tokenEndpoint: string
  readonly revocationEndpoint?: string
  /** Trust anchors for the legacy server's certificate; the system's when absent. */
  readonly caPem?: string
  /** The gateway's client certificate (chain) and key, for a legacy server that asks for one. */
  readonly certPem?: string
  readonly keyPem?: string
  readonly connectTimeoutMs: number
  /** For the answer's headers, and again for its body. */
  readonly timeoutMs: number
  /** Connections per legacy origin, and so the requests in flight to it. */
  readonly connections: number
}

export interface LegacyAnswer {
  readonly status: number
  readonly body: Readonly<Record<string, unknown>>
}

export interface LegacyClient {
  /**
   * POSTs the form to the legacy token endpoint with the legacy client's credentials (client_secret_basic: RFC 6749
   * §2.3.1 form-urlencoded id and secret in Basic; client_secret_post: client_id and client_secret in the form).
   */
  token(params: URLSearchParams, credentials: LegacyCredentials): Promise<LegacyAnswer>
  /** RFC 7009 revocation at the legacy server; throws AS_INTERNAL if no revocationEndpoint is configured. */
  revoke(params: URLSearchParams, credentials: LegacyCredentials): Promise<LegacyAnswer>
  close(): Promise<void>
}

/** A token answer is a few hundred bytes; a legacy server that sends more is not answering a token request. */
export const LEGACY_MAX_ANSWER_BYTES = 64 * 1024

// Form fields that carry client authentication: the legacy client's own replace whatever the caller left.
const AUTHENTICATION_FIELDS = ['client_id', 'client_secret', 'client_assertion', 'client_assertion_type']

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'])

// RFC 6749 §2.3.1: client_id and secret are form-encoded before Basic encoding.
const formEncode = (value: string) => new URLSearchParams([['', value]]).toString().slice(1)

function authenticate(params: URLSearchParams, credentials: LegacyCredentials): { form: URLSearchParams; authorization?: string } {
  const form = new URLSearchParams(params)
  for (const field of AUTHENTICATION_FIELDS) form.delete(field)
  if (credentials.authentication === 'client_secret_post') {
    form.set('client_id', credentials.clientId)
    form.set('client_secret', credentials.secret)
    return { form }
  }
  const basic = Buffer.from(`${formEncode(credentials.clientId)}:${formEncode(credentials.secret)}`).toString('base64')
  return { form, authorization: `Basic ${basic}` }
}

function errorCode(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code
    if (typeof code === 'string') return code
    return error.name
  }
  return 'unknown'
}

// The undici or TLS error in words fit for a log: its code and message, which name no header or body.
function failure(error: unknown, what: string, timeoutMs: number, closed: boolean): OAuthError {
  const code = errorCode(error)
  if (closed) return new OAuthError('AS_LEGACY_UNAVAILABLE', { detail: `closed: the legacy client is closed (${what})`, cause: error })
  if (TIMEOUT_CODES.has(code) || code === 'TimeoutError') {
    return new OAuthError('AS_LEGACY_TIMEOUT', { detail: `timeout: no answer from the ${what} within ${timeoutMs} ms (${code})`, cause: error })
  }
  if (code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') {
    return new OAuthError('AS_LEGACY_BAD_ANSWER', { detail: `answer: larger than ${LEGACY_MAX_ANSWER_BYTES} bytes from the ${what}`, cause: error })
  }
  // Refused, reset, unreachable, connect timeout (the request was never sent), TLS failure.
  const message = error instanceof Error ? error.message : String(error)
  return new OAuthError('AS_LEGACY_UNAVAILABLE', { detail: `connection: ${what} cannot be reached (${code}: ${message})`, cause: error })
}

function parseAnswer(status: number, contentType: string, text: string, what: string, emptyIsAnswer: boolean): LegacyAnswer {
  if (status >= 500) oauthRefuse('AS_LEGACY_UNAVAILABLE', `status: ${status} from the ${what}`)
  if (status < 200 || (status >= 300 && status < 400)) oauthRefuse('AS_LEGACY_BAD_ANSWER', `status: ${status} from the ${what}`)
  // RFC 7009 §2.2: a revocation endpoint answers 200 with no content.
  if (emptyIsAnswer && text.trim() === '') return { status, body: {} }
  if (!/^application\/([a-z0-9.+-]+\+)?json\s*(;|$)/i.test(contentType)) {
    oauthRefuse('AS_LEGACY_BAD_ANSWER', `answer: content-type "${contentType.slice(0, 60)}" from the ${what} is not JSON (status ${status})`)
  }
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    oauthRefuse('AS_LEGACY_BAD_ANSWER', `answer: not JSON from the ${what} (status ${status})`)
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    oauthRefuse('AS_LEGACY_BAD_ANSWER', `answer: not a JSON object from the ${what} (status ${status})`)
  return { status, body: body as Record<string, unknown> }
}

export function createLegacyClient(settings: LegacyClientSettings): LegacyClient {
  requireHttpsUrl(settings.tokenEndpoint, 'legacy token endpoint')
  if (settings.revocationEndpoint !== undefined) requireHttpsUrl(settings.revocationEndpoint, 'legacy revocation endpoint')
  if ((settings.certPem === undefined) !== (settings.keyPem === undefined)) throw new TypeError('legacy client certificate and key go together')
  // One Agent: a pool per legacy origin (token and revocation endpoints may live apart).
  const agent = createIssuerAgent({
    caPem: settings.caPem,
    clientCertificate: settings.certPem !== undefined && settings.keyPem !== undefined ? { certPem: settings.certPem, keyPem: settings.keyPem } : undefined,
    connectTimeoutMs: settings.connectTimeoutMs,
    timeoutMs: settings.timeoutMs,
    connections: settings.connections,
    maxResponseBytes: LEGACY_MAX_ANSWER_BYTES,
  })
  const closing = new AbortController()
  // Headers and body each have timeoutMs; this bounds the whole exchange, connection included.
  const deadlineMs = settings.connectTimeoutMs + 2 * settings.timeoutMs

  async function post(endpoint: string, what: string, params: URLSearchParams, credentials: LegacyCredentials, emptyIsAnswer: boolean): Promise<LegacyAnswer> {
    if (closing.signal.aborted) oauthRefuse('AS_LEGACY_UNAVAILABLE', `closed: the legacy client is closed (${what})`)
    const { form, authorization } = authenticate(params, credentials)
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }
    if (authorization) headers.authorization = authorization
    let status: number
    let contentType: string
    let text: string
    try {
      const response = await request(endpoint, {
        dispatcher: agent,
        method: 'POST',
        headers,
        body: form.toString(),
        signal: AbortSignal.any([closing.signal, AbortSignal.timeout(deadlineMs)]),
      })
      status = response.statusCode
      contentType = String(response.headers['content-type'] ?? '')
      text = await response.body.text()
    } catch (error) {
      const reason = error instanceof Error && error.name === 'AbortError' && error.cause !== undefined ? error.cause : error
      throw failure(reason, what, settings.timeoutMs, closing.signal.aborted)
    }
    return parseAnswer(status, contentType, text, what, emptyIsAnswer)
  }

  return {
    token: (params, credentials) => post(settings.tokenEndpoint, 'legacy token endpoint', params, credentials, false),
    async revoke(params, credentials) {
      if (settings.revocationEndpoint === undefined) oauthRefuse('AS_INTERNAL', 'legacy: no revocation endpoint is configured')
      return post(settings.revocationEndpoint, 'legacy revocation endpoint', params, credentials, true)
    },
    async close() {
      closing.abort()
      await agent.destroy()
    },
  }
}
