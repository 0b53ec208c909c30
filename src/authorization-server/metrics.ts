// The façade's metrics: per endpoint, grant type and outcome, and the legacy server's answers.
import { Counter, Histogram, type Registry } from 'prom-client'

export interface AuthorizationServerMetrics {
  readonly requests: Counter<'endpoint' | 'grant_type' | 'outcome'>
  readonly refusals: Counter<'endpoint' | 'reason'>
  readonly duration: Histogram<'endpoint' | 'outcome'>
  readonly legacyDuration: Histogram<'endpoint' | 'outcome'>
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

export function createAuthorizationServerMetrics(registry: Registry): AuthorizationServerMetrics {
  return {
    requests: new Counter({
      name: 'fapi_gateway_as_requests_total',
      help: 'Authorization-server façade requests by endpoint, grant type and outcome.',
      labelNames: ['endpoint', 'grant_type', 'outcome'],
      registers: [registry],
    }),
    refusals: new Counter({
      name: 'fapi_gateway_as_refusals_total',
      help: 'Refused authorization-server façade requests by endpoint and reason code.',
      labelNames: ['endpoint', 'reason'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'fapi_gateway_as_request_duration_seconds',
      help: 'Time from a façade request to the end of its answer.',
      labelNames: ['endpoint', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    legacyDuration: new Histogram({
      name: 'fapi_gateway_as_legacy_duration_seconds',
      help: 'Time the legacy authorization server took to answer, by endpoint and outcome.',
      labelNames: ['endpoint', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
  }
}
