// The front channel's random values: the gateway's state, its codes and its own PKCE pair at the legacy
// server. 256 bits each (FAPI 2.0 SP §5.4.1-4 asks at least 128).
import { createHash, randomBytes } from 'node:crypto'

export function newSecret(): string {
  return randomBytes(32).toString('base64url')
}

/** A secret as newSecret() makes them: 43 base64url characters. */
export const SECRET_SHAPE = /^[A-Za-z0-9_-]{43}$/

/** RFC 7636 §4.2: the S256 challenge of a verifier. */
export function s256Challenge(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url')
}

/** RFC 7636 §4.1–4.2: a verifier and its S256 challenge. */
export function newPkcePair(): { readonly verifier: string; readonly challenge: string } {
  const verifier = newSecret()
  return { verifier, challenge: s256Challenge(verifier) }
}
