// The reference DPoP proof check: src/checks/dpop.ts rebuilt on jose (jwtVerify + EmbeddedJWK),
// with the same signature and the same refusals. Tests run every vector through both.
// Shared with the fast path: the HTTP-level rules (header count, nonce policy), the
// base64url spelling rule and the policy tables; the JOSE checks are written again.
// What jose leaves open is checked here in the same order as the fast path: jose (and Web
// Crypto) decode base64url leniently, jose compares typ case-insensitively, accepts
// crit:["b64"], and knows nothing of private JWK members other than d, of htm/htu/ath or of
// jti length.

import { timingSafeEqual } from 'node:crypto'
import {
  base64url,
  calculateJwkThumbprint,
  decodeProtectedHeader,
  EmbeddedJWK,
  errors,
  jwtVerify,
  type CryptoKey,
  type FlattenedJWSInput,
  type JWK,
  type JWSHeaderParameters,
} from 'jose'
import { isGatewayError, refuse } from '../../src/errors.ts'
import { checkProofKeyBinding } from '../../src/checks/binding.ts'
import type { DpopProof } from '../../src/types.ts'
import {
  checkProofNonce,
  DPOP_TYP,
  isCanonicalBase64url,
  isJsonObject,
  JWK_PRIVATE_MEMBERS,
  selectProofHeader,
  type DpopInput,
  type DpopSettings,
} from '../../src/checks/dpop/check.ts'
import { DPOP_KEY_TYPES, rsaProofKeyProblem, type DpopAlgorithm } from '../../src/checks/dpop/algorithms.ts'
import { normalizeHtu } from '../../src/checks/dpop/htu.ts'
import type { ProofKeyCache } from '../../src/checks/dpop/proof-key-cache.ts'

function invalid(detail: string, cause?: unknown): never {
  return refuse('GW_DPOP_INVALID', detail, cause)
}

function bigEndianInteger(bytes: Uint8Array): bigint {
  return bytes.reduce((value, byte) => (value << 8n) | BigInt(byte), 0n)
}

/** RFC 9449 §4.3 checks 5 and 7, then 12b (the token's cnf.jkt) before jose checks the signature with the key. */
async function embeddedProofKey(
  header: JWSHeaderParameters,
  token: FlattenedJWSInput,
  alg: DpopAlgorithm,
  boundJkt: DpopInput['boundJkt'],
): Promise<CryptoKey> {
  const jwk: unknown = header.jwk
  if (jwk === undefined) invalid('jwk: missing')
  if (!isJsonObject(jwk)) invalid('jwk: not an object')
  if (JWK_PRIVATE_MEMBERS.some((member) => Object.hasOwn(jwk, member))) invalid('jwk private: has private key members')
  const expected = DPOP_KEY_TYPES[alg]
  if (jwk.kty !== expected.kty || (expected.crv !== undefined && jwk.crv !== expected.crv)) invalid('alg: does not match the jwk key type')
  // Web Crypto decodes key members leniently; the gateway takes one spelling per key (and per jkt).
  const keyMembers = expected.kty === 'RSA' ? ['n', 'e'] : expected.kty === 'EC' ? ['x', 'y'] : ['x']
  if (!keyMembers.every((member) => typeof jwk[member] === 'string' && isCanonicalBase64url(jwk[member]))) {
    invalid('jwk: key members are not canonical base64url')
  }
  let key: CryptoKey
  try {
    key = await EmbeddedJWK(header, token)
  } catch (cause) {
    invalid('jwk: rejected by jose', cause)
  }
  if (!key.usages.includes('verify')) invalid('jwk: key_ops')
  if (alg === 'PS256') {
    const { modulusLength = 0, publicExponent = new Uint8Array() } = key.algorithm as { modulusLength?: number; publicExponent?: Uint8Array }
    const problem = rsaProofKeyProblem(modulusLength, bigEndianInteger(publicExponent))
    if (problem) invalid(problem)
  }
  if (typeof boundJkt !== 'object') checkProofKeyBinding(boundJkt, await calculateJwkThumbprint(jwk as JWK, 'sha256'))
  return key
}

