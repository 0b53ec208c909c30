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
import { answerPushedAuthorizationRequest, type ParDeps, type ParSettings } from './front-channel/par-endpoint.ts'
import { answerAuthorizationRequest, type AuthorizationEndpointDeps, type AuthorizationEndpointSettings } from './front-channel/authorization-endpoint.ts'
import { answerCallback, type CallbackDeps, type CallbackSettings } from './front-channel/callback-endpoint.ts'
import { writeBrowserAnswer } from './front-channel/browser-answer.ts'
import type { GatewayKeySource } from './keys/key-source.ts'
import { messageSigningMetadata } from './front-channel/jarm.ts'

/** Short, so that a partner sees a new key well within keyRotation.publishAheadSeconds (at least this). */
export const JWKS_MAX_AGE_SECONDS = 300

export type FacadeEndpoint = 'metadata' | 'jwks' | 'token' | 'revocation' | 'par' | 'authorization' | 'callback'

/** Endpoints a browser reaches: their refusals are pages, not JSON (issue 14). */
const BROWSER_ENDPOINTS: ReadonlySet<FacadeEndpoint> = new Set(['authorization', 'callback'])

/** The authorization-code front channel (issue 14), when the legacy server's authorization endpoint is configured. */
export interface FrontChannelSettings {
  readonly parPath: string
  readonly authorizationPath: string
  readonly callbackPath: string
  readonly par: ParSettings
  readonly authorization: AuthorizationEndpointSettings
  readonly callback: CallbackSettings
}

export interface FrontChannelDeps {
  readonly par: ParDeps
  readonly authorization: AuthorizationEndpointDeps
  readonly callback: CallbackDeps
}

export interface FacadeSettings {
  readonly metadata: MetadataSettings
  readonly token: TokenEndpointSettings
  readonly frontChannel: FrontChannelSettings | undefined
  readonly maxBodyBytes: number
  readonly perClientPerSecond: number
  readonly perAddressPerSecond: number
  readonly burst: number
}

export interface FacadeDeps {
  readonly token: TokenEndpointDeps
  readonly frontChannel: FrontChannelDeps | undefined
  readonly revocation: RevocationDeps
  /** The gateway's own keys, published at metadata.jwksPath, when configured. */
  readonly keys?: GatewayKeySource
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
  /** Every DPoP header value, as the listener read them from rawHeaders. */
  readonly proofHeaders: readonly string[]
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
  jwks: 'authorization-server-jwks',
  token: 'authorization-server-token',
  revocation: 'authorization-server-revocation',
  par: 'authorization-server-par',
  authorization: 'authorization-server-authorization',
  callback: 'authorization-server-callback',
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
  AS_RESPONSE_TYPE_UNSUPPORTED: 'authorization-request',
  AS_REDIRECT_URI_INVALID: 'authorization-request',
  AS_PKCE_INVALID: 'authorization-request',
  AS_REQUEST_OBJECT_INVALID: 'authorization-request',
  AS_REQUEST_URI_INVALID: 'authorization-request',
  AS_AUTHORIZATION_STATE_INVALID: 'authorization-response',
}

function checkOf(error: OAuthError): OAuthCheckName {
  return CHECKS[error.code] ?? 'client-authentication'
}

const TOKEN_SCHEME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,32}$/

function authorizationScheme(authorization: string | undefined): string | undefined {
  const scheme = authorization?.trim().split(/\s+/)[0]
  return scheme !== undefined && TOKEN_SCHEME.test(scheme) ? scheme : undefined
}

