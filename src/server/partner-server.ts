// The partner-facing HTTPS listener: limits, the pipeline, the answer, and forwarding.
import { randomUUID } from 'node:crypto'
import { createServer, type Server, type ServerOptions } from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { performance } from 'node:perf_hooks'
import { authorize, type AuthorizeDeps, type Grant, type Refusal } from '../authorize.ts'
import { inspectPeerCertificate, type ClientCertPolicy, type PeerCertificateVerdict } from '../checks/client-cert.ts'
import type { ForwardedClientCert } from '../checks/forwarded-client-cert.ts'
import { isFormBody, readCredentialHeaders } from '../checks/credentials.ts'
import { GatewayError, catalogue, type ErrorCode } from '../errors.ts'
import type { Forwarder } from '../forward/forward.ts'
import type { HeaderPolicy } from '../forward/headers.ts'
import type { NonceIssuer } from '../dpop/nonce.ts'
import type { GatewayMetrics } from '../observability/metrics.ts'
import type { SecurityEvents } from '../observability/events.ts'
import { refusalBody, sendRefusal, type ChallengeContext } from '../respond.ts'
import type { Clock, Logger } from '../types.ts'
import { recheckAfterTrustChange } from '../reload/trust-anchors.ts'

export interface ListenerLimits {
  readonly maxHeaderBytes: number
  readonly headersTimeoutMs: number
  readonly requestTimeoutMs: number
  readonly keepAliveTimeoutMs: number
  /** How often Node looks for connections past headersTimeoutMs/requestTimeoutMs. */
  readonly connectionsCheckingIntervalMs: number
  readonly maxFormBodyBytes: number
  readonly maxConnections: number
}

export interface PartnerServerDeps {
  readonly tls: ServerOptions
  readonly limits: ListenerLimits
  readonly authorize: AuthorizeDeps
  readonly clientCertPolicy: ClientCertPolicy
  /** Load-balancer mode: from trusted proxies the certificate comes from a header, not the handshake. */
  readonly forwardedClientCert?: ForwardedClientCert
  readonly headers: HeaderPolicy
  readonly forwarder: Forwarder
  /** Set when DPoP nonces are on: a fresh nonce goes out on every answer (RFC 9449 §8.2). */
  readonly nonces: NonceIssuer | undefined
  readonly metrics: GatewayMetrics
  readonly events: SecurityEvents
  readonly logger: Logger
  readonly clock: Clock
  /**
   * Hot reload (src/reload/): each request leases the pipeline in force when it arrives and
   * releases it once answered, so it sees one configuration from start to end. Without it the
   * fields above are used for the server's lifetime.
   */
  readonly pipeline?: () => PipelineLease
}

/** What a configuration reload may replace while the listener keeps running. */
export type PartnerPipeline = Pick<PartnerServerDeps, 'authorize' | 'clientCertPolicy' | 'forwardedClientCert' | 'headers' | 'forwarder' | 'nonces'>

export interface PipelineLease {
  readonly current: PartnerPipeline
  release(): void
}

// RFC 9110 field value characters, bounded: anything else is replaced by a fresh UUID.
const INTERACTION_ID = /^[\x21-\x7e]{1,128}$/

const NO_ROUTE = 'unmatched'

function interactionIdOf(value: string | undefined): string {
  return value !== undefined && INTERACTION_ID.test(value) ? value : randomUUID()
}

function readFormBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        req.removeAllListeners('data')
        reject(new GatewayError('GW_BODY_TOO_LARGE', { detail: `form body exceeds ${limit} bytes` }))
        return
      }
      chunks.push(chunk)
    })
    req.once('end', () => resolve(Buffer.concat(chunks)))
    req.once('error', (error) => reject(new GatewayError('GW_REQUEST_MALFORMED', { detail: 'form body could not be read', cause: error })))
  })
}

