// The authorization server's signing keys, fetched from its jwks_uri (RFC 8414 §2, RFC 9068 §4).
// Fetched over TLS >= 1.2 with certificate and name checks (SP 5.2.1, RFC 9525), cached, refreshed
// on an unknown kid at most once per cool-down, and kept when the issuer cannot be reached.
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto'
import { Agent, request } from 'undici'
import type { JWSHeaderParameters } from 'jose'
import { refuse } from '../errors.ts'
import type { Clock, Logger } from '../types.ts'
import { createLru } from '../util/lru.ts'

interface KeyFamily {
  readonly kty: 'RSA' | 'EC' | 'OKP'
  readonly crv?: string
}

/** Asymmetric JWS algorithms the gateway can verify. none, HS* and RS* are never here (RFC 8725 §3.1, SP 5.4.1). */
export const signingAlgorithms: ReadonlyMap<string, KeyFamily> = new Map<string, KeyFamily>([
  ['PS256', { kty: 'RSA' }],
  ['PS384', { kty: 'RSA' }],
  ['PS512', { kty: 'RSA' }],
  ['ES256', { kty: 'EC', crv: 'P-256' }],
  ['ES384', { kty: 'EC', crv: 'P-384' }],
  ['ES512', { kty: 'EC', crv: 'P-521' }],
  ['EdDSA', { kty: 'OKP', crv: 'Ed25519' }],
  ['Ed25519', { kty: 'OKP', crv: 'Ed25519' }],
])

export interface IssuerAgentOptions {
  readonly caPem?: string
  readonly timeoutMs?: number
  readonly maxResponseBytes?: number
  /** Connections per origin. Default 4. */
  readonly connections?: number
  /** For the TCP and TLS connection alone; timeoutMs by default. */
  readonly connectTimeoutMs?: number
  /** The gateway's own client certificate, for a server that wants mTLS from it. */
  readonly clientCertificate?: { readonly certPem: string; readonly keyPem: string }
}

/** An undici Agent for connections to the authorization server (also used for introspection and the façade's legacy calls). */
export function createIssuerAgent(options: IssuerAgentOptions = {}): Agent {
  const timeoutMs = options.timeoutMs ?? 5_000
  return new Agent({
    connect: {
      ca: options.caPem,
      ...(options.clientCertificate && { cert: options.clientCertificate.certPem, key: options.clientCertificate.keyPem }),
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
      timeout: options.connectTimeoutMs ?? timeoutMs,
    },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    maxResponseSize: options.maxResponseBytes ?? 256 * 1024,
    connections: options.connections ?? 4,
  })
}

export function requireHttpsUrl(url: string, what: string): void {
  if (new URL(url).protocol !== 'https:') throw new TypeError(`${what} must be an https:// URL`)
}

export interface RemoteKeySetOptions {
  readonly uri: string
  readonly now: Clock
  readonly caPem?: string
  /** Least time between two fetches caused by unknown kids. Default 30 s. */
  readonly cooldownMs?: number
  /** Refetch in the background once the set is this old (checked on use). Default: never. */
  readonly maxAgeMs?: number
  /** How long a kid still unknown after a refetch is refused without refetching. Default 60 s. */
  readonly unknownKidTtlMs?: number
  readonly timeoutMs?: number
  readonly maxResponseBytes?: number
  readonly logger?: Logger
}

export interface RemoteKeySet {
  /** A jose key resolver: picks the key by kid, kty, alg and crv (SP 5.4.3). Header jku/x5u/jwk/x5c are never read. */
  getKey(protectedHeader: JWSHeaderParameters): Promise<KeyObject>
  /** A set with at least one usable key is loaded. With none, starts a background fetch once the cool-down has passed. */
  ready(): boolean
  /** Fetches now, sharing a fetch already under way; rejects with GW_ISSUER_UNAVAILABLE when it fails. */
  refresh(): Promise<void>
  close(): Promise<void>
}

interface PublishedKey {
  readonly kid: string | undefined
  readonly kty: string
  readonly crv: string | undefined
  readonly alg: string | undefined
  readonly key: KeyObject
}

