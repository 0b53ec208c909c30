// The revocation checker behind the seam in src/checks/revocation.ts: the deny list, then
// per certificate the sources of its CA's policy in order (OCSP, CRL), then the policy for
// when none answers. A certificate known to be revoked is refused whatever the policy.
import { certificateThumbprint } from '../x509.ts'
import { performance } from 'node:perf_hooks'
import { refuse } from '../errors.ts'
import type { RevocationChecker, RevocationContext, RevocationOverride } from '../checks/revocation.ts'
import type { SecurityEvents } from '../observability/events.ts'
import type { ClientCert, Clock, Logger } from '../types.ts'
import { createLru } from '../util/lru.ts'
import { readCertificateFacts, type CertificateFacts } from './certificate-facts.ts'
import { createCrlStore, type CrlLocation, type CrlSettings, type CrlStore } from './crl-store.ts'
import type { DenyList } from './deny-list.ts'
import type { RevocationHttp } from './http-fetch.ts'
import type { RevocationMetrics } from './metrics.ts'
import { buildOcspRequest, verifyOcspResponse, type OcspHashAlgorithm } from './ocsp.ts'
import { unavailableDetail, type KnownStatus, type RevocationSource, type SourceAnswer } from './types.ts'

export interface RevocationPolicy {
  /**
   * Consulted in order; the first that answers decides between good and unavailable. A revoked
   * status from any source held without asking (a loaded CRL, a cached OCSP answer) still refuses.
   * Empty: not checked.
   */
  readonly sources: readonly RevocationSource[]
  readonly checkIntermediates: boolean
  readonly onUnavailable: 'hard-fail' | 'soft-fail'
  /** soft-fail: how old (since its thisUpdate) the last good status may be. */
  readonly maxStalenessSeconds: number
}

export interface OcspSettings {
  /** Overrides the certificate's AIA responder. */
  readonly url: string | undefined
  readonly nonce: boolean
  readonly hashAlgorithm: OcspHashAlgorithm
  readonly timeoutMs: number
  readonly maxBytes: number
  /** A good or revoked answer is reused until its nextUpdate, but no longer than this. */
  readonly maxCacheMs: number
  /** Freshness of an answer without nextUpdate, from its thisUpdate. */
  readonly defaultValidityMs: number
}

export interface CaRevocation {
  readonly name: string
  readonly policy: RevocationPolicy
  readonly ocsp: OcspSettings
  readonly crl: CrlSettings
  /** Configured CRL files/URLs; when empty, the certificate's distribution points. */
  readonly crlLocations: readonly CrlLocation[]
}

export interface ConfiguredCa extends CaRevocation {
  /** Whether this entry governs certificates issued by `issuer`. */
  matches(issuer: CertificateFacts): boolean
  /** CA certificates known from configuration, so CRLs can load before the first request. */
  readonly knownIssuers: readonly CertificateFacts[]
}

export interface RevocationSettings {
  readonly cas: readonly ConfiguredCa[]
  /** For CAs without an entry of their own. */
  readonly fallback: CaRevocation
  readonly cacheSize: number
  readonly clockSkewMs: number
}

export interface RevocationCheckerDeps {
  readonly now: Clock
  readonly logger: Logger
  readonly events: Pick<SecurityEvents, 'emit'>
  readonly metrics: RevocationMetrics
  readonly http: RevocationHttp
  readonly denyList?: DenyList
  /** Replaces the default CRL store (tests tune its retry delay). */
  readonly crlStore?: CrlStore
}

export interface RunningRevocationChecker extends RevocationChecker {
  /** Reloads every CRL now. */
  refreshCrls(): Promise<void>
  close(): Promise<void>
}

const MAX_CHAIN = 10

function applyOverride(policy: RevocationPolicy, override: RevocationOverride | undefined): RevocationPolicy {
  if (!override) return policy
  return {
    sources: override.sources ?? policy.sources,
    checkIntermediates: override.checkIntermediates ?? policy.checkIntermediates,
    onUnavailable: override.onUnavailable ?? policy.onUnavailable,
    maxStalenessSeconds: override.maxStalenessSeconds ?? policy.maxStalenessSeconds,
  }
}

function describe(cert: CertificateFacts): string {
  return `serial ${cert.serial}, issuer ${cert.issuer}`
}

