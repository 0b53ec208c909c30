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
  /** Stores value under key for ttlMs, replacing any value and TTL it had. */
  set(key: string, value: string, ttlMs: number): Promise<void>
  /** The value stored under key, or undefined when there is none (never set, expired or deleted). */
  get(key: string): Promise<string | undefined>
  /** Removes key; nothing happens when it is absent. */
  delete(key: string): Promise<void>
  /**
   * One round trip for a DPoP request on a token whose binding is a stored record: 'blocked' when
   * blockingKey is present; else 'absent' when readKey is (nothing is claimed then); else claims
   * claimKey for ttlMs as claim() ('claimed' or 'taken') and returns readKey's value with it. In
   * Redis Cluster the three keys must share a hash tag.
   */
  claimAndRead(claimKey: string, ttlMs: number, blockingKey: string, readKey: string): Promise<ClaimAndReadOutcome>
  /** One round trip: 'blocked' when blockingKey is present, else readKey's value (undefined when absent). Keys share a hash tag in Cluster. */
  readUnlessPresent(readKey: string, blockingKey: string): Promise<ReadOutcome>
  /** True when the store can currently answer (for /readyz). */
  ready(): boolean
  close(): Promise<void>
}

export type ClaimAndReadOutcome =
  { readonly outcome: 'blocked' } | { readonly outcome: 'absent' } | { readonly outcome: 'claimed' | 'taken'; readonly value: string }

export type ReadOutcome = { readonly outcome: 'blocked' } | { readonly outcome: 'read'; readonly value: string | undefined }

/** A TTL as whole milliseconds (at least 1); a non-finite or non-positive TTL is a wiring bug. */
export function wholeTtlMs(ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) refuse('GW_INTERNAL', `invalid replay store ttl ${ttlMs}`)
  return Math.ceil(ttlMs)
}