export function createAuthorizationServerFacade(settings: FacadeSettings, deps: FacadeDeps): AuthorizationServerFacade {
  const { metrics, events, logger } = deps
  const metadata = authorizationServerMetadata(settings.metadata)
  // What the gateway's keys allow (JARM, encrypted request objects) follows their rotation.
  const metadataDocument = (nowMs: number) => JSON.stringify(settings.frontChannel ? { ...metadata, ...messageSigningMetadata(deps.keys, nowMs) } : metadata)
  const paths = new Map<string, FacadeEndpoint>([
    ...metadataPaths(settings.metadata).map((path): [string, FacadeEndpoint] => [path, 'metadata']),
    [settings.metadata.tokenPath, 'token'],
    ...(settings.metadata.jwksPath !== undefined && deps.keys ? [[settings.metadata.jwksPath, 'jwks'] as [string, FacadeEndpoint]] : []),
    ...(settings.metadata.revocationPath !== undefined ? [[settings.metadata.revocationPath, 'revocation'] as [string, FacadeEndpoint]] : []),
    ...(settings.frontChannel
      ? ([
          [settings.frontChannel.parPath, 'par'],
          [settings.frontChannel.authorizationPath, 'authorization'],
          [settings.frontChannel.callbackPath, 'callback'],
        ] as [string, FacadeEndpoint][])
      : []),
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
    if (BROWSER_ENDPOINTS.has(endpoint)) writeBrowserAnswer(res, { kind: 'error-page', error }, { 'x-fapi-interaction-id': interactionId })
    else {
      const headers = answerHeaders(interactionId)
      if ((endpoint === 'metadata' || endpoint === 'jwks') && error.code === 'AS_METHOD_NOT_ALLOWED') headers.allow = 'GET, HEAD'
      sendOAuthRefusal(res, error, headers, authorizationScheme(req.headers.authorization))
    }
    record(request, error, facts, started)
  }

  /** A refusal's metrics, security event and, where the operator has something to do, log line. */
  function record(request: FacadeRequest, error: OAuthError, facts: TokenRequestFacts, started: number): void {
    const { req, endpoint, interactionId } = request
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

  function frontChannel(): { settings: FrontChannelSettings; deps: FrontChannelDeps } {
    if (!settings.frontChannel || !deps.frontChannel) throw new OAuthError('AS_INTERNAL', { detail: 'front channel: not configured' })
    return { settings: settings.frontChannel, deps: deps.frontChannel }
  }

  /**
   * The authorization endpoint and the callback, answered with a 303 or a page (their methods are
   * theirs to judge: a HEAD must not use up a callback state). A refusal sent to the partner's redirect
   * URI, once that URI is trusted, is recorded like any other.
   */
  async function answerBrowser(request: FacadeRequest, facts: TokenRequestFacts, started: number): Promise<void> {
    const { req, res, endpoint, interactionId } = request
    const nowMs = deps.clock()
    if (!perAddress.take(req.socket.remoteAddress ?? '', nowMs)) throw new OAuthError('AS_RATE_LIMITED', { detail: 'rate: per address' })
    const front = frontChannel()
    const browserRequest = { method: req.method ?? '', query: new URL(req.url ?? '/', 'https://gateway.invalid').searchParams, nowMs }
    const answered =
      endpoint === 'authorization'
        ? await answerAuthorizationRequest(browserRequest, front.settings.authorization, front.deps.authorization, facts)
        : await answerCallback(browserRequest, front.settings.callback, front.deps.callback, facts)
    writeBrowserAnswer(res, answered, { 'x-fapi-interaction-id': interactionId })
    const refusal = answered.kind === 'error-page' ? answered.error : answered.refusal
    if (refusal) record(request, refusal, facts, started)
    else {
      // A legacy error (access_denied when the customer cancels) is passed on to the partner, not refused here.
      const passedOn = answered.kind === 'redirect' ? answered.passedOn : undefined
      metrics.requests.inc({ endpoint, grant_type: 'authorization_code', outcome: passedOn === undefined ? 'redirected' : 'legacy_error' })
    }
  }

  async function answer(request: FacadeRequest, facts: TokenRequestFacts, started: number): Promise<void> {
    const { req, res, endpoint, interactionId } = request
    if (endpoint === 'metadata') {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new OAuthError('AS_METHOD_NOT_ALLOWED', { detail: `method: ${req.method}` })
      sendJson(res, 200, metadataDocument(deps.clock()), { 'x-fapi-interaction-id': interactionId })
      return
    }
    if (endpoint === 'jwks') {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new OAuthError('AS_METHOD_NOT_ALLOWED', { detail: `method: ${req.method}` })
      const body = JSON.stringify(deps.keys!.publicJwks(deps.clock()))
      res.statusCode = 200
      res.setHeader('content-type', 'application/jwk-set+json')
      // Public keys: cacheable, briefly (a new key is published publishAheadSeconds before it signs).
      res.setHeader('cache-control', `public, max-age=${JWKS_MAX_AGE_SECONDS}`)
      res.setHeader('content-length', Buffer.byteLength(body))
      res.setHeader('x-fapi-interaction-id', interactionId)
      res.end(body)
      return
    }
    if (BROWSER_ENDPOINTS.has(endpoint)) {
      await answerBrowser(request, facts, started)
      return
    }
    if (req.method !== 'POST') throw new OAuthError('AS_METHOD_NOT_ALLOWED', { detail: `method: ${req.method?.slice(0, 16)}` })
    const nowMs = deps.clock()
    if (!perAddress.take(req.socket.remoteAddress ?? '', nowMs)) throw new OAuthError('AS_RATE_LIMITED', { detail: 'rate: per address' })
    const params = await readForm(request)
    const common = { params, authorization: req.headers.authorization, peer: request.peer, peerCertificate: request.peerCertificate, nowMs }
    if (endpoint === 'par') {
      const front = frontChannel()
      const pushed = await answerPushedAuthorizationRequest(
        { ...common, proofHeaders: request.proofHeaders },
        front.settings.par,
        { ...front.deps.par, authenticator },
        facts,
      )
      sendJson(res, 201, JSON.stringify(pushed), answerHeaders(interactionId))
      metrics.requests.inc({ endpoint, grant_type: 'authorization_code', outcome: 'pushed' })
      return
    }
    if (endpoint === 'token') {
      const answered = await answerTokenRequest({ ...common, proofHeaders: request.proofHeaders }, settings.token, tokenDeps, facts)
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
        await answer(request, facts, started)
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
