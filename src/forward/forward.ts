// Streams an authorized request to its upstream and the answer back: one undici Pool per
// upstream, no buffering in either direction.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Transform } from 'node:stream'
import { performance } from 'node:perf_hooks'
import { Pool } from 'undici'
import { GatewayError, isGatewayError, refuse, type ErrorCode } from '../errors.ts'
import type { Clock } from '../types.ts'
import { buildResponseHeaders, type ForwardHeaders, type UpstreamOrigin } from './headers.ts'

export interface UpstreamSettings {
  /** http or https origin, optionally with a base path: `https://accounts.internal:8443/v1`. */
  readonly url: string
  readonly connectTimeoutMs: number
  readonly headersTimeoutMs: number
  readonly bodyTimeoutMs: number
  /** Pool size. */
  readonly connections: number
  /** Trust anchors for an https upstream (PEM); the system store when absent. */
  readonly caPem?: string
  /** The gateway's client certificate (followed by its intermediates) and key for an https upstream that requires mTLS. */
  readonly clientCertPem?: string
  readonly clientKeyPem?: string
  readonly keepAliveTimeoutMs?: number
}

export interface ForwarderOptions {
  readonly maxBodyBytes: number
  /** Only for the Date header when the upstream sent none. */
  readonly now: Clock
}

export interface ForwardTarget {
  readonly upstream: string
  /** Path and query as received. */
  readonly path: string
}

export interface ForwardOutcome {
  readonly status: number
  /** From dispatch to the last byte of the response handed to the client. */
  readonly upstreamMs: number
}

export interface Forwarder {
  /**
   * Rejects with a GatewayError. When `res.headersSent` is true the response has
   * already been destroyed and nothing more may be written.
   */
  forward(req: IncomingMessage, res: ServerResponse, target: ForwardTarget, headers: ForwardHeaders, readBody?: Buffer): Promise<ForwardOutcome>
  close(): Promise<void>
}

interface Upstream extends UpstreamOrigin {
  readonly pool: Pool
}

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT'])

const UNAVAILABLE_CODES = new Set([
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_RES_EXCEEDED_MAX_SIZE',
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
])

// Parser (llhttp), resolver, TLS and certificate verification failures.
const UNAVAILABLE_PREFIXES = ['HPE_', 'EAI_', 'ERR_SSL_', 'ERR_TLS_', 'CERT_', 'UNABLE_TO_']

function clientClosed(): GatewayError {
  return new GatewayError('GW_CLIENT_CLOSED', { detail: 'client closed the connection before the exchange was complete' })
}

/** Our own refusals pass through; the rest is mapped by `code` (never by message). */
function exchangeFailure(err: unknown): GatewayError {
  if (isGatewayError(err)) return err
  const code = (err as { code?: unknown } | null)?.code
  // undici reports a client response that closed before it finished this way.
  if (code === 'ERR_STREAM_PREMATURE_CLOSE') return clientClosed()
  let mapped: ErrorCode = 'GW_INTERNAL'
  if (typeof code === 'string') {
    if (TIMEOUT_CODES.has(code)) mapped = 'GW_UPSTREAM_TIMEOUT'
    else if (UNAVAILABLE_CODES.has(code) || UNAVAILABLE_PREFIXES.some((prefix) => code.startsWith(prefix))) mapped = 'GW_UPSTREAM_UNAVAILABLE'
  }
  return new GatewayError(mapped, { detail: `upstream exchange failed (${String(code ?? 'no code')})`, cause: err })
}

function tlsConnectOptions(settings: UpstreamSettings) {
  return {
    minVersion: 'TLSv1.2' as const,
    ...(settings.caPem === undefined ? {} : { ca: settings.caPem }),
    ...(settings.clientCertPem === undefined || settings.clientKeyPem === undefined ? {} : { cert: settings.clientCertPem, key: settings.clientKeyPem }),
  }
}

function createUpstream(name: string, settings: UpstreamSettings): Upstream {
  const url = new URL(settings.url)
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`upstream ${name}: url must be http or https`)
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw new TypeError(`upstream ${name}: url must be an origin with an optional base path`)
  }
  if (settings.clientCertPem !== undefined && url.protocol !== 'https:') throw new TypeError(`upstream ${name}: a client certificate needs an https url`)
  const pool = new Pool(url.origin, {
    connections: settings.connections,
    connectTimeout: settings.connectTimeoutMs,
    headersTimeout: settings.headersTimeoutMs,
    bodyTimeout: settings.bodyTimeoutMs,
    ...(settings.keepAliveTimeoutMs === undefined ? {} : { keepAliveTimeout: settings.keepAliveTimeoutMs }),
    allowH2: false,
    // RFC 9325 / FAPI 2.0 SP 5.2.1: TLS 1.2 or later to other servers as well.
    ...(url.protocol === 'https:' ? { connect: tlsConnectOptions(settings) } : {}),
  })
  return { pool, origin: url.origin, basePath: url.pathname.replace(/\/+$/, '') }
}

