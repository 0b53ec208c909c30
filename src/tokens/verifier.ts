// Access-token validation: a JWS is verified as an RFC 9068 JWT by the issuer its `iss` names,
// anything else is introspected (RFC 7662). Verified JWTs are cached by token hash until exp.
import { decodeJwt, decodeProtectedHeader } from 'jose'
import { isGatewayError, refuse } from '../errors.ts'
import { isCanonicalBase64url } from '../util/base64url.ts'
import type { AccessToken, Clock, FacadeValidation, Logger, PresentedToken } from '../types.ts'
import { createIntrospectionClient, type IntrospectionClient, type IntrospectionObserver, type IntrospectionSettings } from './introspection.ts'
import { createRemoteKeySet, signingAlgorithms, type RemoteKeySet } from './jwks.ts'
import { verifyJwtAccessToken, type JwtIssuerSettings } from './jwt.ts'
import { createTokenCache, type TokenCache } from './token-cache.ts'
import { checkTokenShape, defaultTokenShape } from './token-shape.ts'

export type { IntrospectionSettings } from './introspection.ts'

export interface IssuerSettings extends JwtIssuerSettings {
  /** Where JWT access tokens' keys come from; absent for an issuer of opaque tokens only. */
  readonly jwksUri?: string
  /** CA bundle (PEM) for the JWKS connection; the system roots when absent. */
  readonly caPem?: string
  readonly jwksCooldownSeconds?: number
  readonly jwksMaxAgeSeconds?: number
  readonly introspection?: IntrospectionSettings
  /** Also introspect JWTs so revoked ones are refused (SP 5.3.4-3). Needs introspection. */
  readonly introspectJwt?: boolean
  readonly introspectJwtCacheSeconds?: number
  /**
   * Behind the authorization-server façade: tokens carry no binding, it comes from the binding record. 'introspection'
   * introspects every token (JWTs too), 'jwks' verifies JWTs only, 'registry' validates nothing here (the record does).
   */
  readonly facade?: FacadeValidation
}

export interface TokenVerifierDeps {
  readonly now: Clock
  readonly logger?: Logger
  /** Default: a cache of verifiedTokenCacheSize (10 000) entries. */
  readonly tokenCache?: TokenCache
  readonly verifiedTokenCacheSize?: number
  readonly introspectionObserver?: IntrospectionObserver
}

export interface TokenExpectation {
  /** Issuers the route accepts, by configured name. */
  readonly issuerNames: readonly string[]
  /** The route's audience; the issuer's configured audience when undefined. */
  readonly audience: string | undefined
}

/** Who presented the token. */
export interface VerifyContext {
  /** Bounds that address's introspection calls in flight. */
  readonly clientAddress?: string
}

export interface TokenVerifier {
  verify(presented: PresentedToken, expectation: TokenExpectation, nowMs: number, context?: VerifyContext): Promise<AccessToken>
  /** Every issuer with a jwksUri has a usable key set. */
  ready(): boolean
  close(): Promise<void>
}

interface Issuer {
  readonly settings: IssuerSettings
  readonly keys: RemoteKeySet | undefined
  readonly introspection: IntrospectionClient | undefined
}

const compactJws = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

function looksLikeJws(token: string): boolean {
  if (!compactJws.test(token)) return false
  try {
    return typeof decodeProtectedHeader(token).alg === 'string'
  } catch {
    return false
  }
}

/** The unverified `iss`, only to choose which issuer's keys verify the token. */
function peekIssuer(token: string): string {
  try {
    const { iss } = decodeJwt(token)
    if (typeof iss === 'string') return iss
  } catch {
    // refused below
  }
  return refuse('GW_TOKEN_INVALID', 'malformed: no readable iss')
}

function validateSettings(settings: IssuerSettings): void {
  if (!settings.jwksUri && !settings.introspection && settings.facade !== 'registry')
    throw new TypeError(`issuer ${settings.name}: needs jwksUri or introspection`)
  if (settings.facade === 'introspection' && !settings.introspection) throw new TypeError(`issuer ${settings.name}: facade introspection needs introspection`)
  if (settings.facade === 'jwks' && !settings.jwksUri) throw new TypeError(`issuer ${settings.name}: facade jwks needs jwksUri`)
  if (settings.introspectJwt && !settings.introspection) throw new TypeError(`issuer ${settings.name}: introspectJwt needs introspection`)
  const unsafe = (settings.algorithms ?? []).filter((alg) => !signingAlgorithms.has(alg))
  if (unsafe.length > 0) throw new TypeError(`issuer ${settings.name}: algorithms not allowed: ${unsafe.join(', ')}`)
}

function requireAudience(token: AccessToken, audience: string): void {
  if (!token.audiences.includes(audience)) refuse('GW_TOKEN_AUDIENCE', 'aud')
}

/** Which accepted issuer an opaque token can be from: one that introspects it, or one whose record alone validates it. */
function takesOpaqueTokens(issuer: Issuer): boolean {
  const { facade } = issuer.settings
  return facade === 'registry' || (issuer.introspection !== undefined && facade !== 'jwks')
}

/**
 * A façade token validated by its binding record alone: nothing is known of it until the record is read (src/checks/registry-binding.ts
 * fills it in and refuses it when there is none). Only its shape is checked here, as before an introspection call.
 */
function awaitingRecord(issuer: Issuer, format: AccessToken['format']): AccessToken {
  const { name, issuer: iss } = issuer.settings
  return {
    format,
    issuerName: name,
    iss,
    sub: undefined,
    clientId: undefined,
    scopes: new Set(),
    audiences: [],
    exp: undefined,
    jti: undefined,
    binding: {},
    tokenType: undefined,
    facade: 'registry',
  }
}

