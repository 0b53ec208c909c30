// The header fields that cross the gateway. Everything a client could use to speak for the
// gateway (identity, forwarding, client-certificate headers, credentials) is removed before
// the gateway's own values are added, so the upstream sees only what the gateway vouches for.
import { isIPv4, isIPv6 } from 'node:net'
import { refuse } from '../errors.ts'

export interface Identity {
  readonly clientId?: string
  readonly subject?: string
  readonly scopes: readonly string[]
  /** RFC 8705 `x5t#S256` of the client certificate. */
  readonly certThumbprint?: string
  /** RFC 9449 `jkt` of the DPoP key. */
  readonly keyThumbprint?: string
  readonly issuer?: string
  /** Name of the route policy that matched. */
  readonly route: string
}

export interface HeaderPolicyOptions {
  /** Host (and port, if not 443) of the gateway's configured public origin; never the client's Host. */
  readonly publicHost: string
  /** Default 'x-fapi-gateway-'. Every inbound header starting with it is removed. */
  readonly identityPrefix?: string
  /** Default true. */
  readonly stripAuthorization?: boolean
  /** Default true. */
  readonly stripDpop?: boolean
  /** Send `Authorization: DPoP <t>` as `Bearer <t>` for legacy upstreams; needs stripAuthorization false. */
  readonly rewriteDpopToBearer?: boolean
  /** Inbound headers removed in addition to DEFAULT_STRIP_HEADERS; a trailing '*' matches a prefix. */
  readonly stripHeaders?: readonly string[]
}

export interface RequestContext {
  readonly identity: Identity
  /** The TCP peer address; undefined when unknown. */
  readonly clientIp: string | undefined
  /** The value the gateway answers with and passes on (RFC 4122 UUID, echoed or generated). */
  readonly interactionId: string
}

/** What `forward()` needs: the upstream request's header list (name, value, name, value …). */
export interface ForwardHeaders {
  readonly request: string[]
  readonly interactionId: string
}

export interface HeaderPolicy {
  buildRequestHeaders(rawHeaders: readonly string[], context: RequestContext): ForwardHeaders
}

export const DEFAULT_IDENTITY_PREFIX = 'x-fapi-gateway-'

/** Forwarding and client-certificate headers a client could forge (RFC 8705 §6.5, RFC 9440). */
export const DEFAULT_STRIP_HEADERS: readonly string[] = [
  'forwarded',
  'x-forwarded-*',
  'x-real-ip',
  'x-client-ip',
  'true-client-ip',
  'x-original-forwarded-for',
  'client-cert',
  'client-cert-chain',
  'x-client-cert*',
  'x-client-verify',
  'x-client-dn',
  'x-ssl-*',
  'ssl-client-*',
  'x-arr-clientcert',
  'x-amzn-mtls-clientcert*',
]

// RFC 9110 §7.6.1, plus the non-standard proxy-connection and the h2c http2-settings.
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]

const INTERACTION_ID = 'x-fapi-interaction-id'

// The gateway sets these itself; `expect` was answered by the gateway's own server.
const SET_BY_GATEWAY = ['host', 'expect', INTERACTION_ID, 'forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']

const IDENTITY_SUFFIXES = {
  clientId: 'client-id',
  subject: 'subject',
  scopes: 'scopes',
  certThumbprint: 'cert-thumbprint',
  keyThumbprint: 'key-thumbprint',
  issuer: 'issuer',
  route: 'route',
} as const