/** RFC 3986 §3.3: the target must be an origin-form path; dot-segments could climb out of the base path. */
function checkTargetPath(path: string): void {
  if (!path.startsWith('/') || !/^[\x21-\x7e]+$/.test(path) || path.includes('#') || path.includes('\\')) {
    refuse('GW_REQUEST_MALFORMED', 'request target is not an origin-form path')
  }
  const query = path.indexOf('?')
  const segments = (query === -1 ? path : path.slice(0, query)).split('/')
  for (const segment of segments) {
    const decoded = segment.replace(/%2e/gi, '.')
    if (decoded === '.' || decoded === '..') refuse('GW_REQUEST_MALFORMED', 'request path has a dot-segment')
  }
}

function declaredLength(req: IncomingMessage): number | undefined {
  const value = req.headers['content-length']
  return value === undefined ? undefined : Number(value)
}

function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || (declaredLength(req) ?? 0) > 0
}

/** Passes the body through while counting; errors once more than `limit` bytes arrived. */
function meterBody(limit: number, onTooLarge: () => GatewayError): Transform {
  let received = 0
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      received += chunk.length
      if (received > limit) callback(onTooLarge())
      else callback(null, chunk)
    },
  })
}

function rawHeaderList(headers: unknown): string[] {
  if (Array.isArray(headers)) return headers.map(String)
  const list: string[] = []
  for (const [name, value] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
    for (const item of Array.isArray(value) ? value : value === undefined ? [] : [value]) list.push(name, item)
  }
  return list
}

export function createForwarder(upstreams: Readonly<Record<string, UpstreamSettings>>, options: ForwarderOptions): Forwarder {
  const targets = new Map<string, Upstream>()
  for (const [name, settings] of Object.entries(upstreams)) targets.set(name, createUpstream(name, settings))

  /** `readBody`: the whole body when the gateway had to read it already (a form body). */
  async function forward(
    req: IncomingMessage,
    res: ServerResponse,
    target: ForwardTarget,
    headers: ForwardHeaders,
    readBody?: Buffer,
  ): Promise<ForwardOutcome> {
    const upstream = targets.get(target.upstream) ?? refuse('GW_INTERNAL', `no upstream named ${target.upstream}`)
    checkTargetPath(target.path)
    const declared = declaredLength(req)
    if (declared !== undefined && declared > options.maxBodyBytes) {
      // The body stays unread: close the connection after the refusal instead of draining it.
      res.setHeader('connection', 'close')
      refuse('GW_BODY_TOO_LARGE', `content-length ${declared} exceeds ${options.maxBodyBytes}`)
    }
    if (readBody !== undefined && readBody.length > options.maxBodyBytes)
      refuse('GW_BODY_TOO_LARGE', `body of ${readBody.length} bytes exceeds ${options.maxBodyBytes}`)

    const abort = new AbortController()
    let tooLarge: GatewayError | undefined
    const body =
      readBody !== undefined || !hasBody(req)
        ? null
        : meterBody(options.maxBodyBytes, () => (tooLarge = new GatewayError('GW_BODY_TOO_LARGE', { detail: `body exceeds ${options.maxBodyBytes} bytes` })))
    const onClientGone = () => {
      if (!res.writableFinished) abort.abort(clientClosed())
    }
    res.once('close', onClientGone)
    req.once('error', onClientGone)
    if (body) req.pipe(body)
    // A request whose body was read to its end is destroyed too: that client has not left.
    if (res.destroyed || (req.destroyed && !req.complete)) onClientGone()

    const started = performance.now()
    let status = 0
    try {
      await upstream.pool.stream(
        {
          path: upstream.basePath + target.path,
          method: req.method ?? 'GET',
          headers: headers.request,
          body: readBody ?? body,
          signal: abort.signal,
          responseHeaders: 'raw',
        },
        ({ statusCode, headers: upstreamHeaders }) => {
          const responseHeaders = buildResponseHeaders(rawHeaderList(upstreamHeaders), headers.interactionId, options.now(), headers.response, upstream)
          // The upstream answered before the whole body arrived: the rest will not be read.
          if (body && !req.complete) responseHeaders.push('connection', 'close')
          try {
            res.writeHead(statusCode, responseHeaders)
          } catch (err) {
            throw new GatewayError('GW_UPSTREAM_UNAVAILABLE', { detail: 'upstream response head cannot be relayed', cause: err })
          }
          status = statusCode
          return res
        },
      )
    } catch (err) {
      const failure = tooLarge ?? exchangeFailure(err)
      if (res.headersSent) res.destroy()
      else if (failure.code === 'GW_BODY_TOO_LARGE') res.setHeader('connection', 'close')
      throw failure
    } finally {
      res.off('close', onClientGone)
      req.off('error', onClientGone)
      if (body) {
        req.unpipe(body)
        if (!req.complete) req.resume()
      }
    }
    return { status, upstreamMs: performance.now() - started }
  }

  async function close(): Promise<void> {
    await Promise.all([...targets.values()].map(({ pool }) => pool.close()))
  }

  return { forward, close }
}