const privateMembers = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth']
const strongCurves: Record<string, string> = { 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1' }

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function optionalString(value: unknown): string | undefined {
  if (value !== undefined && typeof value !== 'string') throw new Error('member is not a string')
  return value
}

/** One JWK from the set, or an Error saying why it is not used (SP 5.4.1-2/-3 key sizes, RFC 7517 §4.2-4.3). */
function toPublishedKey(jwk: unknown): PublishedKey | Error {
  try {
    if (!isRecord(jwk)) return new Error('not an object')
    if (privateMembers.some((member) => member in jwk)) return new Error('has private members')
    if (jwk.use !== undefined && jwk.use !== 'sig') return new Error('use is not sig')
    if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify'))) return new Error('key_ops lacks verify')
    const kid = optionalString(jwk.kid)
    const alg = optionalString(jwk.alg)
    const crv = optionalString(jwk.crv)
    const family = alg === undefined ? undefined : signingAlgorithms.get(alg)
    if (alg !== undefined && (!family || family.kty !== jwk.kty || family.crv !== crv)) return new Error(`alg ${alg} not usable`)
    let publicJwk: JsonWebKey
    if (jwk.kty === 'RSA') publicJwk = { kty: 'RSA', n: optionalString(jwk.n), e: optionalString(jwk.e) }
    else if (jwk.kty === 'EC') publicJwk = { kty: 'EC', crv, x: optionalString(jwk.x), y: optionalString(jwk.y) }
    else if (jwk.kty === 'OKP') publicJwk = { kty: 'OKP', crv, x: optionalString(jwk.x) }
    else return new Error('kty not supported')
    const key = createPublicKey({ key: publicJwk, format: 'jwk' })
    const details = key.asymmetricKeyDetails ?? {}
    if (jwk.kty === 'RSA' && (details.modulusLength ?? 0) < 2048) return new Error('RSA key below 2048 bits')
    if (jwk.kty === 'EC' && (crv === undefined || strongCurves[crv] !== details.namedCurve)) return new Error('EC curve not allowed')
    if (jwk.kty === 'OKP' && (crv !== 'Ed25519' || key.asymmetricKeyType !== 'ed25519')) return new Error('only Ed25519 is allowed')
    return { kid, kty: jwk.kty, crv, alg, key }
  } catch (error) {
    return error instanceof Error ? error : new Error('unreadable key')
  }
}

function parseKeySet(text: string): { keys: PublishedKey[]; skipped: string[] } {
  const parsed: unknown = JSON.parse(text)
  if (!isRecord(parsed) || !Array.isArray(parsed.keys)) throw new Error('not a JWK Set')
  const keys: PublishedKey[] = []
  const skipped: string[] = []
  for (const jwk of parsed.keys) {
    const result = toPublishedKey(jwk)
    if (result instanceof Error) skipped.push(`${isRecord(jwk) ? String(jwk.kid) : '?'}: ${result.message}`)
    else keys.push(result)
  }
  return { keys, skipped }
}

/** SP 5.4.3: with duplicate kids, kty, alg and crv decide. undefined means no key with this kid (or none at all without kid). */
function selectKey(keys: readonly PublishedKey[], alg: string, kid: string | undefined): KeyObject | undefined {
  const family = signingAlgorithms.get(alg) ?? refuse('GW_TOKEN_INVALID', 'alg')
  const withKid = kid === undefined ? keys : keys.filter((k) => k.kid === kid)
  const fitting = withKid.filter((k) => k.kty === family.kty && k.crv === family.crv && (k.alg === undefined || k.alg === alg))
  if (fitting.length === 0) {
    if (withKid.length > 0 && kid !== undefined) refuse('GW_TOKEN_INVALID', `no key with this kid fits alg ${alg}`)
    return undefined
  }
  const [first] = fitting as [PublishedKey, ...PublishedKey[]]
  if (fitting.some((k) => !k.key.equals(first.key))) {
    refuse('GW_TOKEN_INVALID', kid === undefined ? 'token has no kid and several keys fit' : 'several keys fit this kid and alg')
  }
  return first.key
}

/**
 * A jose key resolver over a key set given inline (a partner's registered jwks), with the same
 * key rules as a fetched set. Throws GW_TOKEN_INVALID when no key fits; a set without one usable key is a TypeError.
 */
export function createStaticKeyResolver(jwks: unknown): (protectedHeader: JWSHeaderParameters) => KeyObject {
  const { keys } = parseKeySet(JSON.stringify(jwks))
  if (keys.length === 0) throw new TypeError('the key set has no usable signing key')
  return ({ alg, kid }) => {
    if (typeof alg !== 'string' || (kid !== undefined && typeof kid !== 'string')) refuse('GW_TOKEN_INVALID', 'malformed')
    return selectKey(keys, alg, kid) ?? refuse('GW_TOKEN_INVALID', 'unknown kid')
  }
}

export function createRemoteKeySet(options: RemoteKeySetOptions): RemoteKeySet {
  requireHttpsUrl(options.uri, 'jwksUri')
  const { uri, now, logger } = options
  const cooldownMs = options.cooldownMs ?? 30_000
  const unknownKidTtlMs = options.unknownKidTtlMs ?? 60_000
  const timeoutMs = options.timeoutMs ?? 5_000
  const agent = createIssuerAgent({ caPem: options.caPem, timeoutMs, maxResponseBytes: options.maxResponseBytes })
  const closing = new AbortController()
  const unknownKids = createLru<string, number>(1_000)
  let keys: readonly PublishedKey[] | undefined
  let fetchedAtMs = -Infinity
  let attemptedAtMs = -Infinity
  let lastAttemptFailed = false
  let inFlight: Promise<void> | undefined

  async function fetchKeySet(): Promise<void> {
    attemptedAtMs = now()
    try {
      if (closing.signal.aborted) throw new Error('key set closed')
      const response = await request(uri, {
        dispatcher: agent,
        method: 'GET',
        headers: { accept: 'application/jwk-set+json, application/json' },
        signal: AbortSignal.any([closing.signal, AbortSignal.timeout(timeoutMs)]),
      })
      if (response.statusCode !== 200) {
        await response.body.dump()
        throw new Error(`status ${response.statusCode}`)
      }
      const parsed = parseKeySet(await response.body.text())
      if (parsed.skipped.length > 0) logger?.warn({ jwksUri: uri, skipped: parsed.skipped }, 'JWKS keys not used')
      keys = parsed.keys
      fetchedAtMs = now()
      lastAttemptFailed = false
    } catch (error) {
      lastAttemptFailed = true
      const reason = error instanceof Error ? `${(error as { code?: string }).code ?? ''} ${error.message}`.trim() : 'unknown'
      logger?.warn({ jwksUri: uri, reason }, 'JWKS fetch failed; keeping the last good key set')
      refuse('GW_ISSUER_UNAVAILABLE', `jwks fetch failed: ${reason}`, error)
    }
  }

  function refresh(): Promise<void> {
    inFlight ??= fetchKeySet().finally(() => {
      inFlight = undefined
    })
    return inFlight
  }

  function refreshInBackground(): void {
    refresh().catch(() => undefined)
  }

  const coolingDown = () => now() - attemptedAtMs < cooldownMs

  refreshInBackground()

  return {
    async getKey(protectedHeader) {
      const { alg, kid } = protectedHeader
      if (typeof alg !== 'string' || (kid !== undefined && (typeof kid !== 'string' || kid.length > 256))) refuse('GW_TOKEN_INVALID', 'malformed')
      if (options.maxAgeMs !== undefined && !inFlight && !coolingDown() && now() - fetchedAtMs >= options.maxAgeMs) refreshInBackground()
      const known = keys && selectKey(keys, alg, kid)
      if (known) return known
      if (kid !== undefined && (unknownKids.get(kid) ?? -Infinity) > now()) refuse('GW_TOKEN_INVALID', 'unknown kid')
      if (inFlight || !coolingDown()) {
        await refresh().catch(() => undefined)
        const fetched = keys && selectKey(keys, alg, kid)
        if (fetched) return fetched
        if (keys && !lastAttemptFailed && kid !== undefined) unknownKids.set(kid, now() + unknownKidTtlMs)
      }
      if (!keys || lastAttemptFailed) refuse('GW_ISSUER_UNAVAILABLE', 'no key for this token and the JWKS cannot be fetched')
      return refuse('GW_TOKEN_INVALID', 'unknown kid')
    },
    ready() {
      const loaded = keys !== undefined && keys.length > 0
      if (!loaded && !inFlight && !coolingDown() && !closing.signal.aborted) refreshInBackground()
      return loaded
    },
    refresh,
    async close() {
      closing.abort()
      await agent.destroy()
    },
  }
}
