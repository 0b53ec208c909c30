// The DPoP proof check at a resource (RFC 9449 §4.3 checks 1-12, §7.1, §8-9, §11).
// Replay (check 11's jti memory) is a separate step. The cnf.jkt binding (check 12b) is made
// here, before the signature, so that a proof by another key costs no signature check.
// test/support/dpop-verify-with-jose.ts is the same check on jose; the tests hold the two in step,
// so the order of the steps below follows jose's own order.

import { refuse } from '../../errors.ts'
import { equalInConstantTime } from '../../util/constant-time.ts'
import { checkProofKeyBinding } from '../binding.ts'
import { isCanonicalBase64url } from '../../util/base64url.ts'
import type { DpopProof } from '../../types.ts'
import { normalizeHtu } from './htu.ts'
import type { NonceIssuer } from './nonce.ts'
import type { Jwk, ProofKey, ProofKeyCache } from './proof-key-cache.ts'
import { proofSignatureVerifies, proofSignatureVerifiesOffThread, type ProofSignature } from './proof-signature.ts'
import { DPOP_KEY_TYPES, rsaProofKeyProblem, type DpopAlgorithm } from './algorithms.ts'

export type { DpopAlgorithm } from './algorithms.ts'

export interface DpopSettings {
  /** Allow-list; FAPI 2.0 SP §5.4.1 permits exactly these three. */
  readonly algorithms: readonly DpopAlgorithm[]
  /** How far in the past `iat` may be. */
  readonly maxAgeSeconds: number
  /** How far in the future `iat` may be (clock skew); also the leeway for `nbf` and `exp`. */
  readonly maxFutureSeconds: number
  readonly maxJtiLength: number
  readonly nonceMode: 'off' | 'optional' | 'required'
  /** Required unless nonceMode is 'off'. */
  readonly nonces: NonceIssuer | undefined
}

export interface DpopInput {
  /** Request method as received. */
  readonly method: string
  /** The absolute URL the client used: configured public base URL + path + query. */
  readonly url: string
  /** Every DPoP header value from rawHeaders. */
  readonly proofHeaders: readonly string[]
  /** Raw token from Authorization, for `ath`. */
  readonly accessToken: string
  /**
   * base64url(SHA-256(accessToken)); undefined where no access token is presented (a token
   * endpoint, RFC 9449 §5), and then `ath` is neither required nor checked.
   */
  readonly accessTokenHash: string | undefined
  /**
   * The token's `cnf.jkt` (RFC 9449 §6.1); a proof by any other key is refused before its signature is checked.
   * KEY_BOUND_LATER when the binding is not known yet (a façade token's record is read with the replay claim,
   * which needs the proof): the caller then compares the proof's jkt itself (checkProofKeyBinding).
   */
  readonly boundJkt: string | undefined | typeof KEY_BOUND_LATER
}

/** See DpopInput.boundJkt. */
export const KEY_BOUND_LATER = Object.freeze({ checkedByCaller: true })

/** What a GW_DPOP_INVALID detail starts with (`<failure>: <reason>`). */
export type DpopFailure = 'malformed' | 'crit' | 'typ' | 'alg' | 'jwk' | 'jwk private' | 'signature' | 'iat' | 'nbf' | 'exp' | 'jti' | 'htm' | 'htu' | 'ath'

export const DPOP_MAX_PROOF_LENGTH = 8192
export const DPOP_TYP = 'dpop+jwt'
/** RFC 9449 §4.3 check 7, RFC 7518 §6.3.2, §6.4.1. */
export const JWK_PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const
/** RFC 9449 §4.2, §7: the claims a resource requires, in the order jose checks their presence. */
const DPOP_REQUIRED_CLAIMS = ['iat', 'ath', 'htu', 'htm', 'jti'] as const
const utf8 = new TextDecoder('utf-8', { fatal: true })

type JsonObject = Readonly<Record<string, unknown>>

function invalid(detail: string, cause?: unknown): never {
  return refuse('GW_DPOP_INVALID', detail, cause)
}

