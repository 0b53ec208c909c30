// Security events in the Elastic Common Schema (ECS 8.11), so Elastic, Splunk and other SIEMs
// ingest them without a parser. The shape is documented in docs/security-events.md and
// docs/security-event.schema.json; nothing here may carry a token, a proof or key material.

export const ECS_VERSION = '8.11.0'
export const EVENT_DATASET = 'fapi_gateway.security'

export const SECURITY_ACTIONS = [
  'request.refused',
  'dpop.replay_detected',
  'cert.revoked',
  'cert.near_expiry',
  'config.reloaded',
  'config.refused',
  'dependency.unavailable',
  'tls.handshake_failed',
  'token.revoked',
] as const

export type SecurityAction = (typeof SECURITY_ACTIONS)[number]

/** A certificate an event is about: the client's (default), the gateway's own (server, or client to an upstream), or a trust anchor. */
export interface EventCertificate {
  readonly role?: 'client' | 'server' | 'client_ca' | 'upstream_client'
  readonly subject?: string
  readonly issuer?: string
  readonly serialNumber?: string
  /** Milliseconds since the epoch. */
  readonly notAfter?: number
}

/** What a caller reports; toEcs turns it into the documented document. */
export interface SecurityEvent {
  readonly event: SecurityAction
  /** The GW_ error code for refusals; an OpenSSL code for handshakes; free-form but bounded otherwise. */
  readonly reason?: string
  /** The HTTP status sent, for events about one request. */
  readonly status?: number
  readonly method?: string
  /** Route policy name (never the raw path). */
  readonly route?: string
  readonly clientId?: string
  readonly subject?: string
  /** base64url SHA-256 of the client certificate (RFC 8705 `x5t#S256`). */
  readonly certThumbprint?: string
  /** RFC 7638 thumbprint of the DPoP key. */
  readonly keyThumbprint?: string
  readonly certificate?: EventCertificate
  readonly sourceAddress?: string
  /** x-fapi-interaction-id of the request. */
  readonly interactionId?: string
  /** replay_store, issuer, revocation, …: what could not answer. */
  readonly dependency?: string
  /** The step that refused and the rule within it: the structured reason, for matching without parsing `detail`. */
  readonly check?: string
  readonly rule?: string
  /** Internal detail from the check that refused; never sent to clients. */
  readonly detail?: string
}

export type Severity = 'low' | 'medium' | 'high'

/** Elastic's detection-rule scale for event.severity. */
export const SEVERITY_SCORE: Record<Severity, number> = { low: 21, medium: 47, high: 73 }

/** Refusals that say a credential was stolen, replayed or revoked: event.kind "alert". */
const HIGH_SEVERITY_CODES: ReadonlySet<string> = new Set([
  'GW_DPOP_REPLAY',
  'GW_CLIENT_CERT_REVOKED',
  'GW_TOKEN_REVOKED',
  'GW_CERT_BINDING_MISMATCH',
  'GW_DPOP_BINDING_MISMATCH',
  'GW_TOKEN_DOWNGRADE',
  'AS_DPOP_REPLAY',
  'AS_CLIENT_ASSERTION_REPLAY',
])

/** Refusals that are everyday client mistakes or load, not a sign of attack. */
const LOW_SEVERITY_CODES: ReadonlySet<string> = new Set([
  'GW_ROUTE_UNKNOWN',
  'GW_METHOD_NOT_ALLOWED',
  'GW_TOKEN_MISSING',
  'GW_TOKEN_EXPIRED',
  'GW_DPOP_MISSING',
  'GW_DPOP_NONCE',
  'GW_CLIENT_CERT_MISSING',
  'GW_REQUEST_MALFORMED',
  'GW_TOKEN_MALFORMED',
  'GW_HEADERS_TOO_LARGE',
  'GW_REQUEST_TIMEOUT',
  'GW_BODY_TOO_LARGE',
  'GW_OVERLOADED',
  'GW_UPSTREAM_UNAVAILABLE',
  'GW_UPSTREAM_TIMEOUT',
  'GW_CLIENT_CLOSED',
  'GW_INTROSPECTION_BUSY',
  'AS_METHOD_NOT_ALLOWED',
  'AS_REQUEST_MALFORMED',
  'AS_BODY_TOO_LARGE',
  'AS_RATE_LIMITED',
  'AS_DPOP_NONCE',
  'AS_LEGACY_UNAVAILABLE',
  'AS_LEGACY_TIMEOUT',
])

