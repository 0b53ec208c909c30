// The certificates a self_signed_tls_client_auth partner registered (RFC 8705 §2.2.2): the x5c of its
// inline `jwks`, or of the JWK Set at its `jwksUri`, fetched over HTTPS, cached, and fetched again when
// older than maxAgeMs or, at most once per cool-down, when a presented certificate is not in it.
import { request, type Agent } from 'undici'
import { createIssuerAgent, requireHttpsUrl } from '../../tokens/jwks.ts'
import type { Clock, Logger } from '../../types.ts'
import type { RegisteredKeys } from './partner-keys.ts'
import { registeredCertificateThumbprints } from './self-signed-tls-client-auth.ts'

export interface PartnerCertificateSetOptions {
  readonly now: Clock
  readonly caPem?: string
  readonly cooldownMs?: number
  readonly maxAgeMs?: number
  readonly timeoutMs?: number
  readonly logger?: Logger
}

export interface PartnerCertificateSets {
  /** The SHA-256 thumbprints registered; `fresh` asks for a refetch (rate limited by the cool-down). Rejects when nothing could ever be fetched. */
  thumbprints(registered: RegisteredKeys, fresh?: boolean): Promise<ReadonlySet<string>>
  close(): Promise<void>
}

interface RemoteSet {
  thumbprints: ReadonlySet<string> | undefined
  fetchedAtMs: number
  attemptedAtMs: number
  inFlight: Promise<void> | undefined
}

export function createPartnerCertificateSets(options: PartnerCertificateSetOptions): PartnerCertificateSets {
  const { now, logger } = options
  const cooldownMs = options.cooldownMs ?? 30_000
  const maxAgeMs = options.maxAgeMs ?? 600_000
  const timeoutMs = options.timeoutMs ?? 5_000
  const inline = new WeakMap<object, ReadonlySet<string>>()
  const remote = new Map<string, RemoteSet>()
  let agent: Agent | undefined

  async function fetchSet(uri: string, set: RemoteSet): Promise<void> {
    set.attemptedAtMs = now()
    try {
      agent ??= createIssuerAgent({ caPem: options.caPem, timeoutMs })
      const response = await request(uri, { dispatcher: agent, method: 'GET', headers: { accept: 'application/jwk-set+json, application/json' } })
      if (response.statusCode !== 200) {
        await response.body.dump()
        throw new Error(`status ${response.statusCode}`)
      }
      set.thumbprints = registeredCertificateThumbprints(JSON.parse(await response.body.text()))
      set.fetchedAtMs = now()
    } catch (error) {
      logger?.warn({ jwksUri: uri, reason: error instanceof Error ? error.message : 'unknown' }, 'partner JWKS fetch failed; keeping the last good set')
    }
  }

  function refresh(uri: string, set: RemoteSet): Promise<void> {
    set.inFlight ??= fetchSet(uri, set).finally(() => {
      set.inFlight = undefined
    })
    return set.inFlight
  }

  async function remoteThumbprints(uri: string, fresh: boolean): Promise<ReadonlySet<string>> {
    requireHttpsUrl(uri, 'jwksUri')
    let set = remote.get(uri)
    if (!set) {
      set = { thumbprints: undefined, fetchedAtMs: -Infinity, attemptedAtMs: -Infinity, inFlight: undefined }
      remote.set(uri, set)
    }
    const stale = now() - set.fetchedAtMs >= maxAgeMs || fresh
    if (set.inFlight || (stale && now() - set.attemptedAtMs >= cooldownMs)) await refresh(uri, set)
    if (!set.thumbprints) throw new Error('the partner JWK Set cannot be fetched')
    return set.thumbprints
  }

  return {
    async thumbprints(registered, fresh = false) {
      if (registered.jwks) {
        let thumbprints = inline.get(registered.jwks)
        if (!thumbprints) inline.set(registered.jwks, (thumbprints = registeredCertificateThumbprints(registered.jwks)))
        return thumbprints
      }
      if (registered.jwksUri) return remoteThumbprints(registered.jwksUri, fresh)
      return new Set()
    },
    async close() {
      remote.clear()
      await agent?.destroy()
    },
  }
}
