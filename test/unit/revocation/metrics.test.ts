// The revocation metrics follow the gateway's Prometheus conventions and pass promtool.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { Registry } from 'prom-client'
import { createRevocationMetrics } from '../../../src/revocation/metrics.ts'

function exercised(): Registry {
  const registry = new Registry()
  const metrics = createRevocationMetrics(registry)
  metrics.lookups.inc({ source: 'ocsp', outcome: 'good' })
  metrics.decisions.inc({ outcome: 'soft_fail' })
  metrics.ocspCache.inc({ result: 'hit' })
  metrics.ocspDuration.observe({ outcome: 'good' }, 0.02)
  metrics.crlLoads.inc({ ca: 'partner-ca', outcome: 'failed' })
  metrics.denyListReloads.inc({ outcome: 'loaded' })
  metrics.watchCrls(() => new Map([['partner-ca', { ageSeconds: 120, entries: 3 }]]))
  metrics.watchDenyListSize(() => 2)
  return registry
}

test('revocation metrics: prefix, units, _total only on counters, bounded labels', async () => {
  const all = await exercised().getMetricsAsJSON()
  assert.equal(all.length, 9)
  for (const metric of all) {
    assert.match(metric.name, /^fapi_gateway_[a-z0-9_]+$/)
    if (String(metric.type) === 'counter') assert.match(metric.name, /_total$/)
    else assert.doesNotMatch(metric.name, /_total$/)
    for (const value of metric.values) {
      for (const label of Object.keys(value.labels)) assert.ok(['source', 'outcome', 'result', 'ca', 'le'].includes(label), `${metric.name}{${label}}`)
    }
  }
  const text = await exercised().metrics()
  for (const series of [
    'fapi_gateway_revocation_lookups_total{source="ocsp",outcome="good"} 1',
    'fapi_gateway_crl_age_seconds{ca="partner-ca"} 120',
    'fapi_gateway_crl_entries{ca="partner-ca"} 3',
    'fapi_gateway_revocation_deny_list_entries 2',
  ])
    assert.ok(text.includes(series), series)
})

test('promtool check metrics finds no problem in the revocation metrics', async () => {
  const result = spawnSync('promtool', ['check', 'metrics'], { input: await exercised().metrics(), encoding: 'utf8' })
  assert.equal(result.error, undefined, 'promtool runs (Debian package prometheus)')
  assert.equal(result.stdout + result.stderr, '')
  assert.equal(result.status, 0)
})
