// Counters of the calls to introspection endpoints, registered once per gateway and shared by every
// token verifier a reload builds, so that they only ever grow.
import { Counter, type Registry } from 'prom-client'
import type { IntrospectionObserver } from '../tokens/introspection.ts'

export function createIntrospectionMetrics(registry: Registry): IntrospectionObserver {
  const calls = new Counter({
    name: 'fapi_gateway_introspection_calls_total',
    help: "Calls to an issuer's introspection endpoint, by answer: active, inactive, failed.",
    labelNames: ['issuer', 'outcome'],
    registers: [registry],
  })
  const hits = new Counter({
    name: 'fapi_gateway_introspection_cache_hits_total',
    help: 'Introspection answers reused from the cache, active or inactive.',
    labelNames: ['issuer', 'answer'],
    registers: [registry],
  })
  const refused = new Counter({
    name: 'fapi_gateway_introspection_refused_total',
    help: 'Strings refused without calling the introspection endpoint: shape, client_limit, queue_full, queue_timeout.',
    labelNames: ['issuer', 'reason'],
    registers: [registry],
  })
  return {
    called: (issuer, outcome) => calls.inc({ issuer, outcome }),
    cacheHit: (issuer, answer) => hits.inc({ issuer, answer }),
    refused: (issuer, reason) => refused.inc({ issuer, reason }),
  }
}
