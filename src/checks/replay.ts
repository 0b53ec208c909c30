import { createHash } from 'node:crypto'
import { GatewayError, refuse } from '../errors.ts'
import type { ReplayStore } from '../replay/store.ts'
import { bindingKey } from '../tokens/binding-registry.ts'
import { revokedTokenKey } from '../tokens/revoked-tokens.ts'
import type { DpopProof } from '../types.ts'

/** The proof's jti claim: the token hash as the hash tag, the key thumbprint, a fixed-size hash of the client-chosen jti. */
function proofReplayKey(proof: DpopProof, tokenHash: string): string {
  return `dpop:{${tokenHash}}:${proof.jkt}:${createHash('sha256').update(proof.jti, 'utf8').digest('base64url')}`
}

async function askStore<T>(question: () => Promise<T>): Promise<T> {
  try {
    return await question()
  } catch (error) {
    if (error instanceof GatewayError) throw error
    return refuse('GW_REPLAY_STORE_UNAVAILABLE', 'replay store failed', error)
  }
}

/**
 * RFC 9449 §11.1: reject a proof whose jti was already used with the same key. The jti is
 * client-chosen and unbounded, so the key holds its SHA-256, not the jti itself. The same
 * round trip refuses a token on the revoked-token list. The key carries the token hash as a
 * Redis Cluster hash tag; a proof is bound to one token by `ath`, so that loses nothing.
 */
export async function checkReplay(proof: DpopProof, tokenHash: string, store: ReplayStore, ttlMs: number): Promise<void> {
  const key = proofReplayKey(proof, tokenHash)
  const outcome = await askStore(() => store.claimUnlessPresent(key, ttlMs, revokedTokenKey(tokenHash)))
  if (outcome === 'blocked') refuse('GW_TOKEN_REVOKED', 'on the revoked-token list')
  if (outcome === 'taken') refuse('GW_DPOP_REPLAY', 'DPoP proof jti already used with this key')
}

export interface BindingRead {
  /** The stored binding record (unparsed), undefined when there is none. */
  readonly stored: string | undefined
  /** The proof's jti had already been claimed: refused once the binding is checked (src/authorize.ts). */
  readonly replayed: boolean
}

/**
 * For a token of an issuer behind the façade, whose binding is its record: one round trip refuses a revoked token,
 * reads the record and, with a proof, claims its jti as checkReplay does. No jti is claimed for a token without a
 * record, so strings nobody issued cannot fill the store.
 */
export async function readBinding(proof: DpopProof | undefined, tokenHash: string, store: ReplayStore, ttlMs: number): Promise<BindingRead> {
  const revoked = revokedTokenKey(tokenHash)
  const record = bindingKey(tokenHash)
  if (proof === undefined) {
    const read = await askStore(() => store.readUnlessPresent(record, revoked))
    if (read.outcome === 'blocked') refuse('GW_TOKEN_REVOKED', 'on the revoked-token list')
    return { stored: read.value, replayed: false }
  }
  const read = await askStore(() => store.claimAndRead(proofReplayKey(proof, tokenHash), ttlMs, revoked, record))
  if (read.outcome === 'blocked') refuse('GW_TOKEN_REVOKED', 'on the revoked-token list')
  if (read.outcome === 'absent') return { stored: undefined, replayed: false }
  return { stored: read.value, replayed: read.outcome === 'taken' }
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
