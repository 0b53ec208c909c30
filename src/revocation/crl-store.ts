// CRLs per CA and location (configured files/URLs, or the certificate's distribution
// points), loaded on first use or ahead of it, refreshed in the background before they
// expire. A failed refresh keeps the last good CRL (and says so in a metric and an event);
// an expired CRL answers "unavailable", never "nothing revoked". Each list stands alone, so
// one CA's missing CRL cannot affect another CA.
import { createHash } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import type { SecurityEvents } from '../observability/events.ts'
import type { Clock, Logger } from '../types.ts'
import type { CertificateFacts } from './certificate-facts.ts'
import { crlCovers, crlDer, type VerifiedCrl } from './crl.ts'
import { parseCrl } from './crl-parse.ts'
import type { RevocationHttp } from './http-fetch.ts'
import type { RevocationMetrics } from './metrics.ts'
import { RevocationUnavailable, unavailableDetail, type CrlStats, type KnownStatus, type SourceAnswer } from './types.ts'

export interface CrlLocation {
  readonly kind: 'file' | 'url'
  /** An absolute path or an http(s) URL. */
  readonly ref: string
}

export interface CrlSettings {
  readonly timeoutMs: number
  readonly maxBytes: number
  readonly refreshIntervalMs: number
  readonly refreshBeforeExpiryMs: number
  readonly clockSkewMs: number
}

export interface CrlStoreOptions {
  readonly http: RevocationHttp
  readonly now: Clock
  readonly logger: Logger
  readonly events: Pick<SecurityEvents, 'emit'>
  readonly metrics: RevocationMetrics
  /** Lists at least this large are parsed on a worker thread. */
  readonly workerThresholdBytes?: number
  /** Shortest wait between two attempts at one list (default 5 s). */
  readonly minRetryMs?: number
}

export interface CrlStore {
  /** Starts loading a CA's lists now, so the first request does not wait. */
  preload(caName: string, issuer: CertificateFacts, locations: readonly CrlLocation[], settings: CrlSettings): void
  lookup(
    caName: string,
    issuer: CertificateFacts,
    locations: readonly CrlLocation[],
    cert: CertificateFacts,
    settings: CrlSettings,
    nowMs: number,
  ): Promise<SourceAnswer>
  /**
   * A revocation named by a list already held (fresh or expired), without waiting for anything;
   * a list not held yet starts loading in the background for the requests after this one.
   */
  heldRevocation(
    caName: string,
    issuer: CertificateFacts,
    locations: readonly CrlLocation[],
    cert: CertificateFacts,
    settings: CrlSettings,
    nowMs: number,
  ): KnownStatus | undefined
  /** Reloads every list now (tests, SIGHUP); resolves when every attempt ended. */
  refreshAll(): Promise<void>
  /** Per CA name: age in seconds and entry count of the newest good CRL held (for the gauges). */
  stats(nowMs: number): Map<string, CrlStats>
  close(): void
}

interface CrlList {
  readonly caName: string
  readonly issuer: CertificateFacts
  readonly location: CrlLocation
  readonly settings: CrlSettings
  current: VerifiedCrl | undefined
  /** SHA-256 of the DER of `current`: an unchanged list is not parsed again. */
  currentDigest: string | undefined
  loading: Promise<void> | undefined
  timer: NodeJS.Timeout | undefined
  failures: number
  lastAttempt: number
  lastError: string | undefined
}

const DEFAULT_MIN_RETRY_MS = 5_000
// Background attempts never follow each other faster than this, whatever minRetryMs says.
const TIMER_FLOOR_MS = 1_000

function describe(location: CrlLocation): string {
  return location.kind === 'file' ? `file ${location.ref}` : location.ref
}