/** Refusals whose cause is a dependency that could not answer, and which one. */
const DEPENDENCY_CODES: Readonly<Record<string, string>> = {
  GW_REPLAY_STORE_UNAVAILABLE: 'replay_store',
  GW_ISSUER_UNAVAILABLE: 'issuer',
  GW_REVOCATION_UNAVAILABLE: 'revocation',
  AS_STORE_UNAVAILABLE: 'replay_store',
  AS_LEGACY_UNAVAILABLE: 'legacy_server',
  AS_LEGACY_TIMEOUT: 'legacy_server',
}

/** The action a refusal is filed under: a replay, a revoked certificate or an outage has its own. */
export function refusalAction(code: string): SecurityAction {
  if (code === 'GW_DPOP_REPLAY' || code === 'AS_DPOP_REPLAY') return 'dpop.replay_detected'
  if (code === 'GW_CLIENT_CERT_REVOKED') return 'cert.revoked'
  if (code in DEPENDENCY_CODES) return 'dependency.unavailable'
  return 'request.refused'
}

export function refusalSeverity(code: string): Severity {
  if (HIGH_SEVERITY_CODES.has(code)) return 'high'
  if (LOW_SEVERITY_CODES.has(code)) return 'low'
  return 'medium'
}

interface ActionProfile {
  readonly category: readonly string[]
  readonly type: readonly string[]
  readonly outcome: 'success' | 'failure' | 'unknown'
  readonly severity: Severity
  readonly level: 'info' | 'warn' | 'error'
}

const ALERT_CATEGORY = ['authentication', 'intrusion_detection', 'network']

const PROFILES: Record<SecurityAction, ActionProfile> = {
  'request.refused': { category: ['authentication', 'network'], type: ['denied'], outcome: 'failure', severity: 'medium', level: 'warn' },
  'dpop.replay_detected': { category: ALERT_CATEGORY, type: ['denied'], outcome: 'failure', severity: 'high', level: 'warn' },
  'cert.revoked': { category: ALERT_CATEGORY, type: ['denied'], outcome: 'failure', severity: 'high', level: 'warn' },
  'cert.near_expiry': { category: ['configuration'], type: ['info'], outcome: 'unknown', severity: 'medium', level: 'warn' },
  'config.reloaded': { category: ['configuration'], type: ['change'], outcome: 'success', severity: 'low', level: 'info' },
  'config.refused': { category: ['configuration'], type: ['change'], outcome: 'failure', severity: 'medium', level: 'error' },
  'dependency.unavailable': { category: ['network'], type: ['error'], outcome: 'failure', severity: 'medium', level: 'error' },
  'tls.handshake_failed': { category: ['network', 'authentication'], type: ['connection', 'denied'], outcome: 'failure', severity: 'low', level: 'info' },
  'token.revoked': { category: ['iam'], type: ['change'], outcome: 'success', severity: 'low', level: 'info' },
}

export interface EcsContext {
  readonly now: number
  readonly id: string
  readonly hostname: string
}

/** The documented document (docs/security-event.schema.json); optional parts are left out, never null. */
export interface EcsSecurityEvent {
  readonly '@timestamp': string
  readonly message: string
  readonly ecs: { readonly version: string }
  readonly event: {
    readonly id: string
    readonly kind: 'alert' | 'event'
    readonly category: readonly string[]
    readonly type: readonly string[]
    readonly action: SecurityAction
    readonly outcome: 'success' | 'failure' | 'unknown'
    readonly reason?: string
    readonly severity: number
    readonly dataset: string
    readonly module: string
  }
  readonly log: { readonly level: string; readonly logger: string }
  readonly service: { readonly name: string; readonly type: string }
  readonly host: { readonly hostname: string }
  readonly http?: { readonly request?: { readonly method?: string; readonly id?: string }; readonly response?: { readonly status_code: number } }
  readonly source?: { readonly ip: string }
  readonly user?: { readonly id: string }
  readonly tls?: Record<string, unknown>
  readonly fapi?: Record<string, string>
}

const MAX_FIELD = 256
const MAX_DETAIL = 512

function bounded(value: string | undefined, max = MAX_FIELD): string | undefined {
  if (value === undefined || value === '') return undefined
  return value.length > max ? `${value.slice(0, max)}…` : value
}

/** ECS source.ip is an IP; Node reports IPv4 clients of a dual-stack socket as ::ffff:a.b.c.d. */
export function normaliseIp(address: string | undefined): string | undefined {
  if (address === undefined || address === '') return undefined
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address)
  return mapped ? mapped[1] : address
}

