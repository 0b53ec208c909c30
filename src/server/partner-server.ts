// The partner-facing HTTPS listener: limits, the pipeline, the answer, and forwarding.
import { createServer, type Server, type ServerOptions } from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { performance } from 'node:perf_hooks'
import { interactionIdOf } from '../interaction-id.ts'
import { authorize, type AuthorizeDeps, type Grant, type Refusal } from '../authorize.ts'
import { inspectPeerCertificate, type ClientCertPolicy } from './peer-certificate.ts'
import type { PeerCertificateVerdict } from '../types.ts'
import type { ForwardedClientCert } from './forwarded-client-cert.ts'
import { readCredentialHeaders } from '../checks/credentials.ts'
import { checkFormBody, formKindOf, readBodyHeaders, type FormKind } from '../checks/form-body.ts'
import { GatewayError, type CheckName, type ErrorCode } from '../errors.ts'
import { readFormBody } from './read-body.ts'
import type { Forwarder } from '../forward/forward.ts'
import type { HeaderPolicy } from '../forward/headers.ts'
import type { NonceIssuer } from '../checks/dpop/nonce.ts'
import type { GatewayMetrics } from '../observability/metrics.ts'
import type { SecurityEvents } from '../observability/events.ts'
import { createRefusals, NO_ROUTE } from './refusals.ts'
import type { Clock, Logger } from '../types.ts'
import { recheckAfterTrustChange } from './trust-anchors.ts'
import { guardHandshakes } from './handshake-guard.ts'
import type { AuthorizationServerFacade } from '../authorization-server/facade.ts'

export interface ListenerLimits {
  readonly maxHeaderBytes: number
  readonly headersTimeoutMs: number
  readonly requestTimeoutMs: number
  readonly keepAliveTimeoutMs: number
  /** How often Node looks for connections past headersTimeoutMs/requestTimeoutMs. */
  readonly connectionsCheckingIntervalMs: number
  readonly maxFormBodyBytes: number
  readonly maxConnections: number
  /** A connection must finish its TLS handshake within this, however slowly it sends its bytes. */
  readonly handshakeTimeoutMs: number
  /** Connections in the TLS handshake held at once; a new one beyond closes the oldest. */
  readonly maxPendingHandshakes: number
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
  /** The authorization-server façade's endpoints (src/authorization-server/), when configured. */
  readonly authorizationServer?: AuthorizationServerFacade | undefined
  readonly metrics: GatewayMetrics
  readonly events: SecurityEvents
  readonly logger: Logger
  /** One line per answered request (log.access); answers under 400 are sampled. */
  readonly accessLog?: { readonly enabled: boolean; readonly sampleRate: number }
  readonly clock: Clock
  /**
   * Hot reload (src/reload/): each request leases the pipeline in force when it arrives and
   * releases it once answered, so it sees one configuration from start to end. Without it the
   * fields above are used for the server's lifetime.
   */
  readonly pipeline?: () => PipelineLease
}

/** What a configuration reload may replace while the listener keeps running. */
export type PartnerPipeline = Pick<
  PartnerServerDeps,
  'authorize' | 'clientCertPolicy' | 'forwardedClientCert' | 'headers' | 'forwarder' | 'nonces' | 'authorizationServer'
>

export interface PipelineLease {
  readonly current: PartnerPipeline
  release(): void
}

/** What the access log line of one request says, filled in as the request is handled. */
interface AccessRecord {
  readonly started: number
  route: string
  clientId: string | undefined
  interactionId: string | undefined
}

/** A body announced but not yet received: answering now leaves it on the connection. */
function bodyPending(req: IncomingMessage): boolean {
  return !req.complete && (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0)
}