export function createRevocationChecker(settings: RevocationSettings, deps: RevocationCheckerDeps): RunningRevocationChecker {
  const { now, events, metrics, http, denyList } = deps
  const crlStore = deps.crlStore ?? createCrlStore({ http, now, logger: deps.logger, events, metrics })
  /** issuer key + serial → the newest verified status from any source, fresh or not. */
  const known = createLru<string, KnownStatus>(settings.cacheSize)
  const chains = createLru<string, CertificateFacts[]>(settings.cacheSize)
  const inFlight = new Map<string, Promise<SourceAnswer>>()
  metrics.watchCrls(() => crlStore.stats(now()))
  if (denyList) metrics.watchDenyListSize(() => denyList.size)

  for (const ca of settings.cas) {
    if (!ca.policy.sources.includes('crl') || ca.crlLocations.length === 0) continue
    for (const issuer of ca.knownIssuers) crlStore.preload(ca.name, issuer, ca.crlLocations, ca.crl)
  }

  function chainOf(cert: ClientCert): CertificateFacts[] {
    let chain = chains.get(cert.thumbprint)
    if (!chain) {
      chain = cert.chainDer.slice(0, MAX_CHAIN).map((der) => readCertificateFacts(der))
      chains.set(cert.thumbprint, chain)
    }
    return chain
  }

  function caFor(issuer: CertificateFacts): CaRevocation {
    return settings.cas.find((ca) => ca.matches(issuer)) ?? settings.fallback
  }

  async function queryOcsp(url: string, cert: CertificateFacts, issuer: CertificateFacts, ocsp: OcspSettings, nowMs: number): Promise<SourceAnswer> {
    const started = performance.now()
    const seconds = () => (performance.now() - started) / 1000
    try {
      const request = buildOcspRequest(cert, issuer, { hashAlgorithm: ocsp.hashAlgorithm, nonce: ocsp.nonce })
      const body = await http.fetch(url, {
        method: 'POST',
        body: request.der,
        contentType: 'application/ocsp-request',
        accept: 'application/ocsp-response',
        timeoutMs: ocsp.timeoutMs,
        maxBytes: ocsp.maxBytes,
      })
      const verdict = verifyOcspResponse(body, {
        cert,
        issuer,
        nonceExtension: request.nonceExtension,
        nowMs,
        clockSkewMs: settings.clockSkewMs,
        defaultValidityMs: ocsp.defaultValidityMs,
      })
      metrics.ocspDuration.observe({ outcome: verdict.kind === 'status' ? verdict.known.status : 'unknown' }, seconds())
      if (verdict.kind === 'unknown') return verdict
      return { kind: 'status', known: { ...verdict.known, freshUntil: Math.min(verdict.known.freshUntil, nowMs + ocsp.maxCacheMs) } }
    } catch (error) {
      metrics.ocspDuration.observe({ outcome: 'unavailable' }, seconds())
      return { kind: 'unavailable', detail: `${url}: ${unavailableDetail(error)}` }
    }
  }

  function lookupOcsp(key: string, cert: CertificateFacts, issuer: CertificateFacts, ca: CaRevocation, nowMs: number): Promise<SourceAnswer> {
    const url = ca.ocsp.url ?? cert.ocspUrls[0]
    if (!url) return Promise.resolve({ kind: 'unavailable', detail: 'no OCSP responder (none configured, none in the certificate)' })
    const cached = known.get(key)
    if (cached?.source === 'ocsp' && cached.freshUntil > nowMs) {
      metrics.ocspCache.inc({ result: 'hit' })
      return Promise.resolve({ kind: 'status', known: cached })
    }
    // Concurrent look-ups for one certificate share one request.
    const flightKey = `${key}|${url}`
    const flight = inFlight.get(flightKey)
    if (flight) {
      metrics.ocspCache.inc({ result: 'shared' })
      return flight
    }
    metrics.ocspCache.inc({ result: 'miss' })
    const started = queryOcsp(url, cert, issuer, ca.ocsp, nowMs).finally(() => inFlight.delete(flightKey))
    inFlight.set(flightKey, started)
    return started
  }

  function crlLocationsFor(cert: CertificateFacts, ca: CaRevocation): readonly CrlLocation[] {
    return ca.crlLocations.length > 0 ? ca.crlLocations : cert.crlUrls.map((ref): CrlLocation => ({ kind: 'url', ref }))
  }

  function lookup(
    source: RevocationSource,
    key: string,
    cert: CertificateFacts,
    issuer: CertificateFacts,
    ca: CaRevocation,
    nowMs: number,
  ): Promise<SourceAnswer> {
    if (source === 'ocsp') return lookupOcsp(key, cert, issuer, ca, nowMs)
    return crlStore.lookup(ca.name, issuer, crlLocationsFor(cert, ca), cert, ca.crl, nowMs)
  }

  function refuseRevoked(cert: CertificateFacts, status: KnownStatus): never {
    metrics.decisions.inc({ outcome: 'revoked' })
    const when = status.revokedAt !== undefined ? ` at ${new Date(status.revokedAt).toISOString()}` : ''
    return refuse('GW_CLIENT_CERT_REVOKED', `${status.source}: revoked${when}${status.reason ? ` (${status.reason})` : ''}; ${describe(cert)}`)
  }

  function remember(key: string, status: KnownStatus): void {
    const previous = known.get(key)
    // One source's good never hides another source's revoked; a source may lift its own hold.
    if (previous?.status === 'revoked' && status.status === 'good' && previous.source !== status.source) return
    if (!previous || status.thisUpdate >= previous.thisUpdate || status.source === 'ocsp') known.set(key, status)
  }

  /** What the policy's other sources already hold against the certificate, without asking them. */
  function heldRevocation(
    key: string,
    cert: CertificateFacts,
    issuer: CertificateFacts,
    ca: CaRevocation,
    policy: RevocationPolicy,
    answered: RevocationSource,
    nowMs: number,
  ): KnownStatus | undefined {
    const cached = known.get(key)
    if (cached?.status === 'revoked' && policy.sources.includes(cached.source)) return cached
    if (answered !== 'crl' && policy.sources.includes('crl')) return crlStore.heldRevocation(ca.name, issuer, crlLocationsFor(cert, ca), cert, ca.crl, nowMs)
    return undefined
  }

  async function checkOne(
    cert: CertificateFacts,
    issuer: CertificateFacts,
    policy: RevocationPolicy,
    ca: CaRevocation,
    context: RevocationContext,
    leafThumbprint: string,
  ): Promise<void> {
    if (policy.sources.length === 0) {
      metrics.decisions.inc({ outcome: 'not_checked' })
      return
    }
    const key = `${issuer.keyId}:${cert.serial}`
    const problems: string[] = []
    let stale = known.get(key)
    let unknown = false
    for (const source of policy.sources) {
      const answer = await lookup(source, key, cert, issuer, ca, context.nowMs)
      metrics.lookups.inc({ source, outcome: answer.kind === 'status' ? answer.known.status : answer.kind })
      if (answer.kind === 'status') {
        remember(key, answer.known)
        if (answer.known.status === 'revoked') refuseRevoked(cert, answer.known)
        const heldRevoked = heldRevocation(key, cert, issuer, ca, policy, source, context.nowMs)
        if (heldRevoked) {
          metrics.lookups.inc({ source: heldRevoked.source, outcome: 'revoked' })
          refuseRevoked(cert, heldRevoked)
        }
        metrics.decisions.inc({ outcome: 'good' })
        return
      }
      problems.push(`${source}: ${answer.detail}`)
      if (answer.kind === 'unknown') unknown = true
      else if (answer.stale && (!stale || answer.stale.thisUpdate > stale.thisUpdate)) stale = answer.stale
    }
    if (stale?.status === 'revoked') refuseRevoked(cert, stale)
    // soft-fail accepts only a status once known good and recent enough, never a certificate a
    // responder says it does not know, never one it has never seen good.
    const ageMs = stale ? context.nowMs - stale.thisUpdate : Infinity
    if (policy.onUnavailable === 'soft-fail' && !unknown && stale && ageMs <= policy.maxStalenessSeconds * 1000) {
      metrics.decisions.inc({ outcome: 'soft_fail' })
      events.emit({
        event: 'dependency.unavailable',
        dependency: 'revocation',
        reason: 'revocation.soft_fail',
        route: context.route,
        certThumbprint: leafThumbprint,
        detail: `accepted on a ${stale.source} status ${Math.round(ageMs / 1000)} s old; ${describe(cert)}; ${problems.join('; ')}`,
      })
      return
    }
    metrics.decisions.inc({ outcome: 'unavailable' })
    const why = stale ? `last good status ${Math.round(ageMs / 1000)} s old` : 'no status known'
    refuse('GW_REVOCATION_UNAVAILABLE', `${problems.join('; ')}; ${why}; ${describe(cert)}`)
  }

  return {
    async check(clientCert, context) {
      const ctx: RevocationContext = context ?? { nowMs: now() }
      const chain = chainOf(clientCert)
      if (denyList) {
        for (const [index, cert] of chain.entries()) {
          const why = denyList.match(cert, index === 0 ? clientCert.thumbprint : certificateThumbprint(cert.der))
          if (why === undefined) continue
          metrics.lookups.inc({ source: 'deny_list', outcome: 'revoked' })
          metrics.decisions.inc({ outcome: 'revoked' })
          refuse('GW_CLIENT_CERT_REVOKED', `deny list: ${why}; ${describe(cert)}`)
        }
      }
      const leaf = chain[0]!
      const leafIssuer = chain[1]
      const leafCa = leafIssuer ? caFor(leafIssuer) : settings.fallback
      const leafPolicy = applyOverride(leafCa.policy, ctx.override)
      if (!leafIssuer) {
        if (leafPolicy.sources.length === 0) return
        metrics.decisions.inc({ outcome: 'unavailable' })
        refuse('GW_REVOCATION_UNAVAILABLE', `issuer certificate not configured; ${describe(leaf)}`)
      }
      await checkOne(leaf, leafIssuer, leafPolicy, leafCa, ctx, clientCert.thumbprint)
      if (!leafPolicy.checkIntermediates) return
      for (let index = 1; index + 1 < chain.length; index++) {
        const cert = chain[index]!
        const issuer = chain[index + 1]!
        const ca = caFor(issuer)
        await checkOne(cert, issuer, applyOverride(ca.policy, ctx.override), ca, ctx, clientCert.thumbprint)
      }
    },
    refreshCrls: () => crlStore.refreshAll(),
    async close() {
      crlStore.close()
      denyList?.close()
      await http.close()
    },
  }
}
