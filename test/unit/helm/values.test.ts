// The chart's values: schema, examples, documentation and template references, checked without helm.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { generatedDefinitions } from '../../../scripts/chart-schema.ts'
import { CHART_DIR, chartValues, exampleFiles, exampleValues, readYamlFile, valuesValidator, valuesWith } from '../../support/chart.ts'

const validate = valuesValidator()

/** Every key path of a values document down to its leaves (lists and empty maps are leaves). */
function leafPaths(node: unknown, prefix: string[] = []): string[] {
  if (typeof node === 'object' && node !== null && !Array.isArray(node) && Object.keys(node).length > 0) {
    return Object.entries(node).flatMap(([key, value]) => leafPaths(value, [...prefix, key]))
  }
  return [prefix.join('.')]
}

function hasPath(values: unknown, path: string[]): boolean {
  let node = values
  for (const key of path) {
    if (typeof node !== 'object' || node === null || !(key in node)) return false
    node = (node as Record<string, unknown>)[key]
  }
  return true
}

test('Chart.yaml, values.yaml and every example parse as YAML; the dashboard and schemas as JSON', () => {
  const chart = readYamlFile(join(CHART_DIR, 'Chart.yaml')) as Record<string, unknown>
  assert.equal(chart.apiVersion, 'v2')
  assert.equal(chart.name, 'fapi-gateway')
  assert.match(String(chart.version), /^\d+\.\d+\.\d+$/)
  assert.equal(chart.appVersion, JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version)
  assert.equal(typeof chartValues(), 'object')
  assert.ok(exampleFiles().length >= 3)
  for (const name of exampleFiles()) assert.equal(typeof exampleValues(name), 'object', name)
  for (const name of readdirSync(join(CHART_DIR, 'dashboards'))) JSON.parse(readFileSync(join(CHART_DIR, 'dashboards', name), 'utf8'))
  JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8'))
})

test('values.yaml validates against values.schema.json', () => {
  assert.deepEqual(validate(chartValues()), [])
})

for (const name of exampleFiles()) {
  test(`examples/${name} validates against values.schema.json, alone and coalesced over values.yaml`, () => {
    assert.deepEqual(validate(exampleValues(name)), [])
    assert.deepEqual(validate(valuesWith(exampleValues(name))), [])
  })
}

test('the schema encodes the in-memory replica guard: several replicas or an autoscaler need Redis', () => {
  const minimal = exampleValues('minimal.yaml')
  assert.deepEqual(validate(valuesWith(minimal)), [])
  assert.notDeepEqual(validate(valuesWith(minimal, { replicaCount: 2 })), [], 'two replicas on the memory store')
  assert.notDeepEqual(validate(valuesWith(minimal, { autoscaling: { enabled: true } })), [], 'an autoscaler on the memory store')
  assert.notDeepEqual(validate(valuesWith(minimal, { gateway: { workers: 'auto' } })), [], 'several worker processes on the memory store')
  assert.deepEqual(validate(valuesWith(minimal, { replicaCount: 2, replay: { store: 'redis', redis: { url: 'redis://redis:6379' } } })), [])
})

test('the schema refuses wrong values at install time', () => {
  const production = exampleValues('production.yaml')
  const refused: [string, unknown][] = [
    ['an unknown top-level key', { replicas: 3 }],
    ['a misspelt nested key', { service: { tpye: 'LoadBalancer' } }],
    ['a Service type the gateway cannot use', { service: { type: 'ExternalName' } }],
    ['a Redis password in the URL', { replay: { redis: { mode: 'single', url: 'redis://:hunter2@redis:6379' } } }],
    ['a writable root filesystem', { securityContext: { readOnlyRootFilesystem: false } }],
    ['privilege escalation', { securityContext: { allowPrivilegeEscalation: true } }],
    ['an added capability', { securityContext: { capabilities: { add: ['NET_ADMIN'] } } }],
    ['running as root', { podSecurityContext: { runAsNonRoot: false } }],
    ['a plain-http public URL', { gateway: { publicBaseUrl: 'http://api.bank.example' } }],
    [
      'an unknown issuer key (from the gateway schema)',
      { gateway: { issuers: [{ name: 'main', issuer: 'x', jwksUri: 'https://x/jwks', audience: 'a', jwks: 'typo' }] } },
    ],
    ['an unknown DPoP algorithm', { gateway: { dpop: { algorithms: ['RS256'] } } }],
    ['an events sink without url', { gateway: { events: { http: { url: null } } } }],
    [
      'a policy with an unknown binding',
      { policies: { files: { 'x.yaml': { routes: [{ name: 'x', path: '/x', methods: ['GET'], upstream: 'data-api', binding: 'bearer' }] } } } },
    ],
    ['a policy file name that is not .yaml', { policies: { files: { 'x.json': { routes: [] } } } }],
    ['a negative threshold', { metrics: { prometheusRule: { upstream5xxRatio: -1 } } }],
  ]
  for (const [what, override] of refused) assert.notDeepEqual(validate(valuesWith(production, override)), [], what)
})

test('the gateway sections of values.schema.json are generated from the gateway configuration schema (node scripts/chart-schema.ts)', () => {
  const committed = (JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8')) as { definitions: Record<string, unknown> }).definitions
  for (const [name, definition] of Object.entries(generatedDefinitions())) assert.deepEqual(committed[name], definition, `definitions.${name} is stale`)
})

test('every .Values reference in the templates exists in values.yaml', () => {
  const values = chartValues()
  const dir = join(CHART_DIR, 'templates')
  const missing: string[] = []
  let references = 0
  for (const name of readdirSync(dir)) {
    for (const match of readFileSync(join(dir, name), 'utf8').matchAll(/\.Values((?:\.[A-Za-z0-9_]+)+)/g)) {
      references++
      const path = match[1]!.slice(1).split('.')
      if (!hasPath(values, path)) missing.push(`${name}: .Values.${path.join('.')}`)
    }
  }
  assert.ok(references > 100)
  assert.deepEqual(missing, [])
})

test('every key of values.yaml is in the chart README table, and the table lists no other key', () => {
  const readme = readFileSync(join(CHART_DIR, 'README.md'), 'utf8')
  const valuesSection = readme.slice(readme.indexOf('## Values'))
  const documented = new Set([...valuesSection.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!))
  const keys = leafPaths(chartValues())
  assert.ok(keys.length > 100)
  assert.deepEqual(
    keys.filter((key) => !documented.has(key)),
    [],
    'undocumented values',
  )
  assert.deepEqual(
    [...documented].filter((key) => !keys.includes(key)),
    [],
    'documented keys that do not exist',
  )
})