function joseRefusal(error: unknown): never {
  if (isGatewayError(error)) throw error
  if (error instanceof errors.JOSEError) {
    switch (error.code) {
      case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
        invalid('signature: does not verify', error)
      case 'ERR_JOSE_ALG_NOT_ALLOWED':
        invalid('alg: not allowed', error)
      case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      case 'ERR_JWT_EXPIRED': {
        const { claim, reason } = error as errors.JWTClaimValidationFailed
        invalid(`${claim}: ${reason}`, error)
      }
    }
  }
  return invalid('malformed: rejected by jose', error)
}

async function accessTokenHash(accessToken: string): Promise<string> {
  return base64url.encode(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(accessToken))))
}

function sameString(presented: string, expected: string): boolean {
  const a = Buffer.from(presented, 'utf8')
  const b = Buffer.from(expected, 'utf8')
  return a.length === b.length && timingSafeEqual(a, b)
}

/**
 * Same contract as checkDpop (src/checks/dpop.ts), asynchronous and without a key cache
 * (`keys` is accepted for a drop-in signature and not used). Needs maxAgeSeconds >= maxFutureSeconds,
 * because jose has one clock tolerance for both directions.
 */
export async function checkDpopWithJose(input: DpopInput, settings: DpopSettings, _keys: ProofKeyCache, nowMs: number): Promise<DpopProof> {
  const proof = selectProofHeader(input.proofHeaders)
  const segments = proof.split('.')
  if (segments.length !== 3 || !segments.every(isCanonicalBase64url)) invalid('malformed: not a compact JWS')
  let header: JWSHeaderParameters
  try {
    header = decodeProtectedHeader(proof) as JWSHeaderParameters
  } catch (cause) {
    invalid('malformed: header is not a JSON object', cause)
  }
  // RFC 7515 §4.1.11; RFC 9449 §4.3 checks 4-5. jose would take typ case-insensitively and crit:["b64"].
  if (Object.hasOwn(header, 'crit')) invalid('crit: no extension is understood')
  if (header.typ === undefined) invalid('typ: missing')
  if (header.typ !== DPOP_TYP) invalid('typ: not dpop+jwt')
  if (header.alg === undefined) invalid('alg: missing')
  const alg = header.alg as DpopAlgorithm
  if (typeof alg !== 'string' || !Object.hasOwn(DPOP_KEY_TYPES, alg) || !settings.algorithms.includes(alg)) invalid('alg: not allowed')

  const { maxAgeSeconds, maxFutureSeconds } = settings
  if (!(maxAgeSeconds >= maxFutureSeconds)) throw new RangeError('checkDpopWithJose needs maxAgeSeconds >= maxFutureSeconds')
  let claims: Record<string, unknown>
  try {
    ;({ payload: claims } = await jwtVerify(proof, (protectedHeader, token) => embeddedProofKey(protectedHeader, token, alg, input.boundJkt), {
      algorithms: [alg],
      typ: DPOP_TYP,
      requiredClaims: ['jti', 'htm', 'htu', 'ath'],
      currentDate: new Date(nowMs),
      clockTolerance: maxFutureSeconds,
      // jose refuses iat when now - iat - clockTolerance > maxTokenAge, or iat - now > clockTolerance.
      maxTokenAge: maxAgeSeconds - maxFutureSeconds,
    }))
  } catch (error) {
    joseRefusal(error)
  }

  const { jti, htm, htu, ath, iat } = claims
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > settings.maxJtiLength) invalid('jti: empty, too long or not a string')
  if (typeof htm !== 'string' || htm !== input.method) invalid('htm: does not match the request method')
  const proofHtu = typeof htu === 'string' ? normalizeHtu(htu) : undefined
  if (proofHtu === undefined) invalid('htu: not an absolute http(s) URI')
  if (proofHtu !== normalizeHtu(input.url)) invalid('htu: does not match the request URI')
  if (typeof ath !== 'string' || !sameString(ath, await accessTokenHash(input.accessToken))) invalid('ath: does not match the access token')
  const nonce = checkProofNonce(claims, settings, nowMs)

  return {
    jkt: await calculateJwkThumbprint(header.jwk as JWK, 'sha256'),
    jti,
    iat: iat as number,
    htm,
    htu: proofHtu,
    nonce,
  }
}
