// private_key_jwt (RFC 7523 §3, OIDC Core §9) as FAPI 2.0 SP §5.3.2.1 narrows it: aud is the issuer
// as a string, PS256/ES256/EdDSA only, iat/nbf at most the clock tolerance ahead, jti used once.
import { createHash } from 'node:crypto'
import { compactVerify, decodeJwt, decodeProtectedHeader, errors as joseErrors, type JWTPayload } from 'jose'
import { isGatewayError } from '../../errors.ts'
import type { ReplayStore } from '../../replay/store.ts'
import { OAuthError, oauthRefuse } from '../errors.ts'
import type { KeyResolver } from './partner-keys.ts'

export const JWT_BEARER_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
export const ASSERTION_ALGORITHMS: readonly string[] = ['PS256', 'ES256', 'EdDSA']
export const MAX_ASSERTION_BYTES = 8 * 1024
/** FAPI 2.0 SP §5.3.2.1-13: iat/nbf over 60 s ahead are refused whatever the configured tolerance. */
const MAX_FUTURE_SECONDS = 60
const MAX_JTI_LENGTH = 512

export interface AssertionRules {
  readonly issuer: string
  readonly clockToleranceSeconds: number
  readonly maxLifetimeSeconds: number
}

function invalid(detail: string, cause?: unknown): never {
  return oauthRefuse('AS_CLIENT_ASSERTION_INVALID', detail, cause)
}

/** The client an assertion names (iss = sub), read before its signature is checked, to find its keys. */
export function assertionClientId(assertion: string): { clientId: string; claims: JWTPayload } {
  if (Buffer.byteLength(assertion) > MAX_ASSERTION_BYTES) invalid(`size: over ${MAX_ASSERTION_BYTES} bytes`)
  let alg: unknown
  let claims: JWTPayload
  try {
    alg = decodeProtectedHeader(assertion).alg
    claims = decodeJwt(assertion)
  } catch (error) {
    return invalid('format: not a signed JWT', error)
  }
  if (typeof alg !== 'string' || !ASSERTION_ALGORITHMS.includes(alg)) invalid(`alg: ${typeof alg === 'string' ? alg : 'missing'} not accepted`)
  if (typeof claims.sub !== 'string' || claims.sub === '') invalid('sub: missing')
  if (typeof claims.iss !== 'string' || claims.iss === '') invalid('iss: missing')
  if (claims.iss !== claims.sub) invalid('iss: differs from sub')
  return { clientId: claims.sub, claims }
}

export async function verifyAssertionSignature(assertion: string, resolveKey: KeyResolver): Promise<void> {
  try {
    await compactVerify(assertion, resolveKey, { algorithms: [...ASSERTION_ALGORITHMS] })
  } catch (error) {
    if (error instanceof OAuthError) throw error
    if (isGatewayError(error)) {
      if (error.code === 'GW_ISSUER_UNAVAILABLE') invalid("signature: the partner's jwksUri cannot be fetched", error)
      invalid(`signature: ${error.detail ?? 'no fitting key'}`, error)
    }
    if (error instanceof joseErrors.JWSSignatureVerificationFailed) invalid('signature: does not verify', error)
    if (error instanceof joseErrors.JOSEAlgNotAllowed) invalid('alg: not accepted', error)
    invalid('signature: cannot be verified', error)
  }
}

/** The time and audience claims; returns the seconds the jti must be remembered. */
export function checkAssertionClaims(claims: JWTPayload, rules: AssertionRules, nowMs: number): number {
  const now = nowMs / 1000
  const tolerance = Math.min(rules.clockToleranceSeconds, MAX_FUTURE_SECONDS)
  if (Array.isArray(claims.aud)) invalid('aud: must be a single string, not an array')
  if (typeof claims.aud !== 'string') invalid('aud: missing')
  if (claims.aud !== rules.issuer) invalid('aud: not the issuer')
  if (typeof claims.exp !== 'number' || !Number.isFinite(claims.exp)) invalid('exp: missing')
  if (claims.exp <= now - tolerance) invalid('exp: expired')
  if (claims.exp > now + rules.maxLifetimeSeconds + tolerance) invalid(`exp: more than ${rules.maxLifetimeSeconds} s ahead`)
  for (const claim of ['iat', 'nbf'] as const) {
    const value = claims[claim]
    if (value === undefined) continue
    if (typeof value !== 'number' || !Number.isFinite(value)) invalid(`${claim}: not a number`)
    if (value > now + tolerance) invalid(`${claim}: in the future`)
  }
  if (typeof claims.jti !== 'string' || claims.jti === '') invalid('jti: missing')
  if (claims.jti.length > MAX_JTI_LENGTH) invalid('jti: too long')
  return claims.exp + tolerance - now
}

/** The store key of a used assertion: one hash tag per client and jti, like the DPoP jti keys. */
export function assertionJtiKey(clientId: string, jti: string): string {
  return `asjti:{${createHash('sha256').update(`${clientId}|${jti}`).digest('base64url')}}`
}

/** RFC 7523 §3 (7): each jti once, shared by replicas; an unanswering store refuses (fail closed). */
export async function claimAssertionJti(store: ReplayStore, clientId: string, jti: string, rememberSeconds: number): Promise<void> {
  let first: boolean
  try {
    first = await store.claim(assertionJtiKey(clientId, jti), Math.max(1, Math.ceil(rememberSeconds * 1000)))
  } catch (error) {
    return oauthRefuse('AS_STORE_UNAVAILABLE', 'jti: the replay store cannot answer', error)
  }
  if (!first) oauthRefuse('AS_CLIENT_ASSERTION_REPLAY', 'jti: already used')
}
