// The header fields that cross the gateway. Everything a client could use to speak for the
// gateway (identity, forwarding, client-certificate headers, credentials) or to make the upstream
// run another method or path (override headers) is removed before the gateway's own values are
// added, so the upstream sees only what the gateway vouches for. On the way back, headers that
// describe the internal servers are removed and the upstream's own URLs are made public ones.
import { isIPv4, isIPv6 } from 'node:net'
import { refuse } from '../errors.ts'
import { isInteractionId } from '../interaction-id.ts'
import type { PathMapping } from '../routes/route-table.ts'

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
  /**
   * Inbound header names with `_`, which CGI, WSGI, Rack and PHP read as `-`. Default 'refuse'
   * (GW_HEADER_UNDERSCORE); 'drop' removes them; 'allow' forwards them, matched as `-` against the strip lists.
   */
  readonly underscoreHeaders?: UnderscoreHeaders
  /** Default true: OVERRIDE_HEADERS are removed and OVERRIDE_PARAMETERS refused (GW_METHOD_OVERRIDE). */
  readonly blockOverrides?: boolean
  /** Upstream response headers removed in addition to DEFAULT_RESPONSE_STRIP_HEADERS; a trailing '*' matches a prefix. */
  readonly stripResponseHeaders?: readonly string[]
  /** Default true: Location and Content-Location URLs on the upstream's own origin and base path point at publicBaseUrl. */
  readonly rewriteLocation?: boolean
  /** The partners' URL of the gateway (scheme, host, port, optional path); default `https://<publicHost>`. */
  readonly publicBaseUrl?: string
}

export type UnderscoreHeaders = 'refuse' | 'drop' | 'allow'

export interface RequestContext {
  readonly identity: Identity
  /** The TCP peer address; undefined when unknown. */
  readonly clientIp: string | undefined
  /** Path and query as received. */
  readonly target: string
  /** The application/x-www-form-urlencoded body, when the gateway read it. */
  readonly formBody?: Buffer
  /** The route's path rewrite for this request, when it has one: reversed in the upstream's Location. */
  readonly pathMapping?: PathMapping
  /** The value the gateway answers with and passes on (RFC 4122 UUID, echoed or generated). */
  readonly interactionId: string
}

/** What `forward()` needs: the upstream request's header list (name, value, name, value …). */
export interface ForwardHeaders {
  readonly request: string[]
  readonly interactionId: string
  /** How the upstream's answer is relayed; DEFAULT_RESPONSE_RULES when absent. */
  readonly response?: ResponseRules
}

/** Where the upstream's own URLs start. */
export interface UpstreamOrigin {
  /** `http(s)://host[:port]`, as WHATWG URL serialises it. */
  readonly origin: string
  /** '' or a path without a trailing slash. */
  readonly basePath: string
}

