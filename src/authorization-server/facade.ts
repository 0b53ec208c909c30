// The authorization-server façade's endpoints on the partner listener: metadata, token and
// revocation. Each request is limited (rate, body size), answered in the OAuth form, counted,
// and every refusal is a security event, as on the resource side (src/server/refusals.ts).
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { X509Certificate } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { GatewayError } from '../errors.ts'
import type { SecurityEvents } from '../observability/events.ts'
import { sendOAuthRefusal } from '../respond.ts'
import { readFormBody } from '../server/read-body.ts'
import type { NonceIssuer } from '../checks/dpop/nonce.ts'
import type { Clock, Logger, PeerCertificateVerdict } from '../types.ts'
import { OAuthError, oauthCatalogue, type OAuthCheckName } from './errors.ts'
import { parseOAuthForm } from './form.ts'
import { authorizationServerMetadata, metadataPaths, type MetadataSettings } from './metadata.ts'
import type { AuthorizationServerMetrics } from './metrics.ts'
import { createRateLimiter, limitPerClient } from './rate-limit.ts'
import { answerRevocationRequest, type RevocationDeps } from './revocation-endpoint.ts'
import { answerTokenRequest, type TokenEndpointDeps, type TokenEndpointSettings, type TokenRequestFacts } from './token-endpoint.ts'

export type FacadeEndpoint = 'metadata' | 'token' | 'revocation'

export interface FacadeSettings {
  readonly metadata: MetadataSettings
  readonly token: TokenEndpointSettings
  readonly maxBodyBytes: number
  readonly perClientPerSecond: number
  readonly perAddressPerSecond: number
  readonly burst: number
}

export interface FacadeDeps {
  readonly token: TokenEndpointDeps
  readonly revocation: RevocationDeps
  /** The façade's own DPoP nonces (RFC 9449 §8), when nonces are on. */
  readonly nonces: NonceIssuer | undefined
  readonly metrics: AuthorizationServerMetrics
  readonly events: SecurityEvents
  readonly logger: Logger
  readonly clock: Clock
}

export interface FacadeRequest {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly endpoint: FacadeEndpoint
  readonly peer: PeerCertificateVerdict
  readonly peerCertificate: X509Certificate | undefined
  readonly interactionId: string
  /** Sends `100 Continue` if the client waits for it (RFC 9110 §10.1.1). */
  readonly sendContinue: () => void
}

export interface AuthorizationServerFacade {
  /** The façade endpoint at this path, or undefined for the resource pipeline. */
  endpointAt(path: string): FacadeEndpoint | undefined
  /** Answers the request; resolves with the client it was, when authenticated (for the access log). */
  handle(request: FacadeRequest): Promise<string | undefined>
}

const ROUTE_NAMES: Record<FacadeEndpoint, string> = {
  metadata: 'authorization-server-metadata',
  token: 'authorization-server-token',
  revocation: 'authorization-server-revocation',
}

const CHECKS: Partial<Record<string, OAuthCheckName>> = {
  AS_METHOD_NOT_ALLOWED: 'request',
  AS_REQUEST_MALFORMED: 'request',
  AS_BODY_TOO_LARGE: 'request',
  AS_RATE_LIMITED: 'request',
  AS_GRANT_TYPE_UNSUPPORTED: 'grant',
  AS_GRANT_TYPE_NOT_ALLOWED: 'grant',
  AS_SCOPE_NOT_ALLOWED: 'grant',
  AS_GRANT_INVALID: 'grant',
  AS_TOKEN_TYPE_UNSUPPORTED: 'grant',
  AS_SENDER_CONSTRAINT_MISSING: 'sender-constraint',
  AS_DPOP_INVALID: 'dpop',
  AS_DPOP_NONCE: 'dpop',
  AS_DPOP_REPLAY: 'dpop',
  AS_LEGACY_REFUSED: 'legacy',
  AS_LEGACY_CREDENTIALS: 'legacy',
  AS_LEGACY_BAD_ANSWER: 'legacy',
  AS_LEGACY_UNAVAILABLE: 'legacy',
  AS_LEGACY_TIMEOUT: 'legacy',
  AS_STORE_UNAVAILABLE: 'state',
  AS_INTERNAL: 'internal',
}

function checkOf(error: OAuthError): OAuthCheckName {
  return CHECKS[error.code] ?? 'client-authentication'
}

/** Every value of a header, from rawHeaders (Node joins repeated ones). */
function headerValues(rawHeaders: readonly string[], name: string): string[] {
  const values: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) values.push(rawHeaders[i + 1]!)
  return values
}

const TOKEN_SCHEME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,32}$/

function authorizationScheme(authorization: string | undefined): string | undefined {
  const scheme = authorization?.trim().split(/\s+/)[0]
  return scheme !== undefined && TOKEN_SCHEME.test(scheme) ? scheme : undefined
}

