// DPoP proof keys, imported once: a bounded LRU keyed by the RFC 7638 canonical JSON of the
// key's required members, so extra members (alg, use, kid, ...) never split or poison an entry.

import { createPublicKey, hash, type KeyObject } from 'node:crypto'
import { isCanonicalBase64url } from '../../util/base64url.ts'

export type Jwk = Readonly<Record<string, unknown>>

export interface ProofKey {
  /** RFC 7638 SHA-256 thumbprint, the value `cnf.jkt` is compared with (RFC 9449 §6.1). */
  readonly jkt: string
  readonly key: KeyObject
}

export interface ProofKeyCache {
  /** The key for a public EC P-256, OKP Ed25519 or RSA JWK; undefined when it is not a valid one. */
  resolve(jwk: Jwk): ProofKey | undefined
  readonly hits: number
  readonly misses: number
  readonly size: number
}

export interface ProofKeyCacheOptions {
  readonly maxEntries: number
}

function hasBytes(value: string | undefined, bytes: number): boolean {
  return value !== undefined && Buffer.from(value, 'base64url').length === bytes
}

/** RFC 7638 §3.2 required members, in lexicographic order; undefined if any is missing or not a string. */
function requiredMembers(jwk: Jwk): Record<string, string> | undefined {
  const member = (name: string): string | undefined => {
    const value = Object.hasOwn(jwk, name) ? jwk[name] : undefined
    return typeof value === 'string' && value !== '' ? value : undefined
  }
  const kty = member('kty')
  switch (kty) {
    case 'EC': {
      const crv = member('crv'),
        x = member('x'),
        y = member('y')
      return crv && x && y ? { crv, kty, x, y } : undefined
    }
    case 'OKP': {
      const crv = member('crv'),
        x = member('x')
      return crv && x ? { crv, kty, x } : undefined
    }
    case 'RSA': {
      const e = member('e'),
        n = member('n')
      return e && n ? { e, kty, n } : undefined
    }
    default:
      return undefined
  }
}

/** RFC 7638 canonical JSON of `jwk`'s required members (EC, OKP, RSA), or undefined. */
export function canonicalJwk(jwk: Jwk): string | undefined {
  const members = requiredMembers(jwk)
  return members && JSON.stringify(members)
}

/** RFC 7638 SHA-256 JWK thumbprint, base64url. Throws TypeError for a JWK without the required members. */
export function jwkThumbprint(jwk: Jwk): string {
  const canonical = canonicalJwk(jwk)
  if (canonical === undefined) throw new TypeError('JWK lacks the RFC 7638 required members of an EC, OKP or RSA key')
  return hash('sha256', canonical, 'base64url')
}

function importPublicKey(members: Record<string, string>): KeyObject | undefined {
  const encoded = Object.entries(members).filter(([name]) => name !== 'kty' && name !== 'crv')
  if (!encoded.every(([, value]) => isCanonicalBase64url(value))) return undefined
  // RFC 7518 §6.2.1.2 and RFC 8037 §2: coordinates have the full length of the curve.
  if (members.kty === 'EC' && (members.crv !== 'P-256' || !hasBytes(members.x, 32) || !hasBytes(members.y, 32))) return undefined
  if (members.kty === 'OKP' && (members.crv !== 'Ed25519' || !hasBytes(members.x, 32))) return undefined
  try {
    const key = createPublicKey({ key: members, format: 'jwk' })
    return key.type === 'public' ? key : undefined
  } catch {
    return undefined
  }
}

export function createProofKeyCache(options: ProofKeyCacheOptions): ProofKeyCache {
  const { maxEntries } = options
  if (!Number.isSafeInteger(maxEntries) || maxEntries <= 0) {
    throw new RangeError('proof key cache maxEntries must be a positive integer')
  }
  const entries = new Map<string, ProofKey>()
  let hits = 0
  let misses = 0

  return {
    resolve(jwk) {
      const members = requiredMembers(jwk)
      if (!members) return undefined
      const canonical = JSON.stringify(members)
      const cached = entries.get(canonical)
      if (cached) {
        hits++
        entries.delete(canonical)
        entries.set(canonical, cached)
        return cached
      }
      misses++
      const key = importPublicKey(members)
      if (!key) return undefined
      const entry: ProofKey = { jkt: hash('sha256', canonical, 'base64url'), key }
      entries.set(canonical, entry)
      if (entries.size > maxEntries) entries.delete(entries.keys().next().value!)
      return entry
    },
    get hits() {
      return hits
    },
    get misses() {
      return misses
    },
    get size() {
      return entries.size
    },
  }
}
