import type { Clock } from '../types.ts'
import { createLru } from '../util/lru.ts'
import type { ClientAuthenticator } from './client-authentication/authenticate.ts'
import { oauthRefuse } from './errors.ts'

// Token buckets per key (client_id, address), per process: a partner or an address that floods the
// façade is answered 429 before its assertion is verified or the legacy server is called.

export interface RateLimiter {
  /** Takes one token from key's bucket; false when it is empty. */
  take(key: string, nowMs: number): boolean
}

export function createRateLimiter(perSecond: number, burst: number, maxKeys = 100_000): RateLimiter {
  // The least recently used buckets make room when there are maxKeys of them.
  const buckets = createLru<string, { tokens: number; at: number }>(maxKeys)
  return {
    take(key, nowMs) {
      const bucket = buckets.get(key) ?? { tokens: burst, at: nowMs }
      bucket.tokens = Math.min(burst, bucket.tokens + ((nowMs - bucket.at) / 1000) * perSecond)
      bucket.at = nowMs
      buckets.set(key, bucket)
      if (bucket.tokens < 1) return false
      bucket.tokens -= 1
      return true
    },
  }
}

/** The authenticator, refusing a client past its budget once it has proved who it is. */
export function limitPerClient(authenticator: ClientAuthenticator, limiter: RateLimiter, clock: Clock): ClientAuthenticator {
  return {
    async authenticate(input) {
      const client = await authenticator.authenticate(input)
      if (!limiter.take(client.partner.clientId, clock())) oauthRefuse('AS_RATE_LIMITED', 'rate: per client')
      return client
    },
    keysOf: (partner) => authenticator.keysOf(partner),
    close: () => authenticator.close(),
  }
}
