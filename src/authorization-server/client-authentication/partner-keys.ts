// The keys a partner signs its client assertions with: its registered `jwks`, or its `jwksUri`
// fetched over HTTPS with the same rules, cache and refresh cool-down as an issuer's (src/tokens/jwks.ts).
import type { KeyObject } from 'node:crypto'
import type { JWSHeaderParameters } from 'jose'
import { refuse } from '../../errors.ts'
import { createRemoteKeySet, createStaticKeyResolver, type RemoteKeySet } from '../../tokens/jwks.ts'
import type { Clock, Logger } from '../../types.ts'

export type KeyResolver = (protectedHeader: JWSHeaderParameters) => Promise<KeyObject> | KeyObject

export interface RegisteredKeys {
  readonly jwks?: object | undefined
  readonly jwksUri?: string | undefined
}

export interface PartnerKeySetOptions {
  readonly now: Clock
  /** CA bundle for partners' jwksUri servers; the system roots when absent. */
  readonly caPem?: string
  readonly cooldownMs?: number
  readonly maxAgeMs?: number
  readonly logger?: Logger
}

export interface PartnerKeySets {
  /** Throws GatewayError GW_TOKEN_INVALID (no fitting key) or GW_ISSUER_UNAVAILABLE (jwksUri cannot be fetched). */
  resolverFor(registered: RegisteredKeys): KeyResolver
  close(): Promise<void>
}

export function createPartnerKeySets(options: PartnerKeySetOptions): PartnerKeySets {
  // Keyed by the registered object: a reloaded partner file brings new objects, hence new resolvers.
  const inline = new WeakMap<object, KeyResolver>()
  const remote = new Map<string, RemoteKeySet>()

  function inlineResolver(jwks: object): KeyResolver {
    let resolver = inline.get(jwks)
    if (!resolver) {
      try {
        resolver = createStaticKeyResolver(jwks)
      } catch {
        resolver = () => refuse('GW_TOKEN_INVALID', 'no usable registered key')
      }
      inline.set(jwks, resolver)
    }
    return resolver
  }

  function remoteResolver(uri: string): KeyResolver {
    let keySet = remote.get(uri)
    if (!keySet) {
      keySet = createRemoteKeySet({
        uri,
        now: options.now,
        caPem: options.caPem,
        cooldownMs: options.cooldownMs,
        maxAgeMs: options.maxAgeMs,
        logger: options.logger,
      })
      remote.set(uri, keySet)
    }
    return keySet.getKey
  }

  return {
    resolverFor(registered) {
      if (registered.jwks) return inlineResolver(registered.jwks)
      if (registered.jwksUri) return remoteResolver(registered.jwksUri)
      return () => refuse('GW_TOKEN_INVALID', 'no registered keys')
    },
    async close() {
      const sets = [...remote.values()]
      remote.clear()
      await Promise.all(sets.map((set) => set.close()))
    },
  }
}
