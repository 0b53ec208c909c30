// Signed request objects at the PAR endpoint (RFC 9101, FAPI 2.0 Message Signing §5.3.1): signed by
// the partner's own registered key with PS256, ES256 or EdDSA, `aud` the issuer, `iss` the client,
// `nbf` and `exp` present and within 60 minutes, and no `request_uri` inside. An encrypted request
// object (RFC 9101 §6.1) is a JWE to a key the gateway publishes, RSA-OAEP-256 or ECDH-ES with
// A256GCM, whose plaintext is such a signed request object (a nested JWT): decrypted first, then
// verified exactly as a signed one. Encryption hides the request; the partner's signature still vouches for it.
import { compactVerify, decodeProtectedHeader, errors as joseErrors, type JWTPayload } from 'jose'
import { isGatewayError } from '../../errors.ts'
import type { KeyResolver } from '../client-authentication/partner-keys.ts'
import { OAuthError } from '../errors.ts'
import type { GatewayDecrypter } from '../keys/key-source.ts'
import { REQUEST_OBJECT_ENCRYPTION_ALGORITHMS, REQUEST_OBJECT_ENCRYPTION_ENCODINGS } from './jarm.ts'

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
  /** The gateway's decryption keys accepted now; none, and an encrypted request object is refused. */
  readonly decrypters?: readonly GatewayDecrypter[]
}

function invalid(rule: string, problem: string, cause?: unknown): never {
  throw new OAuthError('AS_REQUEST_OBJECT_INVALID', { detail: `${rule}: ${problem}`, rule, cause })
}

function checkSize(requestObject: string): void {
  if (Buffer.byteLength(requestObject) > MAX_REQUEST_OBJECT_BYTES) invalid('size', `over ${MAX_REQUEST_OBJECT_BYTES} bytes`)
}

function isEncrypted(requestObject: string): boolean {
  return requestObject.split('.').length === 5
}

/** The JWE's header, when it names an accepted key management algorithm and A256GCM, and nothing else that changes decryption. */
function checkEncryptionHeader(jwe: string): { alg: string; kid: string | undefined } {
  let header
  try {
    header = decodeProtectedHeader(jwe)
  } catch (error) {
    return invalid('encrypted', 'the JWE header cannot be read', error)
  }
  const { alg, enc, kid, zip } = header
  if (typeof alg !== 'string' || !REQUEST_OBJECT_ENCRYPTION_ALGORITHMS.includes(alg))
    invalid('encrypted', `alg ${typeof alg === 'string' ? alg.slice(0, 20) : 'missing'} not accepted (RSA-OAEP-256 or ECDH-ES)`)
  if (typeof enc !== 'string' || !REQUEST_OBJECT_ENCRYPTION_ENCODINGS.includes(enc))
    invalid('encrypted', `enc ${typeof enc === 'string' ? enc.slice(0, 20) : 'missing'} not accepted (A256GCM)`)
  // A compressed plaintext could expand far beyond the size limit.
  if (zip !== undefined) invalid('encrypted', 'compression (zip) not accepted')
  if (kid !== undefined && typeof kid !== 'string') invalid('encrypted', 'kid is not a string')
  return { alg, kid }
}

/**
 * The plaintext of a JWE request object: decrypted by the gateway key its header's kid names (without a
 * kid, each current key of its algorithm is tried). It must itself be a compact signed JWT (RFC 9101 §6.1:
 * sign, then encrypt); the caller verifies it as any signed request object.
 */
async function decryptRequestObject(jwe: string, decrypters: readonly GatewayDecrypter[]): Promise<string> {
  const { alg, kid } = checkEncryptionHeader(jwe)
  const candidates = decrypters.filter((key) => key.alg === alg && (kid === undefined || key.kid === kid))
  if (candidates.length === 0)
    invalid('encrypted', kid === undefined ? `no decryption key of the gateway for ${alg}` : 'kid names no current decryption key of the gateway')
  let plaintext: Uint8Array | undefined
  let failure: unknown
  for (const key of candidates) {
    try {
      plaintext = await key.decrypt(jwe)
      break
    } catch (error) {
      failure = error
    }
  }
  if (plaintext === undefined) return invalid('encrypted', 'does not decrypt with the gateway key', failure)
  let inner: string
  try {
    inner = new TextDecoder('utf-8', { fatal: true }).decode(plaintext)
  } catch (error) {
    return invalid('encrypted', 'the plaintext is not text', error)
  }
  if (inner.split('.').length !== 3) invalid('encrypted', 'the plaintext is not a signed request object (a JWS)')
  return inner
}

function checkHeader(requestObject: string): void {
  if (requestObject.split('.').length !== 3) invalid('format', 'not a compact signed JWT')
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
  checkSize(requestObject)
  const signed = isEncrypted(requestObject) ? await decryptRequestObject(requestObject, rules.decrypters ?? []) : requestObject
  checkHeader(signed)
  const claims = await verifiedPayload(signed, keys)
  checkClaims(claims, rules)
  for (const name of rules.stringParameters) if (claims[name] !== undefined && typeof claims[name] !== 'string') invalid(name, 'not a string')
  const params = new Map<string, string>()
  for (const [name, value] of Object.entries(claims)) if (typeof value === 'string') params.set(name, value)
  return params
}