const HEADER_NAME_PREFIX = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/
// RFC 9110 §5.5 field-value without control characters and without surrounding whitespace.
const FIELD_VALUE = /^(?:[\x21-\x7e\x80-\xff](?:[\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?$/
// RFC 6749 §3.3 scope-token.
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/
// RFC 9110 §5.6.2 token.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

interface NameMatcher {
  readonly exact: ReadonlySet<string>
  readonly prefixes: readonly string[]
}

function compileMatcher(names: readonly string[]): NameMatcher {
  const exact = new Set<string>()
  const prefixes: string[] = []
  for (const raw of names) {
    const name = raw.toLowerCase()
    const pattern = name.endsWith('*') ? name.slice(0, -1) : name
    if (!HEADER_NAME_PREFIX.test(pattern)) throw new TypeError(`invalid header name in strip list: ${JSON.stringify(raw)}`)
    if (name.endsWith('*')) prefixes.push(pattern)
    else exact.add(name)
  }
  return { exact, prefixes }
}

function matches(matcher: NameMatcher, lowerName: string): boolean {
  if (matcher.exact.has(lowerName)) return true
  for (const prefix of matcher.prefixes) if (lowerName.startsWith(prefix)) return true
  return false
}

/** RFC 9110 §7.6.1: the header names a Connection header declares hop-by-hop. */
function connectionOptions(rawHeaders: readonly string[]): ReadonlySet<string> | undefined {
  let names: Set<string> | undefined
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'connection') continue
    for (const part of rawHeaders[i + 1]!.split(',')) {
      const name = part.trim().toLowerCase()
      if (name !== '') (names ??= new Set()).add(name)
    }
  }
  return names
}

const CHECKED_VALUES_LIMIT = 10_000

/** Identity values come from tokens: refuse control characters; non-ASCII travels as UTF-8 octets (obs-text). */
function identityValue(value: string, what: string): string {
  const octets = Buffer.from(value, 'utf8').toString('latin1')
  if (!value.isWellFormed() || /\p{Cc}/u.test(value) || !FIELD_VALUE.test(octets)) refuse('GW_TOKEN_INVALID', `${what} is not a valid header field value`)
  return octets
}

function forwardedValue(value: string): string {
  return TOKEN.test(value) ? value : `"${value.replace(/["\\]/g, '\\$&')}"`
}

function normalizeIp(clientIp: string | undefined): string | undefined {
  if (clientIp === undefined) return undefined
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(clientIp)
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]
  return isIPv4(clientIp) || isIPv6(clientIp) ? clientIp : undefined
}

/** RFC 7239 §6: IPv6 node names are bracketed (and so quoted); an unknown peer is `unknown`. */
function forwardedFor(ip: string | undefined): string {
  if (ip === undefined) return 'unknown'
  return isIPv6(ip) ? forwardedValue(`[${ip}]`) : ip
}

export function checkInteractionId(interactionId: string): string {
  if (interactionId === '' || !FIELD_VALUE.test(interactionId)) refuse('GW_REQUEST_MALFORMED', 'x-fapi-interaction-id is not a valid header field value')
  return interactionId
}