export function createPartnerServer(deps: PartnerServerDeps): Server {
  const { limits, metrics, events, logger } = deps
  const refusals = createRefusals({ metrics, events, logger, clock: deps.clock })
  const lease = deps.pipeline ?? (() => ({ current: deps, release() {} }))
  // Judged once per connection and client-certificate policy; a reload that changes the policy
  // has the connection judged again (src/reload/trust-anchors.ts).
  const peerVerdicts = new WeakMap<TLSSocket, { readonly policy: ClientCertPolicy; readonly verdict: PeerCertificateVerdict }>()
  const handshakePolicies = new WeakMap<TLSSocket, ClientCertPolicy>()
  const overLimitSockets = new WeakSet<Socket>()
  // Requests with `Expect: 100-continue` whose 100 has not been sent.
  const awaitingContinue = new WeakSet<IncomingMessage>()
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

  // Envoy's and nginx's access log, without the path (it carries account and payment identifiers)
  // and without anything of the credentials: the interaction id ties a line to the partner's logs.
  function logAccess(req: IncomingMessage, res: ServerResponse, access: AccessRecord): void {
    if (!deps.accessLog?.enabled) return
    if (res.statusCode < 400 && res.writableFinished && Math.random() >= deps.accessLog.sampleRate) return
    logger.info(
      {
        access: {
          method: req.method,
          route: access.route,
          status: res.statusCode,
          durationMs: Math.round((performance.now() - access.started) * 1000) / 1000,
          clientId: access.clientId,
          interactionId: access.interactionId,
          sourceIp: req.socket.remoteAddress,
          completed: res.writableFinished,
        },
      },
      'request',
    )
  }

  function refuseRequest(p: PartnerPipeline, req: IncomingMessage, res: ServerResponse, refusal: Refusal, interactionId: string, started: number): void {
    // Closed after the answer rather than drained: the body may be large, or never come (Expect).
    if (bodyPending(req)) res.setHeader('connection', 'close')
    refusals.request({ req, res, refusal, interactionId, started, dpopAlgs: p.authorize.dpop.algorithms, headers: answerHeaders(p, interactionId) })
  }

  async function forwardGranted(
    p: PartnerPipeline,
    req: IncomingMessage,
    res: ServerResponse,
    grant: Grant,
    interactionId: string,
    formBody: Buffer | undefined,
    urlencoded: boolean,
    started: number,
  ): Promise<void> {
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
      target: req.url!,
      // Only a url-encoded body has parameters a framework could read `_method` from.
      formBody: urlencoded ? formBody : undefined,
      pathMapping: route.pathMapping?.(grant.path),
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

  async function handle(p: PartnerPipeline, req: IncomingMessage, res: ServerResponse, access: AccessRecord): Promise<void> {
    const started = access.started
    const headers = readCredentialHeaders(req.rawHeaders)
    const interactionId = interactionIdOf(headers.interactionId)
    access.interactionId = interactionId
    const socket = req.socket as TLSSocket
    const refuseEarly = (error: GatewayError, check: CheckName) =>
      refuseRequest(
        p,
        req,
        res,
        { error, check, route: undefined, cert: undefined, presented: undefined, token: undefined, proof: undefined },
        interactionId,
        started,
      )

    if (overLimitSockets.has(socket)) {
      // Closed after the answer, so the connection frees its place instead of holding it.
      res.setHeader('connection', 'close')
      return refuseEarly(new GatewayError('GW_OVERLOADED', { detail: `more than ${limits.maxConnections} connections` }), 'listener')
    }

    const facadeEndpoint = p.authorizationServer?.endpointAt((req.url ?? '').split('?')[0]!)
    if (facadeEndpoint !== undefined) {
      access.route = `authorization-server-${facadeEndpoint}`
      access.clientId = await p.authorizationServer!.handle({
        req,
        res,
        endpoint: facadeEndpoint,
        peer: p.forwardedClientCert?.verdictFor(socket.remoteAddress, req.rawHeaders, deps.clock()) ?? peerVerdict(socket, p),
        // Whatever its chain, for self_signed_tls_client_auth (RFC 8705 §2.2); a load balancer's header carries none.
        peerCertificate: p.forwardedClientCert ? undefined : (socket.getPeerX509Certificate() ?? undefined),
        interactionId,
        proofHeaders: headers.dpop,
        sendContinue: () => {
          if (awaitingContinue.delete(req)) res.writeContinue()
        },
      })
      return
    }

    let formKind: FormKind | undefined
    try {
      formKind = formKindOf(readBodyHeaders(req.rawHeaders))
    } catch (error) {
      return refuseEarly(error instanceof GatewayError ? error : new GatewayError('GW_INTERNAL', { detail: 'body headers', cause: error }), 'body')
    }
    // `Expect: 100-continue` is answered only once every check passed (RFC 9110 §10.1.1): a
    // client that is not authorized is never invited to send its body.
    const sendContinue = () => {
      if (awaitingContinue.delete(req)) res.writeContinue()
    }
    let formBody: Buffer | undefined
    const checkBody =
      formKind === undefined
        ? undefined
        : async () => {
            sendContinue()
            try {
              formBody = await readFormBody(req, limits.maxFormBodyBytes)
            } catch (error) {
              if ((error as GatewayError).code === 'GW_BODY_TOO_LARGE') res.setHeader('connection', 'close')
              throw error
            }
            checkFormBody(formKind, formBody)
          }

    const verdict = await authorize(
      {
        method: req.method ?? '',
        target: req.url ?? '',
        headers,
        peer: p.forwardedClientCert?.verdictFor(socket.remoteAddress, req.rawHeaders, deps.clock()) ?? peerVerdict(socket, p),
        checkBody,
        nowMs: deps.clock(),
        clientAddress: socket.remoteAddress,
      },
      p.authorize,
    )
    access.route = (verdict.ok ? verdict.grant.route : verdict.refusal.route)?.name ?? NO_ROUTE
    access.clientId = (verdict.ok ? verdict.grant.token : verdict.refusal.token)?.clientId
    if (!verdict.ok) {
      if (verdict.refusal.error.code !== 'GW_CLIENT_CLOSED') return refuseRequest(p, req, res, verdict.refusal, interactionId, started)
      metrics.requests.inc({ route: verdict.refusal.route?.name ?? NO_ROUTE, outcome: 'client_closed' })
      res.destroy()
      return
    }
    sendContinue()

    try {
      await forwardGranted(p, req, res, verdict.grant, interactionId, formBody, formKind === 'urlencoded', started)
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
      refuseRequest(p, req, res, { error: gatewayError, check: 'forwarding', route, cert, presented, token, proof }, interactionId, started)
    }
  }

  const server = createServer(
    {
      ...deps.tls,
      maxHeaderSize: limits.maxHeaderBytes,
      requestTimeout: limits.requestTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionsCheckingInterval: limits.connectionsCheckingIntervalMs,
      // Node's default, 120 s, let a socket that never finished its handshake hold its place that long.
      handshakeTimeout: limits.handshakeTimeoutMs,
    },
    (req, res) => {
      const held = lease()
      const access: AccessRecord = { started: performance.now(), route: NO_ROUTE, clientId: undefined, interactionId: undefined }
      handle(held.current, req, res, access)
        .catch((error: unknown) => {
          // A failure nobody expected is still a refusal like any other: answered, counted, evented, logged.
          if (res.headersSent) {
            logger.error({ err: error, interactionId: access.interactionId }, 'request handler failed after answering')
            res.destroy()
            return
          }
          const interactionId = access.interactionId ?? interactionIdOf(undefined)
          const refusal: Refusal = {
            error: new GatewayError('GW_INTERNAL', { detail: 'request handler failed', cause: error }),
            check: 'listener',
            route: undefined,
            cert: undefined,
            presented: undefined,
            token: undefined,
            proof: undefined,
          }
          refusals.request({
            req,
            res,
            refusal,
            interactionId,
            started: access.started,
            dpopAlgs: held.current.authorize.dpop.algorithms,
            headers: { 'x-fapi-interaction-id': interactionId },
          })
        })
        .finally(() => {
          held.release()
          logAccess(req, res, access)
        })
    },
  )

  // With a listener here Node leaves `Expect: 100-continue` to handle(), instead of answering 100 at once.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    awaitingContinue.add(req)
    server.emit('request', req, res)
  })

  const handshakes = guardHandshakes(server, {
    maxPending: limits.maxPendingHandshakes,
    onEvicted: () => metrics.tlsHandshakeFailures.inc({ reason: 'pending_handshakes_full' }),
    onPendingChanged: (count) => metrics.pendingHandshakes.set(count),
  })
  // Only connections that finished the handshake count toward maxConnections: ones still in it
  // are bounded by the guard, so idle sockets cannot earn legitimate clients a 503.
  server.on('secureConnection', (socket: TLSSocket) => {
    openConnections++
    metrics.connections.set(openConnections)
    socket.once('close', () => {
      openConnections--
      metrics.connections.set(openConnections)
    })
    handshakePolicies.set(socket, currentPipeline().clientCertPolicy)
    if (openConnections > limits.maxConnections) overLimitSockets.add(socket)
  })
  // A hard ceiling well above the answered limit, so a flood cannot exhaust memory. Pending handshakes
  // have their own room in it, so a flood of them cannot make Node drop connections before the guard sees them.
  server.maxConnections = limits.maxConnections * 2 + limits.maxPendingHandshakes

  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    // node:https passes failed handshakes here too: no HTTP answer without TLS, just the close ('tlsClientError' counts them).
    // Answered, a timed-out handshake would wait for its answer to be sent, holding its place for good.
    if (!handshakePolicies.has(socket as TLSSocket)) {
      socket.destroy()
      return
    }
    // A client that hung up mid-request is not refused, only counted.
    if (!socket.writable || error.code === 'ECONNRESET' || error.code === 'HPE_INVALID_EOF_STATE') {
      metrics.requests.inc({ route: NO_ROUTE, outcome: 'client_closed' })
      socket.destroy()
      return
    }
    const code: ErrorCode =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? 'GW_HEADERS_TOO_LARGE'
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' || error.code === 'HPE_HEADERS_TIMEOUT'
          ? 'GW_REQUEST_TIMEOUT'
          : 'GW_REQUEST_MALFORMED'
    refusals.unparsed(socket, code, error.code)
  })

  server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => {
    if (handshakes.evicted(socket)) return
    const reason = error.code ?? 'unknown'
    metrics.tlsHandshakeFailures.inc({ reason })
    // Hang-ups and timeouts are counted, not reported one by one: a flood of them would bury the events that matter.
    if (reason === 'ECONNRESET' || reason === 'ERR_TLS_HANDSHAKE_TIMEOUT') return
    events.emit({ event: 'tls.handshake_failed', reason, sourceAddress: socket.remoteAddress })
  })

  return server
}
