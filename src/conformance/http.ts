// One HTTP/1.1 exchange over its own TLS connection, with the headers sent exactly as given:
// names in the given case, repeated names kept (two DPoP headers), nothing added but Host
// and Content-Length. A TLS refusal comes back as data (alert number, reset), not as an error.
import { request as httpsRequest } from 'node:https'
import { isIP } from 'node:net'
import type { Clock } from '../types.ts'

export interface TlsIdentity {
  /** How reports name it, e.g. the certificate subject. */
  readonly label: string
  /** Leaf certificate, then the intermediates to send (PEM). */
  readonly certPem: string
  readonly keyPem: string
}

export interface HttpRequest {
  readonly method: string
  /** Absolute https URL: host, port, path and query are sent as written. */
  readonly url: string
  readonly headers: readonly (readonly [string, string])[]
  readonly body?: string
  readonly identity?: TlsIdentity
}

export interface HttpSettings {
  /** CA bundle for the server certificate; the system roots when undefined. */
  readonly caPem: string | undefined
  /** SNI; the URL's host name when undefined (never an IP address, RFC 6066 §3). */
  readonly servername: string | undefined
  readonly timeoutMs: number
  readonly now: Clock
}

export interface HttpAnswer {
  readonly kind: 'answer'
  readonly status: number
  readonly rawHeaders: readonly string[]
  readonly body: string
  readonly receivedAtMs: number
}

export interface TransportFailure {
  readonly kind: 'failure'
  readonly code: string
  /** TLS alert number the peer sent, when it sent one (RFC 8446 §6). */
  readonly alert: number | undefined
  /** The peer closed or reset the connection. */
  readonly reset: boolean
  readonly message: string
}

export type HttpOutcome = HttpAnswer | TransportFailure

const MAX_BODY_BYTES = 64 * 1024

export const TLS_ALERTS: Readonly<Record<number, string>> = {
  10: 'unexpected_message',
  20: 'bad_record_mac',
  40: 'handshake_failure',
  42: 'bad_certificate',
  43: 'unsupported_certificate',
  44: 'certificate_revoked',
  45: 'certificate_expired',
  46: 'certificate_unknown',
  47: 'illegal_parameter',
  48: 'unknown_ca',
  49: 'access_denied',
  50: 'decode_error',
  51: 'decrypt_error',
  70: 'protocol_version',
  71: 'insufficient_security',
  80: 'internal_error',
  86: 'inappropriate_fallback',
  90: 'user_canceled',
  109: 'missing_extension',
  110: 'unsupported_extension',
  112: 'unrecognized_name',
  116: 'certificate_required',
  120: 'no_application_protocol',
}

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED'])

export function classifyFailure(error: unknown): TransportFailure {
  const { code, message } = error as NodeJS.ErrnoException
  const alert = /SSL alert number (\d+)/.exec(String(message))?.[1]
  const errorCode = typeof code === 'string' ? code : 'ERROR'
  return {
    kind: 'failure',
    code: errorCode,
    alert: alert === undefined ? undefined : Number(alert),
    reset: RESET_CODES.has(errorCode),
    message: String(message).split('\n')[0]!.trim(),
  }
}

export function describeFailure(failure: TransportFailure): string {
  if (failure.alert !== undefined) return `TLS alert ${failure.alert} (${TLS_ALERTS[failure.alert] ?? 'unknown'})`
  if (failure.reset) return `connection closed by the server (${failure.code})`
  return `no answer: ${failure.code} ${failure.message}`
}

/** Every value of a response header, from rawHeaders (Node would join or drop repeats). */
export function headerValues(rawHeaders: readonly string[], name: string): string[] {
  const wanted = name.toLowerCase()
  const values: string[] = []
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === wanted) values.push(rawHeaders[i + 1]!)
  return values
}

export function serverName(hostname: string, configured: string | undefined): string | undefined {
  if (configured !== undefined) return configured
  const host = hostname.replace(/^\[|\]$/g, '')
  return isIP(host) === 0 ? host : undefined
}

export function sendHttp(request: HttpRequest, settings: HttpSettings): Promise<HttpOutcome> {
  const url = new URL(request.url)
  const host = url.hostname.replace(/^\[|\]$/g, '')
  const headers: string[] = []
  if (!request.headers.some(([name]) => name.toLowerCase() === 'host')) headers.push('Host', url.host)
  for (const [name, value] of request.headers) headers.push(name, value)
  if (request.body !== undefined && !request.headers.some(([name]) => name.toLowerCase() === 'content-length')) {
    headers.push('Content-Length', String(Buffer.byteLength(request.body)))
  }

  return new Promise((resolve) => {
    let settled = false
    const settle = (outcome: HttpOutcome) => {
      if (settled) return
      settled = true
      resolve(outcome)
    }
    const req = httpsRequest({
      host,
      port: url.port === '' ? 443 : Number(url.port),
      method: request.method,
      path: `${url.pathname}${url.search}`,
      headers,
      agent: false,
      ca: settings.caPem,
      servername: serverName(url.hostname, settings.servername),
      rejectUnauthorized: true,
      ...(request.identity && { cert: request.identity.certPem, key: request.identity.keyPem }),
      timeout: settings.timeoutMs,
    })
    req.on('response', (res) => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size <= MAX_BODY_BYTES) chunks.push(chunk)
      })
      res.on('end', () =>
        settle({
          kind: 'answer',
          status: res.statusCode ?? 0,
          rawHeaders: res.rawHeaders,
          body: Buffer.concat(chunks).toString('utf8'),
          receivedAtMs: settings.now(),
        }),
      )
      res.on('error', (error) => settle(classifyFailure(error)))
    })
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${settings.timeoutMs} ms`), { code: 'ETIMEDOUT' })))
    req.on('error', (error) => settle(classifyFailure(error)))
    req.end(request.body)
  })
}
