// Verified access tokens by PresentedToken.hash, so a token is verified once per lifetime.
// An entry is never returned at or after its token's exp (nor after an optional shorter TTL).
import type { AccessToken } from '../types.ts'
import { createLru } from '../util/lru.ts'

export interface TokenCacheStats {
  readonly hits: number
  readonly misses: number
  readonly size: number
}

export interface TokenCache {
  get(tokenHash: string, nowMs: number): AccessToken | undefined
  /** Keeps the token until the earlier of its exp and nowMs + ttlMs; tokens without either are not kept. */
  set(tokenHash: string, token: AccessToken, nowMs: number, ttlMs?: number): void
  stats(): TokenCacheStats
}

interface Entry {
  readonly token: AccessToken
  readonly expiresAtMs: number
}

export function createTokenCache(options: { readonly maxEntries: number }): TokenCache {
  const entries = createLru<string, Entry>(options.maxEntries)
  let hits = 0
  let misses = 0
  return {
    get(tokenHash, nowMs) {
      const entry = entries.get(tokenHash)
      if (entry && nowMs < entry.expiresAtMs) {
        hits++
        return entry.token
      }
      if (entry) entries.delete(tokenHash)
      misses++
      return undefined
    },
    set(tokenHash, token, nowMs, ttlMs) {
      const expiresAtMs = Math.min(token.exp === undefined ? Infinity : token.exp * 1000, ttlMs === undefined ? Infinity : nowMs + ttlMs)
      if (!Number.isFinite(expiresAtMs) || expiresAtMs <= nowMs) return
      entries.set(tokenHash, { token, expiresAtMs })
    },
    stats() {
      return { hits, misses, size: entries.size }
    },
  }
}
