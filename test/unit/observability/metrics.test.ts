// Prometheus naming conventions (https://prometheus.io/docs/practices/naming/) for every metric
// the gateway exports, and `promtool check metrics` on the exposition.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createMetrics } from '../../../src/observability/metrics.ts'

/** Label names whose values are bounded sets the gateway chooses (never request data). */
const BOUNDED_LABELS = new Set([
  'route',
  'outcome',
  'reason',
  'upstream',
  'status_class',
  'cache',
  'result',
  'dependency',
  'action',
  'le',
  'version',
  'major',
  'minor',
  'patch',
  'kind',
  'space',
  'type',
])

function exercised() {
  const metrics = createMetrics()
  metrics.requests.inc({ route: 'accounts-read', outcome: 'allowed' })
  metrics.refusals.inc({ route: 'accounts-read', reason: 'GW_DPOP_REPLAY' })
  metrics.requestDuration.observe({ route: 'accounts-read', outcome: 'allowed' }, 0.012)
  metrics.upstreamDuration.observe({ upstream: 'data-api' }, 0.01)
  metrics.upstreamResponses.inc({ upstream: 'data-api', status_class: '2xx' })
  metrics.tlsHandshakeFailures.inc({ reason: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' })
  metrics.securityEvents.inc({ action: 'dpop.replay_detected' })
  metrics.securityEventsDropped.inc({ reason: 'queue_full' })
  metrics.securityEventsDelivered.inc()
  metrics.watchCache('verified_tokens', () => ({ hits: 1, misses: 1 }))
  metrics.watchDependency('replay_store', () => true)
  metrics.watchEventQueue(() => 3)
  return metrics
}

test('every metric has the fapi_gateway_ prefix, a unit suffix where it measures one, and _total only on counters', async () => {
  const all = await exercised().registry.getMetricsAsJSON()
  assert.ok(all.length > 20)
  for (const metric of all) {
    const { name } = metric
    const type = String(metric.type)
    assert.match(name, /^fapi_gateway_[a-z0-9_]+$/, name)
    if (type === 'counter') assert.match(name, /_total$/, `counter ${name} ends with _total`)
    else assert.doesNotMatch(name, /_total$/, `${type} ${name} must not end with _total`)
    assert.doesNotMatch(name, /_(milliseconds|ms|minutes|hours|days|kilobytes|megabytes)(_|$)/, `${name} uses base units (seconds, bytes)`)
    if (type === 'histogram' && /duration|latency|lag/.test(name)) assert.match(name, /_seconds$/, `${name} is in seconds`)
  }
})

test('labels are snake_case, bounded and never a raw path or identity', async () => {
  for (const metric of await exercised().registry.getMetricsAsJSON()) {
    for (const value of metric.values) {
      for (const label of Object.keys(value.labels)) {
        assert.match(label, /^[a-z][a-z0-9_]*$/, `${metric.name}{${label}}`)
        assert.ok(BOUNDED_LABELS.has(label), `${metric.name} label ${label} is a known bounded label`)
      }
    }
  }
})

test('the gateway metrics the dashboards and alerts use exist with their labels', async () => {
  const text = await exercised().registry.metrics()
  for (const series of [
    'fapi_gateway_requests_total{route="accounts-read",outcome="allowed"}',
    'fapi_gateway_refusals_total{route="accounts-read",reason="GW_DPOP_REPLAY"}',
    'fapi_gateway_request_duration_seconds_bucket{le="0.025",route="accounts-read",outcome="allowed"}',
    'fapi_gateway_upstream_responses_total{upstream="data-api",status_class="2xx"}',
    'fapi_gateway_dependency_up{dependency="replay_store"}',
    'fapi_gateway_security_events_dropped_total{reason="queue_full"}',
    'fapi_gateway_security_events_queued',
    'fapi_gateway_process_cpu_seconds_total',
    'fapi_gateway_process_resident_memory_bytes',
    'fapi_gateway_nodejs_eventloop_lag_p99_seconds',
  ])
    assert.ok(text.includes(`${series} `), series)
})

test('promtool check metrics finds no problem in the exposition', async () => {
  const text = await exercised().registry.metrics()
  const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
  assert.equal(result.error, undefined, 'promtool runs (Debian package prometheus)')
  assert.equal(result.stdout + result.stderr, '', 'no lint findings')
  assert.equal(result.status, 0)
})