export function createPartnerServer(deps: PartnerServerDeps): Server {
  const { limits, metrics, events, logger } = deps
  const lease = deps.pipeline ?? (() => ({ current: deps, release() {} }))
  // Judged once per connection and client-certificate policy; a reload that changes the policy
  // has the connection judged again (src/reload/trust-anchors.ts).
  const peerVerdicts = new WeakMap<TLSSocket, { readonly policy: ClientCertPolicy; readonly verdict: PeerCertificateVerdict }>()
  const handshakePolicies = new WeakMap<TLSSocket, ClientCertPolicy>()
  const overLimitSockets = new WeakSet<Socket>()
  let openConnections = 0

  function currentPipeline(): PartnerPipeline {
    const held = lease()
    held.release()
    return held.current
  }

  function peerVerdict(socket: TLSSocket, p: PartnerPipeline): PeerCertificateVerdict {
    const cached = peerVerdicts.get(socket)
    if (cached?.policy === p.clientCertPolicy) return cached.verdict
    let verdict = inspectPeerCertificate(socket, p.clientCertPolicy)
    const handshakePolicy = handshakePolicies.get(socket)
    if (handshakePolicy !== undefined && handshakePolicy !== p.clientCertPolicy) verdict = recheckAfterTrustChange(verdict, handshakePolicy, p.clientCertPolicy)
    peerVerdicts.set(socket, { policy: p.clientCertPolicy, verdict })
    return verdict
  }

  function answerHeaders(p: PartnerPipeline, interactionId: string): Record<string, string> {
    const headers: Record<string, string> = { 'x-fapi-interaction-id': interactionId }
    if (p.nonces) headers['dpop-nonce'] = p.nonces.current(deps.clock())
    return headers
  }

  function refuseRequest(p: PartnerPipeline, req: IncomingMessage, res: ServerResponse, refusal: Refusal, interactionId: string, started: number): void {
    const { error, route, presented, token, cert, proof } = refusal
    const code = error.code
    const context: ChallengeContext = {
      presentedScheme: presented?.scheme,
      acceptsDpop: route?.acceptsDpop ?? true,
      acceptsBearer: route?.acceptsBearer ?? true,
      scopes: route?.scopes ?? [],
      dpopAlgs: p.authorize.dpop.algorithms,
    }
    sendRefusal(res, code, context, answerHeaders(p, interactionId))
    const routeName = route?.name ?? NO_ROUTE
    const status = catalogue[code].status
    metrics.refusals.inc({ route: routeName, reason: code })
    metrics.requests.inc({ route: routeName, outcome: 'refused' })
    metrics.requestDuration.observe({ route: routeName, outcome: 'refused' }, (performance.now() - started) / 1000)
    events.emit({
      event: 'request.refused',
      reason: code,
      status,
      method: req.method,
      route: routeName,
      clientId: token?.clientId,
      subject: token?.sub,
      certThumbprint: cert?.thumbprint,
      certificate: cert,
      keyThumbprint: proof?.jkt,
      sourceAddress: req.socket.remoteAddress,
      interactionId,
      detail: error.detail,
    })
    if (code === 'GW_INTERNAL') logger.error({ err: error.cause, interactionId }, 'unexpected failure in the request pipeline')
  }

  async function forwardGranted(p: PartnerPipeline, req: IncomingMessage, res: ServerResponse, grant: Grant, interactionId: string, formBody: Buffer | undefined, started: number): Promise<void> {
    const { route, token, cert, proof } = grant
    const headers = p.headers.buildRequestHeaders(req.rawHeaders, {
      identity: {
        route: route.name,
        clientId: token.clientId,
        subject: token.sub,
        scopes: [...token.scopes],
        certThumbprint: cert?.thumbprint,
        keyThumbprint: proof?.jkt,
        issuer: token.iss,
      },
      clientIp: req.socket.remoteAddress,
      interactionId,
    })
    if (p.nonces) {
      res.setHeader('dpop-nonce', p.nonces.current(deps.clock()))
      res.setHeader('cache-control', 'no-store')
    }
    const path = (route.rewrite ? route.rewrite(grant.path) : grant.path) + req.url!.slice(grant.path.length)
    const outcome = await p.forwarder.forward(req, res, { upstream: route.upstream, path }, headers, formBody)
    metrics.upstreamDuration.observe({ upstream: route.upstream }, outcome.upstreamMs / 1000)
    metrics.upstreamResponses.inc({ upstream: route.upstream, status_class: `${Math.floor(outcome.status / 100)}xx` })
    metrics.requests.inc({ route: route.name, outcome: 'allowed' })
    metrics.requestDuration.observe({ route: route.name, outcome: 'allowed' }, (performance.now() - started) / 1000)
  }

  async function handle(p: PartnerPipeline, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now()
    const headers = readCredentialHeaders(req.rawHeaders)
    const interactionId = interactionIdOf(headers.interactionId)
    const socket = req.socket as TLSSocket
    const refuseEarly = (code: ErrorCode, detail: string, cause?: unknown) =>
      refuseRequest(p, req, res, { error: new GatewayError(code, { detail, cause }), route: undefined, cert: undefined, presented: undefined, token: undefined, proof: undefined }, interactionId, started)

    if (overLimitSockets.has(socket)) {
      // Closed after the answer, so the connection frees its place instead of holding it.
      res.setHeader('connection', 'close')
      return refuseEarly('GW_OVERLOADED', `more than ${limits.maxConnections} connections`)
    }

    let formBody: Buffer | undefined
    if (isFormBody(headers.contentType)) {
      try {
        formBody = await readFormBody(req, limits.maxFormBodyBytes)
      } catch (error) {
        res.setHeader('connection', 'close')
        return refuseEarly((error as GatewayError).code ?? 'GW_REQUEST_MALFORMED', 'form body', error)
      }
    }

    const verdict = await authorize(
      { method: req.method ?? '', target: req.url ?? '', headers, peer: p.forwardedClientCert?.verdictFor(socket.remoteAddress, req.rawHeaders, deps.clock()) ?? peerVerdict(socket, p), formBody: formBody?.toString('latin1'), nowMs: deps.clock(), clientAddress: socket.remoteAddress },
      p.authorize,
    )
    if (!verdict.ok) return refuseRequest(p, req, res, verdict.refusal, interactionId, started)

    try {
      await forwardGranted(p, req, res, verdict.grant, interactionId, formBody, started)
    } catch (error) {
      const gatewayError = error instanceof GatewayError ? error : new GatewayError('GW_INTERNAL', { detail: 'forwarding failed', cause: error })
      const { route, cert, presented, token, proof } = verdict.grant
      if (gatewayError.code === 'GW_CLIENT_CLOSED') {
        metrics.requests.inc({ route: route.name, outcome: 'client_closed' })
        res.destroy()
        return
      }
      if (res.headersSent) {
        metrics.requests.inc({ route: route.name, outcome: 'upstream_error' })
        logger.warn({ interactionId, route: route.name, code: gatewayError.code, detail: gatewayError.detail }, 'upstream answer interrupted')
        return
      }
      refuseRequest(p, req, res, { error: gatewayError, route, cert, presented, token, proof }, interactionId, started)
    }
  }

  const server = createServer(
    { ...deps.tls, maxHeaderSize: limits.maxHeaderBytes, requestTimeout: limits.requestTimeoutMs, headersTimeout: limits.headersTimeoutMs, keepAliveTimeout: limits.keepAliveTimeoutMs, connectionsCheckingInterval: limits.connectionsCheckingIntervalMs },
    (req, res) => {
      const held = lease()
      handle(held.current, req, res).catch((error: unknown) => {
        logger.error({ err: error }, 'request handler failed')
        if (!res.headersSent) {
          res.statusCode = 500
          res.end()
        } else res.destroy()
      }).finally(() => held.release())
    },
  )

  server.on('connection', (socket: Socket) => {
    openConnections++
    metrics.connections.set(openConnections)
    socket.once('close', () => {
      openConnections--
      metrics.connections.set(openConnections)
    })
  })
  // 'connection' gives the TCP socket; requests arrive on the TLS socket wrapped around it.
  server.on('secureConnection', (socket: TLSSocket) => {
    handshakePolicies.set(socket, currentPipeline().clientCertPolicy)
    if (openConnections > limits.maxConnections) overLimitSockets.add(socket)
  })
  // A hard ceiling well above the answered limit, so a flood cannot exhaust memory.
  server.maxConnections = limits.maxConnections * 2

  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    // A client that hung up mid-request is not refused, only counted.
    if (!socket.writable || error.code === 'ECONNRESET' || error.code === 'HPE_INVALID_EOF_STATE') {
      metrics.requests.inc({ route: NO_ROUTE, outcome: 'client_closed' })
      socket.destroy()
      return
    }
    const code: ErrorCode =
      error.code === 'HPE_HEADER_OVERFLOW' ? 'GW_HEADERS_TOO_LARGE'
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' || error.code === 'HPE_HEADERS_TIMEOUT' ? 'GW_REQUEST_TIMEOUT'
          : 'GW_REQUEST_MALFORMED'
    metrics.refusals.inc({ route: NO_ROUTE, reason: code })
    metrics.requests.inc({ route: NO_ROUTE, outcome: 'refused' })
    const interactionId = randomUUID()
    events.emit({ event: 'request.refused', reason: code, status: catalogue[code].status, route: NO_ROUTE, sourceAddress: socket.remoteAddress, interactionId, detail: error.code })
    const body = JSON.stringify(refusalBody(code, interactionId))
    const status = catalogue[code].status
    const reason = status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nDate: ${new Date(deps.clock()).toUTCString()}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\nX-Fapi-Interaction-Id: ${interactionId}\r\nConnection: close\r\n\r\n${body}`)
  })

  server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => {
    metrics.tlsHandshakeFailures.inc({ reason: error.code ?? 'unknown' })
    events.emit({ event: 'tls.handshake_failed', reason: error.code ?? 'unknown', sourceAddress: socket.remoteAddress })
  })

  return server
}
