// Revocation metrics, registered on the gateway's own registry.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { CrlStats } from './types.ts'

export interface RevocationMetrics {
  /** One per source consulted: source ocsp|crl|deny_list, outcome good|revoked|unknown|unavailable. */
  readonly lookups: Counter<'source' | 'outcome'>
  /** Final decision per certificate checked: good, revoked, unavailable, soft_fail, not_checked. */
  readonly decisions: Counter<'outcome'>
  readonly ocspCache: Counter<'result'>
  readonly ocspDuration: Histogram<'outcome'>
  readonly crlLoads: Counter<'ca' | 'outcome'>
  readonly denyListReloads: Counter<'outcome'>
  /** Read at scrape time. */
  watchCrls(stats: () => Map<string, CrlStats>): void
  watchDenyListSize(size: () => number): void
}

const RESPONDER_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

export function createRevocationMetrics(registry: Registry): RevocationMetrics {
  let crlStats: () => Map<string, CrlStats> = () => new Map()
  let denyListSize: () => number = () => 0
  new Gauge({
    name: 'fapi_gateway_crl_age_seconds',
    help: 'Seconds since thisUpdate of the newest good CRL held for each CA.',
    labelNames: ['ca'],
    registers: [registry],
    collect() {
      this.reset()
      for (const [ca, stats] of crlStats()) this.set({ ca }, stats.ageSeconds)
    },
  })
  new Gauge({
    name: 'fapi_gateway_crl_entries',
    help: 'Revoked serials in the newest good CRL held for each CA.',
    labelNames: ['ca'],
    registers: [registry],
    collect() {
      this.reset()
      for (const [ca, stats] of crlStats()) this.set({ ca }, stats.entries)
    },
  })
  new Gauge({
    name: 'fapi_gateway_revocation_deny_list_entries',
    help: 'Serials and thumbprints on the operator deny list.',
    registers: [registry],
    collect() {
      this.set(denyListSize())
    },
  })
  return {
    lookups: new Counter({
      name: 'fapi_gateway_revocation_lookups_total',
      help: 'Revocation look-ups by source and outcome.',
      labelNames: ['source', 'outcome'],
      registers: [registry],
    }),
    decisions: new Counter({
      name: 'fapi_gateway_revocation_decisions_total',
      help: 'Revocation decisions per certificate checked.',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    ocspCache: new Counter({
      name: 'fapi_gateway_revocation_ocsp_cache_total',
      help: 'OCSP status cache look-ups: hit, miss, shared (joined a request in flight).',
      labelNames: ['result'],
      registers: [registry],
    }),
    ocspDuration: new Histogram({
      name: 'fapi_gateway_ocsp_responder_duration_seconds',
      help: 'Time an OCSP responder took to answer, by outcome.',
      labelNames: ['outcome'],
      buckets: RESPONDER_BUCKETS,
      registers: [registry],
    }),
    crlLoads: new Counter({
      name: 'fapi_gateway_crl_loads_total',
      help: 'CRL loads and refreshes by CA and outcome (loaded, failed).',
      labelNames: ['ca', 'outcome'],
      registers: [registry],
    }),
    denyListReloads: new Counter({
      name: 'fapi_gateway_revocation_deny_list_reloads_total',
      help: 'Deny list (re)loads by outcome (loaded, failed).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    watchCrls: (stats) => void (crlStats = stats),
    watchDenyListSize: (size) => void (denyListSize = size),
  }
}