/** ECS tls.*.hash.sha256 is upper-case hex; the gateway's thumbprints are base64url. */
function hexThumbprint(base64url: string): string {
  return Buffer.from(base64url, 'base64url').toString('hex').toUpperCase()
}

function compact<T extends Record<string, unknown>>(entries: T): Partial<T> | undefined {
  const kept = Object.entries(entries).filter(([, value]) => value !== undefined)
  return kept.length > 0 ? (Object.fromEntries(kept) as Partial<T>) : undefined
}

function tlsFields(event: SecurityEvent): Record<string, unknown> | undefined {
  const certificate = event.certificate
  const role = certificate?.role ?? 'client'
  const side = role === 'server' ? 'server' : 'client'
  const x509 =
    certificate &&
    compact({
      serial_number: bounded(certificate.serialNumber),
      subject: certificate.subject ? { distinguished_name: bounded(certificate.subject) } : undefined,
      issuer: certificate.issuer ? { distinguished_name: bounded(certificate.issuer) } : undefined,
      not_after: certificate.notAfter !== undefined ? new Date(certificate.notAfter).toISOString() : undefined,
    })
  const client = compact({
    hash: event.certThumbprint ? { sha256: hexThumbprint(event.certThumbprint) } : undefined,
    ...(side === 'client' ? { x509 } : {}),
  })
  const server = side === 'server' ? compact({ x509 }) : undefined
  return compact({ client, server })
}

function messageOf(action: SecurityAction, event: SecurityEvent, detail: string | undefined): string {
  const parts = [event.reason, event.dependency && `dependency ${event.dependency}`, detail].filter(Boolean)
  return parts.length > 0 ? `${action}: ${parts.join(', ')}` : action
}

export function toEcs(event: SecurityEvent, context: EcsContext): EcsSecurityEvent {
  const code = event.reason
  const isRefusal = event.status !== undefined && code !== undefined && (code.startsWith('GW_') || code.startsWith('AS_'))
  const action = event.event === 'request.refused' && code !== undefined ? refusalAction(code) : event.event
  const profile = PROFILES[action]
  const severity = isRefusal && action === 'request.refused' ? refusalSeverity(code) : profile.severity
  const dependency = event.dependency ?? (code !== undefined ? DEPENDENCY_CODES[code] : undefined)
  const type = isRefusal && !profile.type.includes('denied') ? ['denied', ...profile.type] : profile.type
  const detail = bounded(event.detail, MAX_DETAIL)
  const level = code === 'GW_INTERNAL' || code === 'AS_INTERNAL' ? 'error' : action === 'request.refused' && severity === 'low' ? 'info' : profile.level

  const http = compact({
    request: compact({ method: bounded(event.method, 32), id: bounded(event.interactionId, 128) }),
    response: event.status !== undefined ? { status_code: event.status } : undefined,
  })
  const sourceIp = normaliseIp(event.sourceAddress)
  const fapi = compact({
    route: bounded(event.route),
    client_id: bounded(event.clientId),
    key_thumbprint: bounded(event.keyThumbprint, 128),
    cert_thumbprint: bounded(event.certThumbprint, 128),
    dependency: bounded(dependency, 64),
    certificate_role: event.certificate ? (event.certificate.role ?? 'client') : undefined,
    check: bounded(event.check, 32),
    rule: bounded(event.rule, 40),
  }) as Record<string, string> | undefined
  const tls = tlsFields(event)
  const userId = bounded(event.subject)

  return {
    '@timestamp': new Date(context.now).toISOString(),
    message: messageOf(action, event, detail),
    ecs: { version: ECS_VERSION },
    event: {
      id: context.id,
      kind: severity === 'high' ? 'alert' : 'event',
      category: profile.category,
      type,
      action,
      outcome: profile.outcome,
      ...(code !== undefined ? { reason: bounded(code, 128) } : {}),
      severity: SEVERITY_SCORE[severity],
      dataset: EVENT_DATASET,
      module: 'fapi_gateway',
    },
    log: { level, logger: EVENT_DATASET },
    service: { name: 'fapi-gateway', type: 'fapi-gateway' },
    host: { hostname: context.hostname },
    ...(http ? { http } : {}),
    ...(sourceIp ? { source: { ip: sourceIp } } : {}),
    ...(userId ? { user: { id: userId } } : {}),
    ...(tls ? { tls } : {}),
    ...(fapi ? { fapi } : {}),
  }
}