export function createCrlStore(options: CrlStoreOptions): CrlStore {
  const { http, now, logger, events, metrics } = options
  const minRetryMs = options.minRetryMs ?? DEFAULT_MIN_RETRY_MS
  const lists = new Map<string, CrlList>()
  let closed = false

  async function fetchBytes(list: CrlList): Promise<Buffer> {
    const { location, settings } = list
    if (location.kind === 'url') {
      return http.fetch(location.ref, {
        method: 'GET',
        accept: 'application/pkix-crl, application/x-pkcs7-crl;q=0.5, */*;q=0.1',
        timeoutMs: settings.timeoutMs,
        maxBytes: settings.maxBytes,
      })
    }
    try {
      const info = await stat(location.ref)
      if (info.size > settings.maxBytes) throw new RevocationUnavailable(`${location.ref} is larger than ${settings.maxBytes} bytes`)
      return await readFile(location.ref)
    } catch (error) {
      if (error instanceof RevocationUnavailable) throw error
      throw new RevocationUnavailable(`${location.ref}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error })
    }
  }

  function accept(list: CrlList, crl: VerifiedCrl): void {
    const nowMs = now()
    if (crl.thisUpdate > nowMs + list.settings.clockSkewMs) throw new RevocationUnavailable('CRL thisUpdate is in the future')
    if (crl.nextUpdate <= nowMs) throw new RevocationUnavailable(`CRL expired at ${new Date(crl.nextUpdate).toISOString()}`)
    const current = list.current
    // A replayed older list would silently un-revoke certificates.
    if (
      current &&
      (crl.thisUpdate < current.thisUpdate || (crl.crlNumber !== undefined && current.crlNumber !== undefined && crl.crlNumber < current.crlNumber))
    ) {
      throw new RevocationUnavailable('CRL is older than the one already held')
    }
    list.current = crl
  }

  function schedule(list: CrlList): void {
    if (closed) return
    clearTimeout(list.timer)
    const nowMs = now()
    const { refreshIntervalMs, refreshBeforeExpiryMs } = list.settings
    const floor = Math.max(minRetryMs, TIMER_FLOOR_MS)
    let delay: number
    if (list.failures > 0) delay = Math.min(floor * 2 ** Math.min(list.failures - 1, 20), refreshIntervalMs)
    else if (list.current) delay = Math.min(refreshIntervalMs, list.current.nextUpdate - refreshBeforeExpiryMs - nowMs)
    else delay = refreshIntervalMs
    list.timer = setTimeout(() => void load(list), Math.max(delay, floor))
    list.timer.unref()
  }

  function load(list: CrlList): Promise<void> {
    list.loading ??= (async () => {
      list.lastAttempt = now()
      try {
        const der = crlDer(await fetchBytes(list))
        const digest = createHash('sha256').update(der).digest('hex')
        if (digest === list.currentDigest && list.current) accept(list, list.current)
        else {
          accept(list, await parseCrl(der, list.issuer, { workerThresholdBytes: options.workerThresholdBytes }))
          list.currentDigest = digest
        }
        list.failures = 0
        list.lastError = undefined
        metrics.crlLoads.inc({ ca: list.caName, outcome: 'loaded' })
      } catch (error) {
        list.failures++
        list.lastError = unavailableDetail(error)
        metrics.crlLoads.inc({ ca: list.caName, outcome: 'failed' })
        const kept = list.current ? `; keeping the CRL of ${new Date(list.current.thisUpdate).toISOString()}` : ''
        logger.warn({ ca: list.caName, location: describe(list.location), error: list.lastError }, `CRL refresh failed${kept}`)
        events.emit({
          event: 'dependency.unavailable',
          dependency: 'crl',
          reason: 'crl.refresh_failed',
          detail: `${list.caName} ${describe(list.location)}: ${list.lastError}${kept}`,
        })
      } finally {
        list.loading = undefined
        schedule(list)
      }
    })()
    return list.loading
  }

  function ensure(caName: string, issuer: CertificateFacts, location: CrlLocation, settings: CrlSettings): CrlList {
    const key = `${issuer.keyId}|${issuer.subjectDer.toString('hex')}|${location.kind}:${location.ref}`
    let list = lists.get(key)
    if (!list) {
      list = {
        caName,
        issuer,
        location,
        settings,
        current: undefined,
        currentDigest: undefined,
        loading: undefined,
        timer: undefined,
        failures: 0,
        lastAttempt: -Infinity,
        lastError: undefined,
      }
      lists.set(key, list)
    }
    return list
  }

  function isFresh(crl: VerifiedCrl, nowMs: number, skewMs: number): boolean {
    return crl.nextUpdate > nowMs && crl.thisUpdate <= nowMs + skewMs
  }

  function statusFrom(crl: VerifiedCrl, cert: CertificateFacts): KnownStatus {
    const entry = crl.revoked.get(cert.serial)
    return entry
      ? { status: 'revoked', source: 'crl', thisUpdate: crl.thisUpdate, freshUntil: crl.nextUpdate, revokedAt: entry.revokedAt, reason: entry.reason }
      : { status: 'good', source: 'crl', thisUpdate: crl.thisUpdate, freshUntil: crl.nextUpdate }
  }

  function newest(crls: VerifiedCrl[]): VerifiedCrl | undefined {
    return crls.reduce<VerifiedCrl | undefined>((best, crl) => (!best || crl.thisUpdate > best.thisUpdate ? crl : best), undefined)
  }

  return {
    preload(caName, issuer, locations, settings) {
      for (const location of locations) {
        const list = ensure(caName, issuer, location, settings)
        if (!list.current && !list.loading) void load(list)
      }
    },

    async lookup(caName, issuer, locations, cert, settings, nowMs) {
      if (locations.length === 0) return { kind: 'unavailable', detail: 'no CRL location (none configured, no distribution point in the certificate)' }
      const candidates = locations.map((location) => ensure(caName, issuer, location, settings))
      const pending: Promise<void>[] = []
      for (const list of candidates) {
        if (list.current && isFresh(list.current, nowMs, settings.clockSkewMs)) continue
        if (!list.loading && nowMs - list.lastAttempt >= minRetryMs) void load(list)
        if (list.loading) pending.push(list.loading)
      }
      await Promise.all(pending)
      const held = candidates.map((list) => list.current).filter((crl): crl is VerifiedCrl => crl !== undefined && crlCovers(crl, cert))
      const fresh = newest(held.filter((crl) => isFresh(crl, nowMs, settings.clockSkewMs)))
      if (fresh) return { kind: 'status', known: statusFrom(fresh, cert) }
      const stale = newest(held)
      const errors = candidates
        .map((list) => list.lastError)
        .filter(Boolean)
        .join('; ')
      if (stale) {
        const known = statusFrom(stale, cert)
        // Revocation is permanent: an expired list that names the certificate still proves it.
        if (known.status === 'revoked') return { kind: 'status', known }
        return { kind: 'unavailable', detail: `CRL expired at ${new Date(stale.nextUpdate).toISOString()}${errors ? ` (${errors})` : ''}`, stale: known }
      }
      return { kind: 'unavailable', detail: errors || 'no CRL covers the certificate' }
    },

    heldRevocation(caName, issuer, locations, cert, settings, nowMs) {
      for (const location of locations) {
        const list = ensure(caName, issuer, location, settings)
        const crl = list.current
        if (!crl && !list.loading && nowMs - list.lastAttempt >= minRetryMs) void load(list)
        if (!crl || !crlCovers(crl, cert)) continue
        const known = statusFrom(crl, cert)
        if (known.status === 'revoked') return known
      }
      return undefined
    },

    async refreshAll() {
      await Promise.all([...lists.values()].map((list) => load(list)))
    },

    stats(nowMs) {
      const stats = new Map<string, CrlStats>()
      for (const list of lists.values()) {
        if (!list.current) continue
        const ageSeconds = (nowMs - list.current.thisUpdate) / 1000
        const held = stats.get(list.caName)
        if (!held || ageSeconds < held.ageSeconds) stats.set(list.caName, { ageSeconds, entries: list.current.revoked.size })
      }
      return stats
    },

    close() {
      closed = true
      for (const list of lists.values()) clearTimeout(list.timer)
    },
  }
}