export function createHeaderPolicy(options: HeaderPolicyOptions): HeaderPolicy {
  const prefix = (options.identityPrefix ?? DEFAULT_IDENTITY_PREFIX).toLowerCase()
  const stripAuthorization = options.stripAuthorization ?? true
  const stripDpop = options.stripDpop ?? true
  const rewriteDpopToBearer = options.rewriteDpopToBearer ?? false
  if (!HEADER_NAME_PREFIX.test(prefix)) throw new TypeError(`invalid identity header prefix: ${JSON.stringify(prefix)}`)
  if (rewriteDpopToBearer && stripAuthorization) throw new TypeError('rewriteDpopToBearer needs stripAuthorization: false')
  if (!/^[\x21-\x7e]+$/.test(options.publicHost)) throw new TypeError(`invalid public host: ${JSON.stringify(options.publicHost)}`)

  const identityNames = {
    clientId: prefix + IDENTITY_SUFFIXES.clientId,
    subject: prefix + IDENTITY_SUFFIXES.subject,
    scopes: prefix + IDENTITY_SUFFIXES.scopes,
    certThumbprint: prefix + IDENTITY_SUFFIXES.certThumbprint,
    keyThumbprint: prefix + IDENTITY_SUFFIXES.keyThumbprint,
    issuer: prefix + IDENTITY_SUFFIXES.issuer,
    route: prefix + IDENTITY_SUFFIXES.route,
  }
  const stripped = compileMatcher([
    ...HOP_BY_HOP,
    ...SET_BY_GATEWAY,
    ...DEFAULT_STRIP_HEADERS,
    ...(options.stripHeaders ?? []),
    ...Object.values(identityNames),
    `${prefix}*`,
    ...(stripAuthorization ? ['authorization'] : []),
    ...(stripDpop ? ['dpop'] : []),
  ])
  const forwardedProtoHost = `proto=https;host=${forwardedValue(options.publicHost)}`

  // Identity values repeat from request to request (one client, one token): each is checked once.
  const checkedValues = new Map<string, string>()
  const checkedIdentityValue = (value: string, what: string): string => {
    let octets = checkedValues.get(value)
    if (octets === undefined) {
      octets = identityValue(value, what)
      if (checkedValues.size >= CHECKED_VALUES_LIMIT) checkedValues.clear()
      checkedValues.set(value, octets)
    }
    return octets
  }

  function buildRequestHeaders(rawHeaders: readonly string[], context: RequestContext): ForwardHeaders {
    const interactionId = checkInteractionId(context.interactionId)
    const nominated = connectionOptions(rawHeaders)
    const headers: string[] = []
    let contentLength = false
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!
      let value = rawHeaders[i + 1]!
      const lower = name.toLowerCase()
      if (matches(stripped, lower) || nominated?.has(lower)) continue
      if (lower === 'content-length') {
        // The client's server already rejected conflicting lengths; the upstream gets one.
        if (contentLength) continue
        contentLength = true
      }
      if (lower === 'authorization' && rewriteDpopToBearer) value = value.replace(/^dpop(?= )/i, 'Bearer')
      headers.push(name, value)
    }

    const { identity } = context
    const add = (name: string, value: string | undefined, what: string) => {
      if (value !== undefined) headers.push(name, checkedIdentityValue(value, what))
    }
    add(identityNames.clientId, identity.clientId, 'client_id')
    add(identityNames.subject, identity.subject, 'sub')
    for (const scope of identity.scopes) {
      if (!SCOPE_TOKEN.test(scope)) refuse('GW_TOKEN_INVALID', 'a scope is not an RFC 6749 scope-token')
    }
    headers.push(identityNames.scopes, identity.scopes.join(' '))
    add(identityNames.certThumbprint, identity.certThumbprint, 'x5t#S256')
    add(identityNames.keyThumbprint, identity.keyThumbprint, 'jkt')
    add(identityNames.issuer, identity.issuer, 'iss')
    add(identityNames.route, identity.route, 'route')

    const ip = normalizeIp(context.clientIp)
    if (ip !== undefined) headers.push('x-forwarded-for', ip)
    headers.push('x-forwarded-proto', 'https', 'x-forwarded-host', options.publicHost)
    headers.push('forwarded', `for=${forwardedFor(ip)};${forwardedProtoHost}`)
    headers.push(INTERACTION_ID, interactionId)
    return { request: headers, interactionId }
  }

  return { buildRequestHeaders }
}

const RESPONSE_STRIPPED = new Set([...HOP_BY_HOP, INTERACTION_ID])

/**
 * The upstream's response header list without hop-by-hop fields, with a Date
 * (RFC 9110 §6.6.1; the upstream's own if it sent one) and the interaction id.
 */
export function buildResponseHeaders(rawHeaders: readonly string[], interactionId: string, now: number): string[] {
  const nominated = connectionOptions(rawHeaders)
  const headers: string[] = []
  let date = false
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!
    const lower = name.toLowerCase()
    if (RESPONSE_STRIPPED.has(lower) || nominated?.has(lower)) continue
    if (lower === 'date') {
      if (date) continue
      date = true
    }
    headers.push(name, rawHeaders[i + 1]!)
  }
  if (!date) headers.push('date', new Date(now).toUTCString())
  headers.push(INTERACTION_ID, checkInteractionId(interactionId))
  return headers
}
