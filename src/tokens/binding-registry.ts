// The binding registry of the authorization-server façade: what the gateway recorded when a legacy
// server issued a token through it. A legacy token carries no `cnf`; its record is its binding.
// Records live in the replay store (Redis shared by replicas, or memory for one instance), under
// the token's hash as a Redis Cluster hash tag, in the same slot as its DPoP jti claims and its
// revoked-list entry, so that one round trip can claim a proof's jti and read the binding.
import { z } from 'zod'
import { refuse } from '../errors.ts'
import type { ReplayStore } from '../replay/store.ts'

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

// base64url(SHA-256(token)) and RFC 7638 / RFC 8705 thumbprints: 43 base64url characters. Anything else is a wiring bug.
const sha256Base64url = /^[A-Za-z0-9_-]{43}$/

/** The store key of a token's record; `{hash}` is the hash tag it shares with the token's jti claims and revoked entry. */
export function bindingKey(tokenHash: string): string {
  if (!sha256Base64url.test(tokenHash)) refuse('GW_INTERNAL', 'binding registry needs base64url(SHA-256(token))')
  return `bind:{${tokenHash}}`
}

const thumbprint = z.string().regex(sha256Base64url)
const seconds = z.number().int().nonnegative()
const bindingRecordSchema = z
  .object({
    kind: z.enum(['access_token', 'refresh_token']),
    issuerName: z.string().min(1),
    clientId: z.string().min(1),
    legacyClientId: z.string().min(1),
    jkt: thumbprint.optional(),
    x5t: thumbprint.optional(),
    scope: z.string(),
    sub: z.string().min(1).optional(),
    issuedAt: seconds,
    expiresAt: seconds,
  })
  // An access token's record binds it to a key or a certificate; an unbound one would make it a bearer token.
  // A refresh token's may bind it to the client alone (RFC 9449 §5).
  .refine((r) => r.kind === 'refresh_token' || r.jkt !== undefined || r.x5t !== undefined)

/** A stored record, or undefined when it is not one (corrupt, or written by something else): a record nobody can trust is no record. */
export function parseBindingRecord(stored: string | undefined): BindingRecord | undefined {
  if (stored === undefined) return undefined
  let json: unknown
  try {
    json = JSON.parse(stored)
  } catch {
    return undefined
  }
  const parsed = bindingRecordSchema.safeParse(json)
  return parsed.success ? parsed.data : undefined
}

/** The registry in a replay store: one JSON value per token, expiring with its TTL. */
export function createBindingRegistry(store: ReplayStore): BindingRegistry {
  return {
    async record(tokenHash, record, ttlMs) {
      const key = bindingKey(tokenHash)
      const checked = bindingRecordSchema.safeParse(record)
      if (!checked.success) refuse('GW_INTERNAL', 'binding record: not a valid record')
      await store.set(key, JSON.stringify(checked.data), ttlMs)
    },
    async lookup(tokenHash) {
      return parseBindingRecord(await store.get(bindingKey(tokenHash)))
    },
    async remove(tokenHash) {
      await store.delete(bindingKey(tokenHash))
    },
  }
}
