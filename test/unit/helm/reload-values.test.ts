// The chart's reload, stapling and expiry-warning settings reach the gateway configuration.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parse } from 'yaml'
import { gatewayConfigSchema } from '../../../src/config/schema.ts'
import { documentOf, exampleValues, render, valuesValidator, valuesWith } from '../../support/chart.ts'

function gatewayConfig(values: unknown) {
  const text = documentOf(render(values), 'ConfigMap', 'fapi-gateway-config').data['gateway.yaml'] as string
  const parsed = gatewayConfigSchema.safeParse(parse(text))
  assert.ok(parsed.success, parsed.error?.message)
  return parsed.data
}

test('gateway.reload, gateway.ocspStapling and metrics.prometheusRule.certExpiryDays are passed through', () => {
  const values = valuesWith(exampleValues('minimal.yaml'), {
    gateway: { reload: { pollIntervalMs: 5000, drainTimeoutMs: 60000 }, ocspStapling: { enabled: false } },
    metrics: { prometheusRule: { certExpiryDays: 21 } },
  })
  assert.deepEqual(valuesValidator()(values), [])
  const config = gatewayConfig(values)
  assert.deepEqual(config.reload, { pollIntervalMs: 5000, drainTimeoutMs: 60000 })
  assert.equal(config.listener.tls.ocspStapling.enabled, false)
  assert.equal(config.listener.tls.expiryWarningDays, 21, 'the event threshold follows the alert threshold')
})

test('by default the gateway watches its mounted files, staples when it can and warns 14 days ahead', () => {
  const config = gatewayConfig(valuesWith(exampleValues('minimal.yaml')))
  assert.deepEqual(config.reload, { pollIntervalMs: 2000, drainTimeoutMs: 30000 })
  assert.equal(config.listener.tls.ocspStapling.enabled, true)
  assert.equal(config.listener.tls.expiryWarningDays, 14)
})

test('values.schema.json refuses unknown or mistyped reload and stapling settings', () => {
  const validate = valuesValidator()
  assert.notDeepEqual(validate(valuesWith(exampleValues('minimal.yaml'), { gateway: { reload: { pollMs: 5 } } })), [])
  assert.notDeepEqual(validate(valuesWith(exampleValues('minimal.yaml'), { gateway: { ocspStapling: { timeoutMs: '5s' } } })), [])
})