export function createTokenVerifier(issuerSettings: readonly IssuerSettings[], deps: TokenVerifierDeps): TokenVerifier {
  issuerSettings.forEach(validateSettings)
  const names = issuerSettings.map((settings) => settings.name)
  if (new Set(names).size !== names.length) throw new TypeError('issuer names must be unique')
  const issuers = new Map<string, Issuer>()
  for (const settings of issuerSettings) {
    // An issuer whose tokens the registry alone validates is never asked anything.
    const asked = settings.facade !== 'registry'
    const keys =
      asked && settings.jwksUri
        ? createRemoteKeySet({
            uri: settings.jwksUri,
            caPem: settings.caPem,
            now: deps.now,
            cooldownMs: (settings.jwksCooldownSeconds ?? 30) * 1000,
            maxAgeMs: settings.jwksMaxAgeSeconds === undefined ? undefined : settings.jwksMaxAgeSeconds * 1000,
            logger: deps.logger,
          })
        : undefined
    const introspection =
      asked && settings.introspection
        ? createIntrospectionClient(settings, { ...settings.introspection, caPem: settings.introspection.caPem ?? settings.caPem }, deps.introspectionObserver)
        : undefined
    issuers.set(settings.name, { settings, keys, introspection })
  }
  const tokenCache = deps.tokenCache ?? createTokenCache({ maxEntries: deps.verifiedTokenCacheSize ?? 10_000 })

  /** A string no signature vouches for: refused unless it can be one of the issuer's tokens, before it costs a call. */
  async function introspect(issuer: Issuer, token: string, audience: string, nowMs: number, context: VerifyContext): Promise<AccessToken> {
    const client = issuer.introspection ?? refuse('GW_TOKEN_INVALID', `issuer ${issuer.settings.name} has no introspection`)
    try {
      checkTokenShape(token, issuer.settings.introspection?.tokenShape ?? defaultTokenShape)
    } catch (error) {
      deps.introspectionObserver?.refused(issuer.settings.name, 'shape')
      throw error
    }
    return client.introspect(token, { audience, clientAddress: context.clientAddress }, nowMs)
  }

  /**
   * SP 5.3.4-3: a locally valid JWT may still have been revoked. Its signature is checked already, so only the
   * global introspection bounds apply, not the per-address one meant for strings nobody vouches for.
   */
  async function checkNotRevoked(issuer: Issuer, token: string, nowMs: number): Promise<void> {
    const { settings, introspection } = issuer
    if (!settings.introspectJwt || !introspection) return
    try {
      await introspection.introspect(token, { cacheTtlSeconds: settings.introspectJwtCacheSeconds ?? 10 }, nowMs)
    } catch (error) {
      if (isGatewayError(error) && error.code === 'GW_TOKEN_INACTIVE') refuse('GW_TOKEN_REVOKED', 'introspection: active false', error)
      throw error
    }
  }

  async function verifyUncached(
    presented: PresentedToken,
    allowed: readonly Issuer[],
    audienceOverride: string | undefined,
    nowMs: number,
    context: VerifyContext,
  ): Promise<AccessToken> {
    const { value } = presented
    if (looksLikeJws(value)) {
      if (!value.split('.').every(isCanonicalBase64url)) refuse('GW_TOKEN_INVALID', 'malformed: non-canonical base64url')
      const iss = peekIssuer(value)
      const issuer = allowed.find((i) => i.settings.issuer === iss) ?? refuse('GW_TOKEN_INVALID', 'iss')
      const audience = audienceOverride ?? issuer.settings.audience
      if (issuer.settings.facade === 'registry') return awaitingRecord(issuer, 'jwt')
      if (!issuer.keys || issuer.settings.facade === 'introspection') return introspect(issuer, value, audience, nowMs, context)
      const token = await verifyJwtAccessToken(value, { ...issuer.settings, audience }, issuer.keys.getKey, nowMs)
      tokenCache.set(presented.hash, token, nowMs)
      return token
    }
    const introspecting = allowed.filter(takesOpaqueTokens)
    if (introspecting.length === 0) refuse('GW_TOKEN_INVALID', 'not a JWS and no accepted issuer introspects')
    if (introspecting.length > 1) refuse('GW_INTERNAL', 'opaque token but several accepted issuers introspect')
    const [issuer] = introspecting as [Issuer]
    if (issuer.settings.facade === 'registry') {
      checkTokenShape(value, issuer.settings.introspection?.tokenShape ?? defaultTokenShape)
      return awaitingRecord(issuer, 'opaque')
    }
    return introspect(issuer, value, audienceOverride ?? issuer.settings.audience, nowMs, context)
  }

  return {
    async verify(presented, expectation, nowMs, context = {}) {
      const allowed = expectation.issuerNames.flatMap((name) => issuers.get(name) ?? [])
      const cached = tokenCache.get(presented.hash, nowMs)
      const cachedIssuer = cached && allowed.find((i) => i.settings.name === cached.issuerName)
      const token = cached && cachedIssuer ? cached : await verifyUncached(presented, allowed, expectation.audience, nowMs, context)
      const issuer = issuers.get(token.issuerName) as Issuer
      const { facade } = issuer.settings
      // A record names no audience: the issuer it was written for (checked with the record) stands for it.
      if (facade === 'registry') return token
      requireAudience(token, expectation.audience ?? issuer.settings.audience)
      if (token.format === 'jwt') await checkNotRevoked(issuer, presented.value, nowMs)
      return facade ? { ...token, facade } : token
    },
    ready() {
      return [...issuers.values()].every((issuer) => !issuer.keys || issuer.keys.ready())
    },
    async close() {
      await Promise.all([...issuers.values()].flatMap((i) => [i.keys?.close(), i.introspection?.close()]))
    },
  }
}
