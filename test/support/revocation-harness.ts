// Builds a real revocation checker around one test CA, with a controllable clock, its own
// metrics registry and a record of the security events it emitted.
import { X509Certificate } from 'node:crypto'
import { Registry } from 'prom-client'
import { toClientCert } from '../../src/x509.ts'
import type { RevocationContext } from '../../src/checks/revocation.ts'
import type { SecurityEvent } from '../../src/observability/events.ts'
import { readCertificateFacts } from '../../src/revocation/certificate-facts.ts'
import {
  createRevocationChecker,
  type CaRevocation,
  type OcspSettings,
  type RevocationPolicy,
  type RunningRevocationChecker,
} from '../../src/revocation/checker.ts'
import { createCrlStore, type CrlLocation, type CrlSettings } from '../../src/revocation/crl-store.ts'
import type { DenyList } from '../../src/revocation/deny-list.ts'
import { createRevocationHttp } from '../../src/revocation/http-fetch.ts'
import { createRevocationMetrics, type RevocationMetrics } from '../../src/revocation/metrics.ts'
import type { ClientCert, Logger } from '../../src/types.ts'

export interface HarnessCa {
  readonly name: string
  readonly certPem: string
  readonly policy?: Partial<RevocationPolicy>
  readonly ocsp?: Partial<OcspSettings>
  readonly crl?: Partial<CrlSettings>
  readonly crlLocations?: readonly CrlLocation[]
}

export interface Harness {
  readonly checker: RunningRevocationChecker
  readonly metrics: RevocationMetrics
  readonly registry: Registry
  readonly events: SecurityEvent[]
  readonly logs: { level: string; obj: object; msg?: string }[]
  /** The clock every part reads; tests move it. */
  readonly clock: { now: number }
  clientCert(certPem: string, issuers: readonly string[]): ClientCert
  check(cert: ClientCert, context?: Partial<RevocationContext>): Promise<void>
  /** Value of a metric sample, 0 when absent. */
  metric(name: string, labels?: Record<string, string>): Promise<number>
  close(): Promise<void>
}

export const DEFAULT_POLICY: RevocationPolicy = { sources: ['ocsp', 'crl'], checkIntermediates: false, onUnavailable: 'hard-fail', maxStalenessSeconds: 3600 }
export const DEFAULT_OCSP: OcspSettings = {
  url: undefined,
  nonce: false,
  hashAlgorithm: 'sha1',
  timeoutMs: 3000,
  maxBytes: 1024 * 1024,
  maxCacheMs: 3_600_000,
  defaultValidityMs: 300_000,
}
export const DEFAULT_CRL: CrlSettings = {
  timeoutMs: 5000,
  maxBytes: 64 * 1024 * 1024,
  refreshIntervalMs: 300_000,
  refreshBeforeExpiryMs: 60_000,
  clockSkewMs: 60_000,
}

function revocationOf(ca: HarnessCa): CaRevocation {
  return {
    name: ca.name,
    policy: { ...DEFAULT_POLICY, ...ca.policy },
    ocsp: { ...DEFAULT_OCSP, ...ca.ocsp },
    crl: { ...DEFAULT_CRL, ...ca.crl },
    crlLocations: ca.crlLocations ?? [],
  }
}

export function createHarness(options: {
  cas: readonly HarnessCa[]
  fallback?: HarnessCa
  denyList?: (metrics: RevocationMetrics, events: SecurityEvent[], logger: Logger) => DenyList
  cacheSize?: number
  workerThresholdBytes?: number
}): Harness {
  const clock = { now: Date.now() }
  const now = () => clock.now
  const registry = new Registry()
  const metrics = createRevocationMetrics(registry)
  const events: SecurityEvent[] = []
  const logs: Harness['logs'] = []
  const logger: Logger = {
    info: (obj, msg) => void logs.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => void logs.push({ level: 'warn', obj, msg }),
    error: (obj, msg) => void logs.push({ level: 'error', obj, msg }),
  }
  const emitter = { emit: (event: SecurityEvent) => void events.push(event) }
  const http = createRevocationHttp()
  const crlStore = createCrlStore({ http, now, logger, events: emitter, metrics, minRetryMs: 0, workerThresholdBytes: options.workerThresholdBytes })
  const cas = options.cas.map((ca) => {
    const known = readCertificateFacts(new X509Certificate(ca.certPem).raw)
    return { ...revocationOf(ca), knownIssuers: [known], matches: (issuer: { keyId: string }) => issuer.keyId === known.keyId }
  })
  const checker = createRevocationChecker(
    { cas, fallback: revocationOf(options.fallback ?? { name: 'default', certPem: '' }), cacheSize: options.cacheSize ?? 1000, clockSkewMs: 60_000 },
    { now, logger, events: emitter, metrics, http, crlStore, denyList: options.denyList?.(metrics, events, logger) },
  )
  return {
    checker,
    metrics,
    registry,
    events,
    logs,
    clock,
    clientCert: (certPem, issuers) =>
      toClientCert(
        new X509Certificate(certPem),
        issuers.map((pem) => new X509Certificate(pem)),
      ),
    check: (cert, context = {}) => checker.check(cert, { nowMs: clock.now, ...context }),
    async metric(name, labels = {}) {
      const metric = registry.getSingleMetric(name)
      if (!metric) return 0
      const { values } = await metric.get()
      const sample = values.find((v) => Object.entries(labels).every(([k, val]) => String(v.labels[k]) === val))
      return sample?.value ?? 0
    },
    close: () => checker.close(),
  }
}
