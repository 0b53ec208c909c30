// Prometheus metrics on a registry owned by one gateway instance (never prom-client's global one).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export interface CacheStats {
  readonly hits: number
  readonly misses: number
}

export interface GatewayMetrics {
  readonly registry: Registry
  readonly requests: Counter<'route' | 'outcome'>
  readonly refusals: Counter<'route' | 'reason'>
  readonly requestDuration: Histogram<'route' | 'outcome'>
  readonly upstreamDuration: Histogram<'upstream'>
  readonly upstreamResponses: Counter<'upstream' | 'status_class'>
  readonly connections: Gauge
  readonly pendingHandshakes: Gauge
  readonly tlsHandshakeFailures: Counter<'reason'>
  readonly securityEvents: Counter<'action'>
  readonly securityEventsDropped: Counter<'reason'>
  readonly securityEventsDelivered: Counter
  readonly stdoutDroppedLines: Counter
  /** Registers a cache whose counters are read at scrape time. */
  watchCache(name: string, stats: () => CacheStats): void
  /** Registers a dependency whose readiness is read at scrape time. */
  watchDependency(name: string, ready: () => boolean): void
  /** Registers the security event sink queue, read at scrape time. */
  watchEventQueue(queued: () => number): void
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

export function createMetrics(options: { processMetrics: boolean } = { processMetrics: true }): GatewayMetrics {
  const registry = new Registry()
  if (options.processMetrics) {
    collectDefaultMetrics({ register: registry, prefix: 'fapi_gateway_' })
    // prom-client exports these gauges with a _total suffix, which Prometheus reserves for counters
    // (`promtool check metrics`); the same numbers stay available without the suffix.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'])
      registry.removeSingleMetric(`fapi_gateway_${name}`)
  }
  const caches = new Map<string, () => CacheStats>()
  const dependencies = new Map<string, () => boolean>()
  let eventQueue: (() => number) | undefined
  new Counter({
    name: 'fapi_gateway_cache_lookups_total',
    help: 'Cache lookups by cache and result.',
    labelNames: ['cache', 'result'],
    registers: [registry],
    collect() {
      this.reset()
      for (const [cache, stats] of caches) {
        const { hits, misses } = stats()
        this.inc({ cache, result: 'hit' }, hits)
        this.inc({ cache, result: 'miss' }, misses)
      }
    },
  })
  new Gauge({
    name: 'fapi_gateway_dependency_up',
    help: 'Whether a dependency (replay store, issuer keys) can currently answer (1) or not (0).',
    labelNames: ['dependency'],
    registers: [registry],
    collect() {
      for (const [dependency, ready] of dependencies) this.set({ dependency }, ready() ? 1 : 0)
    },
  })
  new Gauge({
    name: 'fapi_gateway_security_events_queued',
    help: 'Security events waiting for the HTTP sink.',
    registers: [registry],
    collect() {
      this.set(eventQueue?.() ?? 0)
    },
  })
  return {
    registry,
    requests: new Counter({
      name: 'fapi_gateway_requests_total',
      help: 'Requests by route and outcome.',
      labelNames: ['route', 'outcome'],
      registers: [registry],
    }),
    refusals: new Counter({
      name: 'fapi_gateway_refusals_total',
      help: 'Refused requests by route and reason code.',
      labelNames: ['route', 'reason'],
      registers: [registry],
    }),
    requestDuration: new Histogram({
      name: 'fapi_gateway_request_duration_seconds',
      help: 'Time from request to the end of the answer.',
      labelNames: ['route', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    upstreamDuration: new Histogram({
      name: 'fapi_gateway_upstream_duration_seconds',
      help: 'Time until the upstream answered with its response head.',
      labelNames: ['upstream'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    upstreamResponses: new Counter({
      name: 'fapi_gateway_upstream_responses_total',
      help: 'Upstream answers by status class.',
      labelNames: ['upstream', 'status_class'],
      registers: [registry],
    }),
    connections: new Gauge({
      name: 'fapi_gateway_open_connections',
      help: 'Open partner-facing connections that finished the TLS handshake.',
      registers: [registry],
    }),
    pendingHandshakes: new Gauge({
      name: 'fapi_gateway_pending_handshakes',
      help: 'Partner-facing connections still in the TLS handshake.',
      registers: [registry],
    }),
    tlsHandshakeFailures: new Counter({
      name: 'fapi_gateway_tls_handshake_failures_total',
      help: 'TLS handshakes that failed, by OpenSSL reason.',
      labelNames: ['reason'],
      registers: [registry],
    }),
    securityEvents: new Counter({
      name: 'fapi_gateway_security_events_total',
      help: 'Security events emitted, by action.',
      labelNames: ['action'],
      registers: [registry],
    }),
    securityEventsDropped: new Counter({
      name: 'fapi_gateway_security_events_dropped_total',
      help: 'Security events the HTTP sink dropped: queue_full, sink_unavailable, rejected, shutdown.',
      labelNames: ['reason'],
      registers: [registry],
    }),
    securityEventsDelivered: new Counter({
      name: 'fapi_gateway_security_events_delivered_total',
      help: 'Security events the HTTP sink delivered.',
      registers: [registry],
    }),
    stdoutDroppedLines: new Counter({
      name: 'fapi_gateway_stdout_dropped_lines_total',
      help: 'Log lines and stdout security events dropped because the stdout reader fell behind by more than log.stdoutBufferBytes.',
      registers: [registry],
    }),
    watchCache: (name, stats) => void caches.set(name, stats),
    watchDependency: (name, ready) => void dependencies.set(name, ready),
    watchEventQueue: (queued) => void (eventQueue = queued),
  }
}
