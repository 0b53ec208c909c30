// Signed request objects at the PAR endpoint (RFC 9101, FAPI 2.0 Message Signing §5.3.1): signed by
// the partner's own registered key with PS256, ES256 or EdDSA, `aud` the issuer, `iss` the client,
// `nbf` and `exp` present and within 60 minutes, and no `request_uri` inside. Encrypted request
// objects (RFC 9101 §6.1) are refused for now: the gateway publishes no decryption key yet.
import { compactVerify, decodeProtectedHeader, errors as joseErrors, type JWTPayload } from 'jose'
import { isGatewayError } from '../../errors.ts'
import type { KeyResolver } from '../client-authentication/partner-keys.ts'
import { OAuthError } from '../errors.ts'

export const REQUEST_OBJECT_ALGORITHMS: readonly string[] = ['PS256', 'ES256', 'EdDSA']
export const MAX_REQUEST_OBJECT_BYTES = 32 * 1024
/** FAPI 2.0 MS §5.3.1-3/-4: nbf at most 60 minutes in the past, exp at most 60 minutes after nbf. */
export const MAX_REQUEST_OBJECT_AGE_SECONDS = 3600
/** Clock skew accepted on nbf ahead and exp behind (the conformance suite sends nbf 8 s ahead). */
export const REQUEST_OBJECT_CLOCK_TOLERANCE_SECONDS = 10
const ACCEPTED_TYPES = new Set(['oauth-authz-req+jwt', 'application/oauth-authz-req+jwt'])

export interface RequestObjectRules {
  /** The façade's issuer: the `aud` the object must name. */
  readonly issuer: string
  /** The authenticated partner: the object's `iss` and `client_id`. */
  readonly clientId: string
  readonly nowMs: number
  /** The parameters the flow reads: each must be a string when present (a number or an object there is refused). */
  readonly stringParameters: readonly string[]
}

function invalid(rule: string, problem: string, cause?: unknown): never {
  throw new OAuthError('AS_REQUEST_OBJECT_INVALID', { detail: `${rule}: ${problem}`, rule, cause })
}

function checkHeader(requestObject: string): void {
  if (Buffer.byteLength(requestObject) > MAX_REQUEST_OBJECT_BYTES) invalid('size', `over ${MAX_REQUEST_OBJECT_BYTES} bytes`)
  const segments = requestObject.split('.').length
  if (segments === 5) invalid('encrypted', 'encrypted request objects (JWE) are not supported')
  if (segments !== 3) invalid('format', 'not a compact signed JWT')
  let header
  try {
    header = decodeProtectedHeader(requestObject)
  } catch (error) {
    return invalid('format', 'the header cannot be read', error)
  }
  const { alg, typ } = header
  if (typeof alg !== 'string' || !REQUEST_OBJECT_ALGORITHMS.includes(alg))
    invalid('alg', `${typeof alg === 'string' ? alg.slice(0, 20) : 'missing'} not accepted`)
  if (typ !== undefined && (typeof typ !== 'string' || !ACCEPTED_TYPES.has(typ.toLowerCase()))) invalid('typ', 'not oauth-authz-req+jwt')
}

async function verifiedPayload(requestObject: string, keys: KeyResolver): Promise<JWTPayload> {
  let payload: Uint8Array
  try {
    ;({ payload } = await compactVerify(requestObject, keys, { algorithms: [...REQUEST_OBJECT_ALGORITHMS] }))
  } catch (error) {
    if (isGatewayError(error)) {
      if (error.code === 'GW_ISSUER_UNAVAILABLE') invalid('signature', "the partner's jwksUri cannot be fetched", error)
      invalid('signature', error.detail ?? 'no fitting registered key', error)
    }
    if (error instanceof joseErrors.JWSSignatureVerificationFailed) invalid('signature', 'does not verify', error)
    if (error instanceof joseErrors.JOSEAlgNotAllowed) invalid('alg', 'not accepted', error)
    invalid('signature', 'cannot be verified', error)
  }
  let claims: unknown
  try {
    claims = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload))
  } catch (error) {
    return invalid('format', 'the payload is not JSON', error)
  }
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) invalid('format', 'the payload is not a JSON object')
  return claims as JWTPayload
}

function numericDate(claims: JWTPayload, name: 'exp' | 'nbf'): number {
  const value = claims[name]
  if (value === undefined) invalid(name, 'missing')
  if (typeof value !== 'number' || !Number.isFinite(value)) invalid(name, 'not a number')
  return value
}

function checkClaims(claims: JWTPayload, rules: RequestObjectRules): void {
  const now = rules.nowMs / 1000
  const tolerance = REQUEST_OBJECT_CLOCK_TOLERANCE_SECONDS
  if (claims.iss !== rules.clientId) invalid('iss', 'not the client')
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud]
  if (!audiences.includes(rules.issuer)) invalid('aud', 'does not name the issuer')
  const nbf = numericDate(claims, 'nbf')
  const exp = numericDate(claims, 'exp')
  if (nbf > now + tolerance) invalid('nbf', 'in the future')
  if (nbf < now - MAX_REQUEST_OBJECT_AGE_SECONDS) invalid('nbf', 'more than 60 minutes in the past')
  if (exp <= now - tolerance) invalid('exp', 'expired')
  if (exp - nbf > MAX_REQUEST_OBJECT_AGE_SECONDS) invalid('exp', 'more than 60 minutes after nbf')
  if (claims.client_id === undefined) invalid('client_id', 'missing')
  if (claims.client_id !== rules.clientId) invalid('client_id', 'not the client')
  if (claims.request_uri !== undefined) invalid('request_uri', 'not allowed inside a request object')
  if (claims.request !== undefined) invalid('request', 'not allowed inside a request object')
}

/** The authorization request parameters a request object carries, once it is verified; string values only. */
export async function verifyRequestObject(requestObject: string, keys: KeyResolver, rules: RequestObjectRules): Promise<ReadonlyMap<string, string>> {
  checkHeader(requestObject)
  const claims = await verifiedPayload(requestObject, keys)
  checkClaims(claims, rules)
  for (const name of rules.stringParameters) if (claims[name] !== undefined && typeof claims[name] !== 'string') invalid(name, 'not a string')
  const params = new Map<string, string>()
  for (const [name, value] of Object.entries(claims)) if (typeof value === 'string') params.set(name, value)
  return params
}
