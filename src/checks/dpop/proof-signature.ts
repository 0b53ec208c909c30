// RFC 9449 §4.3 check 6: the proof's signature with the key in its header, either on the event
// loop or on libuv's thread pool. The thread pool takes the ~45 µs of an ES256 verification off
// the event loop (which then spends ~5 µs dispatching it), at ~6 µs more CPU in all.

import { constants, verify, type KeyObject } from 'node:crypto'
import ecdsaSignature from 'ecdsa-sig-formatter'
import type { DpopAlgorithm } from './algorithms.ts'

export interface ProofSignature {
  readonly alg: DpopAlgorithm
  readonly key: KeyObject
  /** `<header>.<payload>` as sent. */
  readonly signingInput: Buffer
  readonly signature: Buffer
}

type VerifyArguments = readonly [algorithm: string | null, key: KeyObject | { key: KeyObject; padding: number; saltLength: number }, signature: Buffer]

/**
 * RFC 7518 §3.4: a JWS ECDSA signature is R || S. Node verifies its DER form (RFC 3279
 * ECDSA-Sig-Value, converted by jsonwebtoken's own converter) with a bare KeyObject in about
 * 70% of the time `{ dsaEncoding: 'ieee-p1363' }` takes (measured on Node 24).
 * undefined: the signature cannot be one of alg's (wrong length).
 */
function verifyArguments({ alg, key, signature }: ProofSignature): VerifyArguments | undefined {
  switch (alg) {
    case 'ES256':
      return signature.length === 64 ? ['sha256', key, ecdsaSignature.joseToDer(signature, 'ES256')] : undefined
    case 'PS256':
      return ['sha256', { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, signature]
    case 'EdDSA':
      return signature.length === 64 ? [null, key, signature] : undefined
  }
}

export function proofSignatureVerifies(proof: ProofSignature): boolean {
  try {
    const args = verifyArguments(proof)
    return args !== undefined && verify(args[0], proof.signingInput, args[1], args[2])
  } catch {
    return false
  }
}

export function proofSignatureVerifiesOffThread(proof: ProofSignature): Promise<boolean> {
  return new Promise((resolve) => {
    try {
      const args = verifyArguments(proof)
      if (args === undefined) return resolve(false)
      verify(args[0], proof.signingInput, args[1], args[2], (error, valid) => resolve(!error && valid))
    } catch {
      resolve(false)
    }
  })
}
