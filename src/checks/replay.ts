import { createHash } from 'node:crypto'
import { GatewayError, refuse } from '../errors.ts'
import type { ReplayStore } from '../replay/store.ts'
import { revokedTokenKey } from '../tokens/revoked-tokens.ts'
import type { DpopProof } from '../types.ts'

/**
 * RFC 9449 §11.1: reject a proof whose jti was already used with the same key. The jti is
 * client-chosen and unbounded, so the key holds its SHA-256, not the jti itself. The same
 * round trip refuses a token on the revoked-token list. The key carries the token hash as a
 * Redis Cluster hash tag; a proof is bound to one token by `ath`, so that loses nothing.
 */
export async function checkReplay(proof: DpopProof, tokenHash: string, store: ReplayStore, ttlMs: number): Promise<void> {
  const key = `dpop:{${tokenHash}}:${proof.jkt}:${createHash('sha256').update(proof.jti, 'utf8').digest('base64url')}`
  let outcome: 'claimed' | 'taken' | 'blocked'
  try {
    outcome = await store.claimUnlessPresent(key, ttlMs, revokedTokenKey(tokenHash))
  } catch (error) {
    if (error instanceof GatewayError) throw error
    refuse('GW_REPLAY_STORE_UNAVAILABLE', 'replay store failed', error)
  }
  if (outcome === 'blocked') refuse('GW_TOKEN_REVOKED', 'on the revoked-token list')
  if (outcome === 'taken') refuse('GW_DPOP_REPLAY', 'DPoP proof jti already used with this key')
}

/**
 * How long a jti must be remembered: as long as a proof with one iat stays acceptable to some
 * replica, each replica's clock within `clockSkewSeconds` of the true time, i.e. from
 * iat - maxFuture - skew to iat + maxAge + skew (RFC 9449 §11.1), plus one second because iat
 * has whole-second precision.
 */
export function replayTtlMs(maxAgeSeconds: number, maxFutureSeconds: number, clockSkewSeconds: number): number {
  for (const value of [maxAgeSeconds, maxFutureSeconds, clockSkewSeconds]) {
    if (!Number.isFinite(value) || value < 0) throw new RangeError('DPoP time window values must be finite and >= 0')
  }
  return Math.ceil((maxAgeSeconds + maxFutureSeconds + 2 * clockSkewSeconds + 1) * 1000)
}
