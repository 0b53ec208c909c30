// Stateless DPoP server nonces (RFC 9449 §8, §9): every replica sharing the secret derives the
// same nonce for a time slot, so no store is needed. A nonce is valid in its own slot and the next.

import { createHmac, createSecretKey, type KeyObject } from 'node:crypto'
import { equalInConstantTime } from '../../util/constant-time.ts'

export interface NonceIssuer {
  /** The nonce to hand out now (base64url, so within RFC 9449 §8.1 NQCHAR). */
  current(nowMs: number): string
  /** True when `nonce` is the current or the previous slot's nonce. */
  isValid(nonce: string, nowMs: number): boolean
}

export interface NonceIssuerOptions {
  /** Shared by every replica; at least 32 bytes of randomness. */
  readonly secret: Buffer
  readonly slotSeconds: number
}

const MIN_SECRET_BYTES = 32
const NONCE_LENGTH = 43 // base64url of a SHA-256 HMAC, no padding

function nonceForSlot(key: KeyObject, slot: number): string {
  return createHmac('sha256', key).update(`fapi-gateway dpop-nonce v1 ${slot}`).digest('base64url')
}

export function createNonceIssuer(options: NonceIssuerOptions): NonceIssuer {
  const { secret, slotSeconds } = options
  if (!Buffer.isBuffer(secret) || secret.length < MIN_SECRET_BYTES) {
    throw new RangeError(`DPoP nonce secret must be at least ${MIN_SECRET_BYTES} bytes`)
  }
  if (!Number.isSafeInteger(slotSeconds) || slotSeconds <= 0) {
    throw new RangeError('DPoP nonce slotSeconds must be a positive integer')
  }
  const key = createSecretKey(Buffer.from(secret))
  const slotMs = slotSeconds * 1000
  const slotAt = (nowMs: number): number => Math.floor(nowMs / slotMs)

  return {
    current(nowMs) {
      return nonceForSlot(key, slotAt(nowMs))
    },
    isValid(nonce, nowMs) {
      if (typeof nonce !== 'string' || nonce.length !== NONCE_LENGTH) return false
      const presented = Buffer.from(nonce, 'utf8')
      if (presented.length !== NONCE_LENGTH) return false
      const slot = slotAt(nowMs)
      const current = equalInConstantTime(presented, nonceForSlot(key, slot))
      const previous = equalInConstantTime(presented, nonceForSlot(key, slot - 1))
      return current || previous
    },
  }
}
