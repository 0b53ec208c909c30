// One place where a refusal becomes everything it is: the answer (src/respond.ts), its metrics,
// its security event and, where the operator has something to do, its log line. Requests the
// pipeline refused, requests Node could not even parse, and failures nobody expected all go
// through here, so that no refusal is answered without being counted and evented.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import type { Refusal } from '../authorize.ts'
import { catalogue, type ErrorCode } from '../errors.ts'
import type { GatewayMetrics } from '../observability/metrics.ts'
import type { SecurityEvents } from '../observability/events.ts'
import { rawRefusal, sendRefusal, type ChallengeContext } from '../respond.ts'
import type { Clock, Logger } from '../types.ts'

/** The route label of a request no route matched. */
export const NO_ROUTE = 'unmatched'

export interface RefusalDeps {
  readonly metrics: GatewayMetrics
  readonly events: SecurityEvents
  readonly logger: Logger
  readonly clock: Clock
}

export interface RefusedRequest {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly refusal: Refusal
  readonly interactionId: string
  /** performance.now() when the request arrived. */
  readonly started: number
  /** Proof algorithms for the DPoP challenge's `algs`. */
  readonly dpopAlgs: readonly string[]
  /** Sent with the answer: the interaction id, a fresh DPoP nonce. */
  readonly headers: Record<string, string>
}

export interface Refusals {
  /** A request the pipeline (or the listener before it) refused. */
  request(refused: RefusedRequest): void
  /** A request Node could not parse: answered on the socket itself (there is no ServerResponse), then closed. */
  unparsed(socket: Socket, code: ErrorCode, detail: string | undefined): void
}

export function createRefusals(deps: RefusalDeps): Refusals {
  const { metrics, events, logger } = deps

  function count(route: string, code: ErrorCode, started: number | undefined): void {
    metrics.refusals.inc({ route, reason: code })
    metrics.requests.inc({ route, outcome: 'refused' })
    if (started !== undefined) metrics.requestDuration.observe({ route, outcome: 'refused' }, (performance.now() - started) / 1000)
  }

  return {
    request({ req, res, refusal, interactionId, started, dpopAlgs, headers }) {
      const { error, route, presented, token, cert, proof } = refusal
      const code = error.code
      const context: ChallengeContext = {
        presentedScheme: presented?.scheme,
        acceptsDpop: route?.acceptsDpop ?? true,
        acceptsBearer: route?.acceptsBearer ?? true,
        scopes: route?.scopes ?? [],
        dpopAlgs,
      }
      sendRefusal(res, code, context, headers)
      const routeName = route?.name ?? NO_ROUTE
      count(routeName, code, started)
      events.emit({
        event: 'request.refused',
        reason: code,
        status: catalogue[code].status,
        method: req.method,
        route: routeName,
        clientId: token?.clientId,
        subject: token?.sub,
        certThumbprint: cert?.thumbprint,
        certificate: cert,
        keyThumbprint: proof?.jkt ?? error.keyThumbprint,
        sourceAddress: req.socket.remoteAddress,
        interactionId,
        check: refusal.check,
        rule: error.rule,
        detail: error.detail,
      })
      if (code === 'GW_INTERNAL') logger.error({ err: error.cause, interactionId }, 'unexpected failure in the request pipeline')
      // The operator's problem, not the partner's: a refused or silent upstream is worth a warning.
      else if (code === 'GW_UPSTREAM_UNAVAILABLE' || code === 'GW_UPSTREAM_TIMEOUT')
        logger.warn({ upstream: route?.upstream, code, detail: error.detail, interactionId }, 'upstream failed')
    },

    unparsed(socket, code, detail) {
      const answer = rawRefusal(code, deps.clock())
      count(NO_ROUTE, code, undefined)
      events.emit({
        event: 'request.refused',
        reason: code,
        status: catalogue[code].status,
        route: NO_ROUTE,
        sourceAddress: socket.remoteAddress,
        interactionId: answer.interactionId,
        check: 'listener',
        rule: 'parse',
        detail,
      })
      socket.end(answer.bytes)
    },
  }
}