function own(object: JsonObject, name: string): unknown {
  return Object.hasOwn(object, name) ? object[name] : undefined
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export { isCanonicalBase64url }

function parseJsonSegment(segment: string): JsonObject | undefined {
  try {
    const value: unknown = JSON.parse(utf8.decode(Buffer.from(segment, 'base64url')))
    return isJsonObject(value) ? value : undefined
  } catch {
    return undefined
  }
}

/** RFC 9110 §5.5: optional whitespace around a field value is not part of it (no regex: linear time). */
function trimOws(value: string): string {
  const isOws = (index: number) => value[index] === ' ' || value[index] === '\t'
  let start = 0
  let end = value.length
  while (start < end && isOws(start)) start++
  while (end > start && isOws(end - 1)) end--
  return value.slice(start, end)
}

/** RFC 9449 §4.3 check 1: exactly one DPoP header. Node joins repeated headers with ", ". */
export function selectProofHeader(proofHeaders: readonly string[]): string {
  if (proofHeaders.length === 0) refuse('GW_DPOP_MISSING')
  if (proofHeaders.length > 1) refuse('GW_DPOP_MULTIPLE', `${proofHeaders.length} DPoP headers`)
  const proof = trimOws(proofHeaders[0]!)
  if (proof.includes(',')) refuse('GW_DPOP_MULTIPLE', 'DPoP header holds a list')
  if (proof.length > DPOP_MAX_PROOF_LENGTH) invalid('malformed: proof too long')
  return proof
}

/** RFC 9449 §4.3 check 10 and §8-9, by nonceMode; returns the nonce it validated. */
export function checkProofNonce(claims: JsonObject, settings: DpopSettings, nowMs: number): string | undefined {
  if (settings.nonceMode === 'off') return undefined
  const nonces = settings.nonces ?? refuse('GW_INTERNAL', 'dpop: nonceMode needs a nonce issuer')
  if (!Object.hasOwn(claims, 'nonce')) {
    if (settings.nonceMode === 'required') refuse('GW_DPOP_NONCE', 'nonce: missing')
    return undefined
  }
  const nonce = claims.nonce
  if (typeof nonce !== 'string' || !nonces.isValid(nonce, nowMs)) refuse('GW_DPOP_NONCE', 'nonce: invalid or stale')
  return nonce
}

/** RFC 9449 §4.3 checks 4-5. */
function checkProofHeader(header: JsonObject, settings: DpopSettings): DpopAlgorithm {
  // RFC 7515 §4.1.11: no extension is understood here, so any `crit` must be refused.
  if (Object.hasOwn(header, 'crit')) invalid('crit: no extension is understood')
  const typ = own(header, 'typ')
  if (typ === undefined) invalid('typ: missing')
  if (typ !== DPOP_TYP) invalid('typ: not dpop+jwt')
  const alg = own(header, 'alg')
  if (alg === undefined) invalid('alg: missing')
  if (typeof alg !== 'string' || !Object.hasOwn(DPOP_KEY_TYPES, alg) || !settings.algorithms.includes(alg as DpopAlgorithm)) {
    invalid('alg: not allowed')
  }
  return alg as DpopAlgorithm
}

/** RFC 9449 §4.3 checks 5 and 7 on the header `jwk`, plus RFC 7517 §4.2-4.4 as jose applies them. */
function checkProofJwk(header: JsonObject, alg: DpopAlgorithm): Jwk {
  const jwk = own(header, 'jwk')
  if (jwk === undefined) invalid('jwk: missing')
  if (!isJsonObject(jwk)) invalid('jwk: not an object')
  if (JWK_PRIVATE_MEMBERS.some((member) => Object.hasOwn(jwk, member))) invalid('jwk private: has private key members')
  const expected = DPOP_KEY_TYPES[alg]
  if (own(jwk, 'kty') !== expected.kty || (expected.crv !== undefined && own(jwk, 'crv') !== expected.crv)) {
    invalid('alg: does not match the jwk key type')
  }
  const ext = own(jwk, 'ext'),
    use = own(jwk, 'use'),
    keyOps = own(jwk, 'key_ops'),
    keyAlg = own(jwk, 'alg')
  if (ext !== undefined && typeof ext !== 'boolean') invalid('jwk: ext')
  if (keyOps !== undefined && !(Array.isArray(keyOps) && keyOps.length === 1 && keyOps[0] === 'verify')) invalid('jwk: key_ops')
  if (use !== undefined && use !== 'sig') invalid('jwk: use')
  if (keyAlg !== undefined && keyAlg !== alg) invalid('jwk: alg')
  return jwk
}

/** RFC 9449 §4.3 check 11 and RFC 7519 §4.1.4-4.1.5, with jose's boundaries. */
function checkProofTimes(claims: JsonObject, settings: DpopSettings, nowMs: number): number {
  const now = Math.floor(nowMs / 1000)
  const leeway = settings.maxFutureSeconds
  const iat = claims.iat
  if (typeof iat !== 'number') invalid('iat: not a number')
  if (Object.hasOwn(claims, 'nbf')) {
    if (typeof claims.nbf !== 'number') invalid('nbf: not a number')
    if (claims.nbf > now + leeway) invalid('nbf: in the future')
  }
  if (Object.hasOwn(claims, 'exp')) {
    if (typeof claims.exp !== 'number') invalid('exp: not a number')
    if (claims.exp <= now - leeway) invalid('exp: expired')
  }
  if (now - iat > settings.maxAgeSeconds) invalid('iat: too old')
  if (iat - now > settings.maxFutureSeconds) invalid('iat: in the future')
  return iat
}

interface SignedProof {
  readonly signature: ProofSignature
  readonly proofKey: ProofKey
  readonly payloadSegment: string
}

/** Checks 1, 2, 4, 5, 7 and 12b: everything the signature check needs. */
function checkBeforeSignature(input: DpopInput, settings: DpopSettings, keys: ProofKeyCache): SignedProof {
  const proof = selectProofHeader(input.proofHeaders)

  // Check 2: one well-formed compact JWS.
  const segments = proof.split('.')
  if (segments.length !== 3 || !segments.every(isCanonicalBase64url)) invalid('malformed: not a compact JWS')
  const [headerSegment = '', payloadSegment = '', signatureSegment = ''] = segments
  const header = parseJsonSegment(headerSegment) ?? invalid('malformed: header is not a JSON object')

  const alg = checkProofHeader(header, settings)
  const jwk = checkProofJwk(header, alg)
  const proofKey = keys.resolve(jwk) ?? invalid('jwk: not a valid public key')
  if (alg === 'PS256') {
    const { modulusLength = 0, publicExponent = 0n } = proofKey.key.asymmetricKeyDetails ?? {}
    const problem = rsaProofKeyProblem(modulusLength, publicExponent)
    if (problem) invalid(problem)
  }
  if (typeof input.boundJkt !== 'object') checkProofKeyBinding(input.boundJkt, proofKey.jkt)
  const signingInput = Buffer.from(`${headerSegment}.${payloadSegment}`, 'latin1')
  return { signature: { alg, key: proofKey.key, signingInput, signature: Buffer.from(signatureSegment, 'base64url') }, proofKey, payloadSegment }
}

/** Check 3, then checks 11, 8, 9, 12a and 10 (RFC 9449 §4.3), on a proof whose signature verified. */
function checkAfterSignature({ proofKey, payloadSegment }: SignedProof, input: DpopInput, settings: DpopSettings, nowMs: number): DpopProof {
  const claims = parseJsonSegment(payloadSegment) ?? invalid('malformed: claims are not a JSON object')
  for (const claim of DPOP_REQUIRED_CLAIMS) {
    if (!Object.hasOwn(claims, claim) && (claim !== 'ath' || input.accessTokenHash !== undefined)) invalid(`${claim}: missing`)
  }
  const iat = checkProofTimes(claims, settings, nowMs)

  const { jti, htm, htu, ath } = claims
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > settings.maxJtiLength) invalid('jti: empty, too long or not a string')
  if (htm !== input.method) invalid('htm: does not match the request method')
  const requestUri = normalizeHtu(input.url)
  // The usual case, the very URL the request went to, is normalised once.
  const proofHtu = htu === input.url ? requestUri : typeof htu === 'string' ? normalizeHtu(htu) : undefined
  if (proofHtu === undefined) invalid('htu: not an absolute http(s) URI')
  if (requestUri === undefined) invalid('htu: the request URL is not an absolute http(s) URI')
  if (proofHtu !== requestUri) invalid('htu: does not match the request URI')
  if (input.accessTokenHash !== undefined && (typeof ath !== 'string' || !equalInConstantTime(ath, input.accessTokenHash))) {
    invalid('ath: does not match the access token')
  }
  const nonce = checkProofNonce(claims, settings, nowMs)

  return { jkt: proofKey.jkt, jti, iat, htm: input.method, htu: proofHtu, nonce }
}

/** The whole check, the signature verified on the event loop. */
export function checkDpop(input: DpopInput, settings: DpopSettings, keys: ProofKeyCache, nowMs: number): DpopProof {
  const signed = checkBeforeSignature(input, settings, keys)
  if (!proofSignatureVerifies(signed.signature)) invalid('signature: does not verify')
  return checkAfterSignature(signed, input, settings, nowMs)
}

/** The same check, the signature verified on libuv's thread pool (./proof-signature.ts). */
export async function checkDpopOffThread(input: DpopInput, settings: DpopSettings, keys: ProofKeyCache, nowMs: number): Promise<DpopProof> {
  const signed = checkBeforeSignature(input, settings, keys)
  if (!(await proofSignatureVerifiesOffThread(signed.signature))) invalid('signature: does not verify')
  return checkAfterSignature(signed, input, settings, nowMs)
}
