import { refuse } from '../errors.ts'
import type { ReplayStore } from '../replay/store.ts'

export interface RevokedTokenList {
  /** Remembers tokenHash as revoked for ttlMs (at least the token's remaining lifetime). */
  revoke(tokenHash: string, ttlMs: number): Promise<void>
  /** Throws GW_REPLAY_STORE_UNAVAILABLE when the store cannot answer (fail closed). */
  isRevoked(tokenHash: string): Promise<boolean>
}

// PresentedToken.hash: base64url(SHA-256(token)), 43 characters. Anything else is a wiring bug.
const tokenHashPattern = /^[A-Za-z0-9_-]{43}$/

/** The hash tag keeps a token's revocation and its proofs' jtis in one Redis Cluster slot. */
export function revokedTokenKey(tokenHash: string): string {
  if (!tokenHashPattern.test(tokenHash)) refuse('GW_INTERNAL', 'revoked-token list needs base64url(SHA-256(token))')
  return `revoked:{${tokenHash}}`
}

export function createRevokedTokenList(store: ReplayStore): RevokedTokenList {
  return {
    async revoke(tokenHash, ttlMs) {
      await store.put(revokedTokenKey(tokenHash), ttlMs)
    },
    async isRevoked(tokenHash) {
      return store.has(revokedTokenKey(tokenHash))
    },
  }
}