export function createAuthorizationServerFacade(settings: FacadeSettings, deps: FacadeDeps): AuthorizationServerFacade {
  const { metrics, events, logger } = deps
  const metadataDocument = JSON.stringify(authorizationServerMetadata(settings.metadata))
  const paths = new Map<string, FacadeEndpoint>([
    ...metadataPaths(settings.metadata).map((path): [string, FacadeEndpoint] => [path, 'metadata']),
    [settings.metadata.tokenPath, 'token'],
    ...(settings.metadata.revocationPath !== undefined ? [[settings.metadata.revocationPath, 'revocation'] as [string, FacadeEndpoint]] : []),
  ])
  const perAddress = createRateLimiter(settings.perAddressPerSecond, settings.burst)
  // Per client only once authenticated: a client_id anyone can write in a form must not let them spend its budget.
  const perClient = createRateLimiter(settings.perClientPerSecond, settings.burst)
  const authenticator = limitPerClient(deps.token.authenticator, perClient, deps.clock)
  const tokenDeps: TokenEndpointDeps = { ...deps.token, authenticator }
  const revocationDeps: RevocationDeps = { ...deps.revocation, authenticator }

  function answerHeaders(interactionId: string): Record<string, string> {
    const headers: Record<string, string> = { 'x-fapi-interaction-id': interactionId }
    if (deps.nonces) headers['dpop-nonce'] = deps.nonces.current(deps.clock())
    return headers
  }

  function sendJson(res: ServerResponse, status: number, body: string, headers: Record<string, string>): void {
    res.statusCode = status
    res.setHeader('content-type', 'application/json')
    res.setHeader('cache-control', 'no-store')
    res.setHeader('pragma', 'no-cache')
    res.setHeader('content-length', Buffer.byteLength(body))
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value)
    res.end(body)
  }

  function refuse(request: FacadeRequest, error: OAuthError, facts: TokenRequestFacts, started: number): void {
    const { req, res, endpoint, interactionId } = request
    sendOAuthRefusal(res, error, answerHeaders(interactionId), authorizationScheme(req.headers.authorization))
    const spec = oauthCatalogue[error.code]
    metrics.refusals.inc({ endpoint, reason: error.code })
    metrics.requests.inc({ endpoint, grant_type: facts.grantType ?? 'none', outcome: 'refused' })
    metrics.duration.observe({ endpoint, outcome: 'refused' }, (performance.now() - started) / 1000)
    events.emit({
      event: 'request.refused',
      reason: error.code,
      status: spec.status,
      method: req.method,
      route: ROUTE_NAMES[endpoint],
      clientId: facts.clientId,
      keyThumbprint: facts.keyThumbprint,
      certThumbprint: facts.certThumbprint,
      sourceAddress: req.socket.remoteAddress,
      interactionId,
      check: checkOf(error),
      rule: error.rule,
      detail: error.detail,
    })
    if (error.code === 'AS_INTERNAL') logger.error({ err: error.cause, interactionId }, 'unexpected failure in the authorization-server façade')
    else if (
      error.code === 'AS_LEGACY_CREDENTIALS' ||
      error.code === 'AS_LEGACY_BAD_ANSWER' ||
      error.code === 'AS_LEGACY_UNAVAILABLE' ||
      error.code === 'AS_LEGACY_TIMEOUT'
    )
      logger.warn({ code: error.code, detail: error.detail, clientId: facts.clientId, interactionId }, 'legacy authorization server failed')
  }

  async function readForm(request: FacadeRequest): Promise<ReadonlyMap<string, string>> {
    request.sendContinue()
    let body: Buffer
    try {
      body = await readFormBody(request.req, settings.maxBodyBytes)
    } catch (error) {
      if (error instanceof GatewayError && error.code === 'GW_BODY_TOO_LARGE') throw new OAuthError('AS_BODY_TOO_LARGE', { detail: error.detail })
      throw error
    }
    return parseOAuthForm(request.req.headers['content-type'], body)
  }

  async function answer(request: FacadeRequest, facts: TokenRequestFacts): Promise<void> {
    const { req, res, endpoint, interactionId } = request
    if (endpoint === 'metadata') {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new OAuthError('AS_METHOD_NOT_ALLOWED', { detail: `method: ${req.method}` })
      sendJson(res, 200, metadataDocument, { 'x-fapi-interaction-id': interactionId })
      return
    }
    if (req.method !== 'POST') throw new OAuthError('AS_METHOD_NOT_ALLOWED', { detail: `method: ${req.method?.slice(0, 16)}` })
    const nowMs = deps.clock()
    if (!perAddress.take(req.socket.remoteAddress ?? '', nowMs)) throw new OAuthError('AS_RATE_LIMITED', { detail: 'rate: per address' })
    const params = await readForm(request)
    const common = { params, authorization: req.headers.authorization, peer: request.peer, peerCertificate: request.peerCertificate, nowMs }
    if (endpoint === 'token') {
      const answered = await answerTokenRequest({ ...common, proofHeaders: headerValues(req.rawHeaders, 'dpop') }, settings.token, tokenDeps, facts)
      sendJson(res, 200, JSON.stringify(answered.body), answerHeaders(interactionId))
      metrics.requests.inc({ endpoint, grant_type: facts.grantType ?? 'none', outcome: 'issued' })
      return
    }
    const outcome = await answerRevocationRequest(common, revocationDeps, facts)
    res.statusCode = 200
    for (const [name, value] of Object.entries(answerHeaders(interactionId))) res.setHeader(name, value)
    res.setHeader('cache-control', 'no-store')
    res.setHeader('content-length', 0)
    res.end()
    metrics.requests.inc({ endpoint, grant_type: 'none', outcome })
    if (outcome === 'revoked')
      events.emit({ event: 'token.revoked', clientId: facts.clientId, method: req.method, route: ROUTE_NAMES[endpoint], interactionId })
  }

  return {
    endpointAt: (path) => paths.get(path),

    async handle(request) {
      const started = performance.now()
      const facts: TokenRequestFacts = {}
      try {
        await answer(request, facts)
        metrics.duration.observe({ endpoint: request.endpoint, outcome: 'answered' }, (performance.now() - started) / 1000)
      } catch (error) {
        if (error instanceof GatewayError && error.code === 'GW_CLIENT_CLOSED') {
          request.res.destroy()
          return facts.clientId
        }
        const oauthError = error instanceof OAuthError ? error : new OAuthError('AS_INTERNAL', { detail: 'façade: request handler failed', cause: error })
        refuse(request, oauthError, facts, started)
      }
      return facts.clientId
    },
  }
}
