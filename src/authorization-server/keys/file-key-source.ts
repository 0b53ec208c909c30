// The gateway's keys read from files or the environment (src/authorization-server/keys/load-keys.ts),
// rotated by their configured times: a key is published publishAheadSeconds before it may sign, and
// a retired one stays published (and, for decryption, accepted) retiredKeptSeconds after retireAt.
import { CompactSign, compactDecrypt, decodeProtectedHeader } from 'jose'
import type { GatewayDecrypter, GatewayKeySource, GatewaySigner } from './key-source.ts'
import type { LoadedGatewayKey } from './load-keys.ts'

export interface KeyRotationSettings {
  readonly publishAheadSeconds: number
  readonly retiredKeptSeconds: number
}

export interface FileKeySourceOptions extends KeyRotationSettings {
  /** When a key appeared on a reload (kid → ms): it is published from then, and signs no sooner than publishAheadSeconds later. */
  readonly addedAt?: ReadonlyMap<string, number>
}

export interface FileKeySource extends GatewayKeySource {
  readonly kids: ReadonlySet<string>
  /** The keys that appeared on a reload, for the next reload to carry over (see keysAddedSince). */
  readonly addedAt: ReadonlyMap<string, number>
}

interface ScheduledKey {
  readonly key: LoadedGatewayKey
  readonly order: number
  readonly publishedFrom: number
  /** sig: from when it may sign. */
  readonly signsFrom: number
  /** Until when it is published. */
  readonly publishedUntil: number
  /** enc: until when what was encrypted to it is decrypted. */
  readonly acceptedUntil: number
}

function schedule(key: LoadedGatewayKey, order: number, options: FileKeySourceOptions): ScheduledKey {
  const aheadMs = options.publishAheadSeconds * 1000
  const keptMs = options.retiredKeptSeconds * 1000
  const added = options.addedAt?.get(key.kid)
  // Without activeFrom a key is published and active at once (the operator's choice: the first key of a deployment).
  const publishedFrom = key.activeFrom === undefined ? -Infinity : Math.max(key.activeFrom - aheadMs, added ?? -Infinity)
  const signsFrom = key.activeFrom === undefined ? -Infinity : Math.max(key.activeFrom, publishedFrom + aheadMs)
  const retireAt = key.retireAt ?? Infinity
  // A retired signing key stays published so that what it signed can be verified; a retired encryption key is
  // no longer offered to partners, but what they encrypted to it from a cached JWKS still decrypts for a while.
  return {
    key,
    order,
    publishedFrom,
    signsFrom,
    publishedUntil: key.use === 'sig' ? retireAt + keptMs : retireAt,
    acceptedUntil: retireAt + keptMs,
  }
}

function signerOf(key: LoadedGatewayKey): GatewaySigner {
  return {
    kid: key.kid,
    alg: key.alg,
    sign: (payload, typ) =>
      new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg: key.alg, kid: key.kid, typ }).sign(key.privateKey),
  }
}

function decrypterOf(key: LoadedGatewayKey): GatewayDecrypter {
  return {
    kid: key.kid,
    alg: key.alg,
    async decrypt(jwe) {
      const { kid } = decodeProtectedHeader(jwe)
      if (kid !== undefined && kid !== key.kid) throw new Error(`kid: ${String(kid).slice(0, 64)} is not ${key.kid}`)
      const { plaintext } = await compactDecrypt(jwe, key.privateKey, { keyManagementAlgorithms: [key.alg], contentEncryptionAlgorithms: ['A256GCM'] })
      return plaintext
    },
  }
}

/** The kids that appeared on this reload (absent from `previous`), with the time; those `previous` had added, carried over. */
export function keysAddedSince(previous: FileKeySource | undefined, keys: readonly LoadedGatewayKey[], nowMs: number): Map<string, number> {
  const added = new Map<string, number>()
  if (!previous) return added
  for (const { kid } of keys) {
    const earlier = previous.addedAt.get(kid)
    if (earlier !== undefined) added.set(kid, earlier)
    else if (!previous.kids.has(kid)) added.set(kid, nowMs)
  }
  return added
}

export function createFileKeySource(keys: readonly LoadedGatewayKey[], options: FileKeySourceOptions): FileKeySource {
  const scheduled = keys.map((key, order) => schedule(key, order, options))
  const signers = new Map(keys.filter((k) => k.use === 'sig').map((k) => [k.kid, signerOf(k)]))
  const decrypters = new Map(keys.filter((k) => k.use === 'enc').map((k) => [k.kid, decrypterOf(k)]))
  const newestFirst = scheduled
    .filter((s) => s.key.use === 'sig')
    .sort((a, b) => (b.key.activeFrom ?? -Infinity) - (a.key.activeFrom ?? -Infinity) || b.order - a.order)

  return {
    kids: new Set(keys.map((k) => k.kid)),
    addedAt: new Map(options.addedAt ?? []),
    signer(nowMs) {
      const current = newestFirst.find((s) => s.signsFrom <= nowMs && nowMs < (s.key.retireAt ?? Infinity))
      if (!current) throw new Error('gateway keys: no signing key is active now (authorizationServer.keys)')
      return signers.get(current.key.kid)!
    },
    decrypters(nowMs) {
      return scheduled.filter((s) => s.key.use === 'enc' && s.publishedFrom <= nowMs && nowMs < s.acceptedUntil).map((s) => decrypters.get(s.key.kid)!)
    },
    publicJwks(nowMs) {
      return { keys: scheduled.filter((s) => s.publishedFrom <= nowMs && nowMs < s.publishedUntil).map((s) => ({ ...s.key.publicJwk })) }
    },
    expiries() {
      return keys.filter((k) => k.retireAt !== undefined).map((k) => ({ kid: k.kid, use: k.use, notAfter: k.retireAt! }))
    },
    async close() {},
  }
}
