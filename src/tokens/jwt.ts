// JWT access tokens (RFC 9068 §4), verified with jose against the issuer's published keys.
import type { KeyObject } from 'node:crypto'
import { errors, jwtVerify, type JWSHeaderParameters, type JWTPayload } from 'jose'
import { GatewayError, isGatewayError, refuse } from '../errors.ts'
import type { AccessToken, TokenBinding } from '../types.ts'
import { signingAlgorithms } from './jwks.ts'

export interface JwtIssuerSettings {
  /** The configured name of this issuer (AccessToken.issuerName). */
  readonly name: string
  /** Compared exactly with `iss` (RFC 9068 §4). */
  readonly issuer: string
  /** This resource server's identifier; `aud` must contain it. */
  readonly audience: string
  /** Default PS256, ES256, EdDSA (SP 5.4.1). Anything outside `signingAlgorithms` is dropped. */
  readonly algorithms?: readonly string[]
  /** Default true: `typ` must be at+jwt (RFC 9068 §2.1). false also accepts no typ or JWT. */
  readonly requireTyp?: boolean
  /** Leeway for exp/nbf/iat, default 10 s; nbf/iat are never allowed more than 60 s ahead. */
  readonly clockToleranceSeconds?: number
}

export type KeyResolver = (protectedHeader: JWSHeaderParameters) => Promise<KeyObject>

export const defaultAccessTokenAlgorithms: readonly string[] = ['PS256', 'ES256', 'EdDSA']

// SP 5.3.2.1-13 Note 3: up to 10 s ahead is fine, more than 60 s is not.
const maxFutureSeconds = 60
const maxTokenLength = 16 * 1024

export async function verifyJwtAccessToken(token: string, issuer: JwtIssuerSettings, keys: KeyResolver, nowMs: number): Promise<AccessToken> {
  if (token.length > maxTokenLength) refuse('GW_TOKEN_INVALID', 'malformed: too long')
  const tolerance = issuer.clockToleranceSeconds ?? 10
  const requireTyp = issuer.requireTyp ?? true
  const algorithms = (issuer.algorithms ?? defaultAccessTokenAlgorithms).filter((alg) => signingAlgorithms.has(alg))
  let verified: { payload: JWTPayload; protectedHeader: JWSHeaderParameters }
  try {
    verified = await jwtVerify(token, keys, {
      algorithms,
      issuer: issuer.issuer,
      audience: issuer.audience,
      requiredClaims: ['exp'],
      clockTolerance: tolerance,
      currentDate: new Date(nowMs),
      typ: requireTyp ? 'at+jwt' : undefined,
    })
  } catch (error) {
    throw toGatewayError(error)
  }
  const { payload, protectedHeader } = verified
  if (!requireTyp) checkLenientTyp(protectedHeader.typ)
  const latest = Math.floor(nowMs / 1000) + Math.min(tolerance, maxFutureSeconds)
  if (typeof payload.iat === 'number' && payload.iat > latest) refuse('GW_TOKEN_INVALID', 'iat in the future')
  if (typeof payload.nbf === 'number' && payload.nbf > latest) refuse('GW_TOKEN_INVALID', 'nbf')
  return claimsToAccessToken(payload, { format: 'jwt', issuerName: issuer.name, iss: issuer.issuer, tokenType: undefined })
}

function checkLenientTyp(typ: unknown): void {
  if (typ === undefined) return
  const normalized = typeof typ === 'string' ? typ.toLowerCase().replace(/^application\//, '') : ''
  if (normalized !== 'at+jwt' && normalized !== 'jwt') refuse('GW_TOKEN_INVALID', 'typ')
}

function toGatewayError(error: unknown): GatewayError {
  if (isGatewayError(error)) return error
  const invalid = (detail: string) => new GatewayError('GW_TOKEN_INVALID', { detail, cause: error })
  if (error instanceof errors.JWTExpired) return new GatewayError('GW_TOKEN_EXPIRED', { detail: 'exp', cause: error })
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'aud') return new GatewayError('GW_TOKEN_AUDIENCE', { detail: 'aud', cause: error })
    return invalid(`${error.claim} ${error.reason}`)
  }
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) return invalid('alg')
  if (error instanceof errors.JWSSignatureVerificationFailed) return invalid('signature')
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) return invalid('malformed')
  return invalid('key not usable for this token')
}

function optionalString(claims: Record<string, unknown>, name: string): string | undefined {
  const value = claims[name]
  if (value !== undefined && typeof value !== 'string') refuse('GW_TOKEN_INVALID', `${name} is not a string`)
  return value
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string')
}

function readScopes(claims: Record<string, unknown>): Set<string> {
  if (claims.scope !== undefined) {
    if (typeof claims.scope !== 'string') refuse('GW_TOKEN_INVALID', 'scope is not a string')
    return new Set(claims.scope.split(' ').filter(Boolean))
  }
  if (claims.scp !== undefined) {
    if (!isStringArray(claims.scp)) refuse('GW_TOKEN_INVALID', 'scp is not an array of strings')
    return new Set(claims.scp)
  }
  return new Set()
}

function readAudiences(aud: unknown): string[] {
  if (aud === undefined) return []
  if (typeof aud === 'string') return [aud]
  if (isStringArray(aud)) return aud
  return refuse('GW_TOKEN_INVALID', 'aud is not a string or an array of strings')
}

/** RFC 9449 §6.1 cnf.jkt, RFC 8705 §3.1 cnf.x5t#S256. */
function readBinding(cnf: unknown): TokenBinding {
  if (cnf === undefined) return {}
  if (typeof cnf !== 'object' || cnf === null || Array.isArray(cnf)) refuse('GW_TOKEN_INVALID', 'cnf is not an object')
  const confirmation = cnf as Record<string, unknown>
  const jkt = optionalString(confirmation, 'jkt')
  const x5t = optionalString(confirmation, 'x5t#S256')
  return { ...(jkt !== undefined && { jkt }), ...(x5t !== undefined && { x5t }) }
}

/** Maps JWT claims (RFC 9068 §2.2) or an introspection response (RFC 7662 §2.2) to an AccessToken. */
export function claimsToAccessToken(claims: Record<string, unknown>, source: Pick<AccessToken, 'format' | 'issuerName' | 'iss' | 'tokenType'>): AccessToken {
  const exp = claims.exp
  if (exp !== undefined && (typeof exp !== 'number' || !Number.isFinite(exp))) refuse('GW_TOKEN_INVALID', 'exp is not a number')
  return {
    ...source,
    sub: optionalString(claims, 'sub'),
    clientId: optionalString(claims, 'client_id'),
    scopes: readScopes(claims),
    audiences: readAudiences(claims.aud),
    exp,
    jti: optionalString(claims, 'jti'),
    binding: readBinding(claims.cnf),
  }
}
