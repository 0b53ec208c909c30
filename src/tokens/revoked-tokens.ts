import { refuse } from '../errors.ts'
import type { ReplayStore } from '../replay/store.ts'
import type { RevocationMirror } from './revocation-mirror.ts'

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
export const REVOKED_KEY_PATTERN = 'revoked:*'
/** Where revocations are announced (after the store's key prefix) when revocation mirrors follow them. */
export const REVOCATION_CHANNEL = 'revocations'

export interface RevokedTokenListOptions {
  /** Announce each revocation to the mirrors of every instance (replay.revocationMirror.enabled). */
  readonly announce?: boolean
  /** This instance's mirror: answers lookups while it is current, else the store does. */
  readonly mirror?: RevocationMirror
}

export function createRevokedTokenList(store: ReplayStore, options: RevokedTokenListOptions = {}): RevokedTokenList {
  const { mirror } = options
  const channel = options.announce ? REVOCATION_CHANNEL : undefined
  return {
    async revoke(tokenHash, ttlMs) {
      const key = revokedTokenKey(tokenHash)
      await store.put(key, ttlMs, channel)
      mirror?.add(key, ttlMs)
    },
    async isRevoked(tokenHash) {
      const key = revokedTokenKey(tokenHash)
      return mirror?.lookup(key) ?? store.has(key)
    },
  }
}
