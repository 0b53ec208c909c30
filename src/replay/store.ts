import { refuse } from '../errors.ts'

/**
 * A shared set of short-lived keys: DPoP `jti`s already seen (RFC 9449 §11.1) and revoked
 * token hashes. Implementations fail closed: when they cannot answer they throw, never guess.
 */
export interface ReplayStore {
  /** Atomically claims key for ttlMs. true = first use, false = already claimed. Throws GatewayError GW_REPLAY_STORE_UNAVAILABLE if the store cannot answer (fail closed). */
  claim(key: string, ttlMs: number): Promise<boolean>
  /**
   * One round trip: claims claimKey for ttlMs unless blockingKey is present. 'blocked' when
   * blockingKey is present (claimKey may then be claimed too), else as claim(). In Redis Cluster
   * both keys must share a hash tag ({...}) so that they live in one slot.
   */
  claimUnlessPresent(claimKey: string, ttlMs: number, blockingKey: string): Promise<'claimed' | 'taken' | 'blocked'>
  /**
   * Adds a key (e.g. a revoked token hash) for ttlMs, idempotent. A later put replaces the TTL.
   * With announceOn (a channel, prefixed like keys), `<key> <ttlMs>` is published on it in the
   * same atomic step, for followers that keep a copy (src/tokens/revocation-mirror.ts); a store
   * that nobody else follows ignores it.
   */
  put(key: string, ttlMs: number, announceOn?: string): Promise<void>
  /** Whether key is present. Throws GW_REPLAY_STORE_UNAVAILABLE if it cannot answer. */
  has(key: string): Promise<boolean>
  /** True when the store can currently answer (for /readyz). */
  ready(): boolean
  close(): Promise<void>
}

/** A TTL as whole milliseconds (at least 1); a non-finite or non-positive TTL is a wiring bug. */
export function wholeTtlMs(ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) refuse('GW_INTERNAL', `invalid replay store ttl ${ttlMs}`)
  return Math.ceil(ttlMs)
}
