// The binding registry of the authorization-server façade: what the gateway recorded when a legacy
// server issued a token through it. A legacy token carries no `cnf`; its record is its binding.
// Records live in the replay store (Redis shared by replicas, or memory for one instance), under
// the token's hash as a Redis Cluster hash tag, in the same slot as its DPoP jti claims and its
// revoked-list entry, so that one round trip can claim a proof's jti and read the binding.

/** An access token's or a refresh token's record, keyed by base64url(SHA-256(token)). */
export interface BindingRecord {
  readonly kind: 'access_token' | 'refresh_token'
  /** The issuers[] entry (with `facade`) the resource side accepts this token under. */
  readonly issuerName: string
  /** The partner's client_id at the gateway. */
  readonly clientId: string
  /** The client_id the gateway used at the legacy server (for revocation there). */
  readonly legacyClientId: string
  /** RFC 7638 thumbprint of the DPoP key the token was issued to (RFC 9449 §6.1). */
  readonly jkt?: string
  /** base64url SHA-256 of the DER client certificate the token was issued to (RFC 8705 §3.1). */
  readonly x5t?: string
  /** Space-separated scopes the legacy server granted. */
  readonly scope: string
  /** The legacy server's subject, when its answer (or its JWT access token) named one. */
  readonly sub?: string
  /** Seconds since the epoch. */
  readonly issuedAt: number
  readonly expiresAt: number
}

export interface BindingRegistry {
  /** Records (or replaces) a token's binding for ttlMs. Throws GW_REPLAY_STORE_UNAVAILABLE when the store cannot answer. */
  record(tokenHash: string, record: BindingRecord, ttlMs: number): Promise<void>
  /** The record, or undefined when the gateway never issued the token or it has expired or been removed. */
  lookup(tokenHash: string): Promise<BindingRecord | undefined>
  remove(tokenHash: string): Promise<void>
}

/** The store key of a token's record; `{hash}` is the hash tag it shares with the token's jti claims and revoked entry. */
export function bindingKey(tokenHash: string): string {
  return `bind:{${tokenHash}}`
}
