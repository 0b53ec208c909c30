import { refuse } from '../errors.ts'
import type { Clock } from '../types.ts'
import { wholeTtlMs, type ReplayStore } from './store.ts'

interface Entry {
  readonly expiresAt: number
  readonly value: string
}

export interface MemoryReplayStoreOptions {
  /** Upper bound on stored keys; memory stays bounded whatever clients send. */
  readonly maxEntries: number
  readonly now: Clock
  /** How often expired keys are dropped in the background. Default 30 s. */
  readonly sweepIntervalMs?: number
}

/**
 * Single-instance store: a Map from key to its value and expiry time, expired lazily on access and by a
 * periodic sweep (one unref'd timer for the whole store, none per key).
 *
 * When full, expired keys are dropped first; if every key is still live the store refuses
 * (GW_REPLAY_STORE_UNAVAILABLE) instead of evicting one, because a forgotten live jti would
 * let that proof be replayed (RFC 9449 §11.1). A flood costs availability, never replay safety.
 */
export function createMemoryReplayStore(options: MemoryReplayStoreOptions): ReplayStore {
  const { maxEntries, now } = options
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new RangeError('maxEntries must be a positive integer')
  const sweepIntervalMs = options.sweepIntervalMs ?? 30_000

  const entries = new Map<string, Entry>()
  // A lower bound on the earliest expiry in the map: when now is before it, sweeping cannot free anything.
  let earliestExpiry = Number.POSITIVE_INFINITY
  let closed = false

  function sweep(at: number): void {
    let earliest = Number.POSITIVE_INFINITY
    for (const [key, { expiresAt }] of entries) {
      if (expiresAt <= at) entries.delete(key)
      else if (expiresAt < earliest) earliest = expiresAt
    }
    earliestExpiry = earliest
  }

  const sweeper = setInterval(() => sweep(now()), sweepIntervalMs)
  sweeper.unref()

  function live(key: string, at: number): Entry | undefined {
    const entry = entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt > at) return entry
    entries.delete(key)
    return undefined
  }

  function store(key: string, expiresAt: number, at: number, value = '1'): void {
    if (!entries.has(key) && entries.size >= maxEntries) {
      if (at >= earliestExpiry) sweep(at)
      if (entries.size >= maxEntries) refuse('GW_REPLAY_STORE_UNAVAILABLE', `memory replay store full (${maxEntries} live keys)`)
    }
    entries.set(key, { expiresAt, value })
    if (expiresAt < earliestExpiry) earliestExpiry = expiresAt
  }

  function assertOpen(): void {
    if (closed) refuse('GW_REPLAY_STORE_UNAVAILABLE', 'memory replay store is closed')
  }

  return {
    async claim(key, ttlMs) {
      assertOpen()
      const ttl = wholeTtlMs(ttlMs)
      const at = now()
      if (live(key, at) !== undefined) return false
      store(key, at + ttl, at)
      return true
    },
    async claimUnlessPresent(claimKey, ttlMs, blockingKey) {
      assertOpen()
      const ttl = wholeTtlMs(ttlMs)
      const at = now()
      if (live(blockingKey, at) !== undefined) return 'blocked'
      if (live(claimKey, at) !== undefined) return 'taken'
      store(claimKey, at + ttl, at)
      return 'claimed'
    },
    async put(key, ttlMs) {
      assertOpen()
      const ttl = wholeTtlMs(ttlMs)
      const at = now()
      live(key, at)
      store(key, at + ttl, at)
    },
    async has(key) {
      assertOpen()
      return live(key, now()) !== undefined
    },
    async set(key, value, ttlMs) {
      assertOpen()
      const ttl = wholeTtlMs(ttlMs)
      const at = now()
      live(key, at)
      store(key, at + ttl, at, value)
    },
    async get(key) {
      assertOpen()
      return live(key, now())?.value
    },
    async delete(key) {
      assertOpen()
      entries.delete(key)
    },
    async claimAndRead(claimKey, ttlMs, blockingKey, readKey) {
      assertOpen()
      const ttl = wholeTtlMs(ttlMs)
      const at = now()
      if (live(blockingKey, at) !== undefined) return { outcome: 'blocked' }
      const record = live(readKey, at)
      if (record === undefined) return { outcome: 'absent' }
      if (live(claimKey, at) !== undefined) return { outcome: 'taken', value: record.value }
      store(claimKey, at + ttl, at)
      return { outcome: 'claimed', value: record.value }
    },
    async readUnlessPresent(readKey, blockingKey) {
      assertOpen()
      const at = now()
      if (live(blockingKey, at) !== undefined) return { outcome: 'blocked' }
      return { outcome: 'read', value: live(readKey, at)?.value }
    },
    ready() {
      return !closed
    },
    async close() {
      closed = true
      clearInterval(sweeper)
      entries.clear()
    },
  }
}