/** What is removed from and rewritten in the upstream's response head. */
export interface ResponseRules {
  readonly strip: NameMatcher
  /** The gateway's public base URL without a trailing slash; Location is not rewritten when absent. */
  readonly publicBaseUrl: string | undefined
  readonly pathMapping?: PathMapping
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

/** Headers some frameworks and servers (IIS URL Rewrite, Symfony, Laravel, ASP.NET) take as the real method or path. */
export const OVERRIDE_HEADERS: readonly string[] = [
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-original-method',
  'x-original-url',
  'x-original-uri',
  'x-rewrite-url',
]

/** Query and form parameters Rails, Laravel and Symfony take as the real method. */
export const OVERRIDE_PARAMETERS: readonly string[] = ['_method']

/** Response headers that name or fingerprint the servers behind the gateway. */
export const DEFAULT_RESPONSE_STRIP_HEADERS: readonly string[] = [
  'server',
  'x-powered-by',
  'via',
  'x-aspnet-version',
  'x-aspnetmvc-version',
  'x-runtime',
  'x-generator',
  'x-backend*',
  'x-served-by',
  'x-server',
  'x-upstream*',
  'x-sourcefiles',
  'x-debug-token',
  'x-debug-token-link',
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

export interface NameMatcher {
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

const RESPONSE_STRIPPED = [...HOP_BY_HOP, INTERACTION_ID]
const DEFAULT_RESPONSE_RULES: ResponseRules = { strip: compileMatcher([...RESPONSE_STRIPPED, ...DEFAULT_RESPONSE_STRIP_HEADERS]), publicBaseUrl: undefined }
const OVERRIDE_PARAMETER_NAMES = new Set(OVERRIDE_PARAMETERS)

function publicBase(url: string): string {
  const parsed = new URL(url)
  return parsed.origin + parsed.pathname.replace(/\/+$/, '')
}

/** PHP reads `.`, ` ` and `[` in a parameter name as `_`, so `.method` is `_method` there. */
function hasOverrideParameter(query: string): boolean {
  // Most queries name no method at all; a percent-encoded one could spell it.
  if (!/method|%/i.test(query)) return false
  for (const name of new URLSearchParams(query).keys()) {
    if (OVERRIDE_PARAMETER_NAMES.has(name.trim().toLowerCase().replace(/[ .[]/g, '_'))) return true
  }
  return false
}

function checkOverrideParameters(target: string, formBody: Buffer | undefined): void {
  const queryAt = target.indexOf('?')
  if (queryAt !== -1 && hasOverrideParameter(target.slice(queryAt + 1))) refuse('GW_METHOD_OVERRIDE', 'method override parameter in the query string')
  if (formBody !== undefined && hasOverrideParameter(formBody.toString('latin1'))) refuse('GW_METHOD_OVERRIDE', 'method override parameter in the form body')
}

/**
 * An absolute (or scheme-relative) URL on the upstream's origin, under its base path, made the
 * same URL under the public base, with the route's path rewrite undone where the path starts with
 * what it wrote; relative references and other origins are left as they are.
 */
function publicLocation(value: string, upstream: UpstreamOrigin, publicBaseUrl: string, mapping: PathMapping | undefined): string {
  if (!/^(?:[a-z][a-z0-9+.-]*:|[\\/]{2})/i.test(value)) return value
  const { basePath } = upstream
  let url: URL
  try {
    url = new URL(value, upstream.origin)
  } catch {
    return value
  }
  if (url.origin !== upstream.origin) return value
  if (basePath !== '' && url.pathname !== basePath && !url.pathname.startsWith(`${basePath}/`)) return value
  let path = url.pathname.slice(basePath.length)
  if (mapping && (mapping.upstream === '' || path === mapping.upstream || path.startsWith(`${mapping.upstream}/`))) {
    path = mapping.public + path.slice(mapping.upstream.length)
  }
  return publicBaseUrl + path + url.search + url.hash
}

export function checkInteractionId(interactionId: string): string {
  if (!isInteractionId(interactionId)) refuse('GW_REQUEST_MALFORMED', 'x-fapi-interaction-id is not a valid interaction id')
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
  const underscores = options.underscoreHeaders ?? 'refuse'
  const blockOverrides = options.blockOverrides ?? true
  // Where `_` is let through, it is matched as the `-` an upstream may read it as.
  const spelled = underscores === 'allow' ? (name: string) => name.replaceAll('_', '-') : (name: string) => name

  const identityNames = {
    clientId: prefix + IDENTITY_SUFFIXES.clientId,
    subject: prefix + IDENTITY_SUFFIXES.subject,
    scopes: prefix + IDENTITY_SUFFIXES.scopes,
    certThumbprint: prefix + IDENTITY_SUFFIXES.certThumbprint,
    keyThumbprint: prefix + IDENTITY_SUFFIXES.keyThumbprint,
    issuer: prefix + IDENTITY_SUFFIXES.issuer,
    route: prefix + IDENTITY_SUFFIXES.route,
  }
  const stripped = compileMatcher(
    [
      ...HOP_BY_HOP,
      ...SET_BY_GATEWAY,
      ...DEFAULT_STRIP_HEADERS,
      ...(blockOverrides ? OVERRIDE_HEADERS : []),
      ...(options.stripHeaders ?? []),
      ...Object.values(identityNames),
      `${prefix}*`,
      ...(stripAuthorization ? ['authorization'] : []),
      ...(stripDpop ? ['dpop'] : []),
    ].map(spelled),
  )
  const response: ResponseRules = {
    strip: compileMatcher([...RESPONSE_STRIPPED, ...DEFAULT_RESPONSE_STRIP_HEADERS, ...(options.stripResponseHeaders ?? [])]),
    publicBaseUrl: options.rewriteLocation === false ? undefined : publicBase(options.publicBaseUrl ?? `https://${options.publicHost}`),
  }
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
    if (blockOverrides) checkOverrideParameters(context.target, context.formBody)
    const nominated = connectionOptions(rawHeaders)
    const headers: string[] = []
    let contentLength = false
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!
      let value = rawHeaders[i + 1]!
      const lower = name.toLowerCase()
      if (matches(stripped, spelled(lower)) || nominated?.has(lower)) continue
      // A name the gateway removes anyway (a load balancer's certificate header, say) is not refused.
      if (underscores !== 'allow' && lower.includes('_')) {
        if (underscores === 'drop') continue
        refuse('GW_HEADER_UNDERSCORE', 'a request header name contains an underscore')
      }
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
    return { request: headers, interactionId, response: context.pathMapping ? { ...response, pathMapping: context.pathMapping } : response }
  }

  return { buildRequestHeaders }
}

/**
 * The upstream's response header list without hop-by-hop fields and without the headers `rules`
 * strip, with a Date (RFC 9110 §6.6.1; the upstream's own if it sent one) and the interaction id.
 * `upstream` says where the upstream's own Location URLs start.
 */
export function buildResponseHeaders(
  rawHeaders: readonly string[],
  interactionId: string,
  now: number,
  rules: ResponseRules = DEFAULT_RESPONSE_RULES,
  upstream?: UpstreamOrigin,
): string[] {
  const nominated = connectionOptions(rawHeaders)
  const headers: string[] = []
  let date = false
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!
    let value = rawHeaders[i + 1]!
    const lower = name.toLowerCase()
    if (matches(rules.strip, lower) || nominated?.has(lower)) continue
    if (lower === 'date') {
      if (date) continue
      date = true
    }
    if ((lower === 'location' || lower === 'content-location') && rules.publicBaseUrl !== undefined && upstream !== undefined) {
      value = publicLocation(value, upstream, rules.publicBaseUrl, rules.pathMapping)
    }
    headers.push(name, value)
  }
  if (!date) headers.push('date', new Date(now).toUTCString())
  headers.push(INTERACTION_ID, checkInteractionId(interactionId))
  return headers
}
