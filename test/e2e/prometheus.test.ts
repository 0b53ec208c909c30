// A real Prometheus (Debian package prometheus) scrapes a running gateway's admin port every
// second; traffic with refusals goes through the gateway; the series, the chart's alert rules and
// the dashboard's queries are checked through Prometheus's HTTP API. The exposition itself passes
// `promtool check metrics`.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { stringify } from 'yaml'
import { createProof, generateDpopKey, type DpopKey } from '../../src/client/partner-client.ts'
import { alertRules, dashboardQueries, exampleValues, valuesWith } from '../support/chart.ts'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'
import { findFreePort } from '../support/ports.ts'

// What the chart's ServiceMonitor gives the series: job = the admin Service, plus namespace and pod.
const JOB = 'fapi-gateway-admin'
const NAMESPACE = 'payments'

interface Sample {
  metric: Record<string, string>
  value: [number, string]
}

describe('metrics through a real Prometheus', () => {
  let gw: TestGateway
  let key: DpopKey
  let token: string
  let dir: string
  let prometheus: ChildProcess
  let base: string
  let log = ''

  async function query(expr: string): Promise<Sample[]> {
    const response = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`)
    const body = (await response.json()) as { status: string; error?: string; data: { result: Sample[] } }
    assert.equal(body.status, 'success', `${expr}: ${body.error ?? ''}`)
    return body.data.result
  }

  async function eventually<T>(what: string, probe: () => Promise<T | undefined>, limitMs = 20_000): Promise<T> {
    const deadline = Date.now() + limitMs
    for (;;) {
      const value = await probe()
      if (value !== undefined) return value
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${log}`)
      await delay(250)
    }
  }

  async function legitimate(): Promise<number> {
    const proof = await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: token })
    return (
      await gw.client().send('GET', '/accounts/1', [
        ['authorization', `DPoP ${token}`],
        ['dpop', proof],
      ])
    ).status
  }

  async function replayed(): Promise<number> {
    const proof = await createProof(key, { htm: 'GET', htu: gw.url('/accounts/2'), accessToken: token })
    const send = () =>
      gw.client().send('GET', '/accounts/2', [
        ['authorization', `DPoP ${token}`],
        ['dpop', proof],
      ])
    assert.equal((await send()).status, 200)
    return (await send()).status
  }

  before(async () => {
    gw = await startTestGateway()
    key = await generateDpopKey('ES256')
    token = await gw.issuer.mint({ jkt: key.jkt })
    dir = mkdtempSync(join(tmpdir(), 'fapi-gateway-prometheus-'))
    writeFileSync(join(dir, 'rules.yaml'), stringify(alertRules(valuesWith(exampleValues('production.yaml')), NAMESPACE)))
    writeFileSync(
      join(dir, 'prometheus.yml'),
      stringify({
        global: { scrape_interval: '1s', evaluation_interval: '1s' },
        rule_files: [join(dir, 'rules.yaml')],
        scrape_configs: [
          {
            job_name: JOB,
            static_configs: [{ targets: [`127.0.0.1:${gw.gateway.adminPort}`], labels: { namespace: NAMESPACE, pod: 'fapi-gateway-0' } }],
          },
        ],
      }),
    )
    const port = await findFreePort()
    base = `http://127.0.0.1:${port}`
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    prometheus.stdout!.on('data', (chunk: Buffer) => (log += chunk))
    prometheus.stderr!.on('data', (chunk: Buffer) => (log += chunk))
    await eventually('Prometheus to be ready', async () => {
      if (prometheus.exitCode !== null) throw new Error(`prometheus exited with ${prometheus.exitCode}: ${log}`)
      try {
        return (await fetch(`${base}/-/ready`)).status === 200 ? true : undefined
      } catch {
        return undefined
      }
    })
    // A first scrape before the traffic, so that rate() sees the counters grow.
    await eventually('the first scrape', async () => ((await query(`up{job="${JOB}"} == 1`)).length > 0 ? true : undefined))
  })

  after(async () => {
    if (prometheus && prometheus.exitCode === null) {
      const exited = once(prometheus, 'exit')
      prometheus.kill('SIGTERM')
      const timer = setTimeout(() => prometheus.kill('SIGKILL'), 5_000)
      await exited
      clearTimeout(timer)
    }
    await gw?.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('sees refusal series by reason and a latency quantile after traffic with refusals', async () => {
    const p99 = `histogram_quantile(0.99, sum by (le) (rate(fapi_gateway_request_duration_seconds_bucket{job="${JOB}", outcome="allowed"}[1m])))`
    const seen = await eventually('refusal and latency series', async () => {
      assert.equal(await legitimate(), 200)
      assert.equal(await replayed(), 401)
      assert.equal((await gw.client().send('GET', '/accounts/3', [])).status, 401)
      const [replays] = await query(`fapi_gateway_refusals_total{job="${JOB}", reason="GW_DPOP_REPLAY"} > 0`)
      const [missing] = await query(`fapi_gateway_refusals_total{job="${JOB}", reason="GW_TOKEN_MISSING"} > 0`)
      const [quantile] = await query(p99)
      if (!replays || !missing || !quantile || !Number.isFinite(Number(quantile.value[1]))) return undefined
      return { replays, missing, quantile }
    })
    assert.equal(seen.replays.metric.route, 'accounts-read')
    assert.equal(seen.replays.metric.namespace, NAMESPACE)
    assert.equal(seen.missing.metric.route, 'accounts-read')
    assert.ok(Number(seen.quantile.value[1]) > 0)
    const [allowed] = await query(`fapi_gateway_requests_total{job="${JOB}", route="accounts-read", outcome="allowed"}`)
    assert.ok(Number(allowed!.value[1]) >= 2)
    const [events] = await query(`fapi_gateway_security_events_total{job="${JOB}", action="dpop.replay_detected"}`)
    assert.ok(Number(events!.value[1]) >= 1, 'the replay was counted as a security event too')
    assert.equal((await query(`fapi_gateway_process_resident_memory_bytes{job="${JOB}"}`)).length, 1, 'process metrics')
    assert.equal((await query(`fapi_gateway_dependency_up{job="${JOB}", dependency="replay_store"} == 1`)).length, 1)
  })

  it('evaluates every alert rule of the chart without error, and none fires on a healthy gateway', async () => {
    const rules = await eventually('every rule evaluated', async () => {
      const body = (await (await fetch(`${base}/api/v1/rules`)).json()) as {
        data: { groups: { rules: { name: string; health: string; lastError?: string; state: string }[] }[] }
      }
      const all = body.data.groups.flatMap((g) => g.rules)
      return all.length === 11 && all.every((r) => r.health !== 'unknown') ? all : undefined
    })
    for (const rule of rules) assert.equal(rule.health, 'ok', `${rule.name}: ${rule.lastError ?? ''}`)
    const firing = rules.filter((r) => r.state !== 'inactive').map((r) => r.name)
    // The replay above is credential abuse by design; nothing else may be pending or firing.
    assert.deepEqual(
      firing.filter((name) => name !== 'FapiGatewayCredentialAbuse'),
      [],
    )
  })

  it('answers every query of the Grafana dashboard', async () => {
    const queries = dashboardQueries()
    assert.ok(queries.length > 20)
    for (const { title, expr } of queries) await query(expr).catch((error: Error) => assert.fail(`${title}: ${error.message}`))
    const [byRoute] = await query(queries.find((q) => q.title === 'Requests by route and outcome')!.expr)
    assert.ok(byRoute, 'the traffic panel has data')
  })

  it('exposes metrics that pass promtool check metrics', async () => {
    const exposition = await (await fetch(`http://127.0.0.1:${gw.gateway.adminPort}/metrics`)).text()
    const result = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8' })
    assert.equal(result.error, undefined, 'promtool runs')
    assert.equal(result.stdout + result.stderr, '', 'no lint findings')
    assert.equal(result.status, 0)
  })
})
