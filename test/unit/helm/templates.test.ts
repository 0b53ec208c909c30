// The chart's templates, rendered without helm (test/support/helm-lite.ts): the kinds and their
// settings, the guards, and the gateway configuration they produce, loaded by the real loader.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { parse, stringify } from 'yaml'
import { loadConfig, type LoadedConfig } from '../../../src/config/load.ts'
import { TemplateError } from '../../support/helm-lite.ts'
import { CHART_DIR, alertRules, chartValues, documentOf, exampleFiles, exampleValues, render, valuesValidator, valuesWith } from '../../support/chart.ts'

const production = () => valuesWith(exampleValues('production.yaml'))
const minimal = () => valuesWith(exampleValues('minimal.yaml'))

function kinds(values: unknown): string[] {
  return render(values)
    .documents.map((d) => String(d.kind))
    .sort()
}

test('the templates declare every kind the chart promises', () => {
  const sources = [
    'deployment',
    'service',
    'admin-service',
    'configmap',
    'poddisruptionbudget',
    'horizontalpodautoscaler',
    'networkpolicy',
    'servicemonitor',
    'prometheusrule',
    'dashboard-configmap',
    'certificate',
    'serviceaccount',
  ]
    .map((name) => readFileSync(join(CHART_DIR, 'templates', `${name}.yaml`), 'utf8'))
    .join('\n')
  for (const kind of [
    'Deployment',
    'Service',
    'ConfigMap',
    'PodDisruptionBudget',
    'HorizontalPodAutoscaler',
    'NetworkPolicy',
    'ServiceMonitor',
    'PrometheusRule',
    'Certificate',
    'ServiceAccount',
  ]) {
    assert.match(sources, new RegExp(`^kind: ${kind}$`, 'm'), kind)
  }
  assert.ok(readFileSync(join(CHART_DIR, 'templates', 'NOTES.txt'), 'utf8').length > 0)
})

test('production renders every resource; the Prometheus, Grafana, cert-manager and autoscaling ones only when asked', () => {
  assert.deepEqual(kinds(production()), [
    'Certificate',
    'ConfigMap',
    'ConfigMap',
    'ConfigMap',
    'Deployment',
    'HorizontalPodAutoscaler',
    'NetworkPolicy',
    'NetworkPolicy',
    'PodDisruptionBudget',
    'PrometheusRule',
    'Service',
    'Service',
    'ServiceAccount',
    'ServiceMonitor',
  ])
  assert.deepEqual(kinds(minimal()), ['ConfigMap', 'ConfigMap', 'Deployment', 'NetworkPolicy', 'Service', 'Service', 'ServiceAccount'])
})

test('the chart refuses to render more than one replica, or an autoscaler, with the in-memory replay store', () => {
  const helpers = readFileSync(join(CHART_DIR, 'templates', '_helpers.tpl'), 'utf8')
  assert.match(
    helpers,
    /if eq \.Values\.replay\.store "memory" \}\}\s*\{\{- if or \(gt \(int \.Values\.replicaCount\) 1\) \.Values\.autoscaling\.enabled \}\}\s*\{\{- fail "replay\.store=memory/,
  )
  assert.match(readFileSync(join(CHART_DIR, 'templates', 'deployment.yaml'), 'utf8'), /^\{\{- include "fapi-gateway\.validate" \. \}\}/)
  assert.throws(
    () => render(valuesWith(exampleValues('minimal.yaml'), { replicaCount: 2 })),
    (e: Error) => e instanceof TemplateError && /replay\.store=memory/.test(e.message),
  )
  assert.throws(() => render(valuesWith(exampleValues('minimal.yaml'), { autoscaling: { enabled: true } })), /replay\.store=memory/)
  assert.throws(() => render(valuesWith(exampleValues('minimal.yaml'), { gateway: { workers: 2 } })), /several worker processes/)
  assert.equal(documentOf(render(minimal()), 'Deployment').spec.replicas, 1)
  assert.equal(
    documentOf(
      render(valuesWith(exampleValues('minimal.yaml'), { replicaCount: 2, replay: { store: 'redis', redis: { url: 'redis://redis:6379' } } })),
      'Deployment',
    ).spec.replicas,
    2,
  )
})

test('the chart refuses to render without what the gateway cannot run without', () => {
  assert.throws(() => render(chartValues()), TemplateError, 'the defaults alone')
  const cases: [string, unknown, RegExp][] = [
    ['no public URL', { gateway: { publicBaseUrl: '' } }, /publicBaseUrl is required/],
    ['no issuers', { gateway: { issuers: [] } }, /gateway\.issuers is required/],
    ['no policies', { policies: { files: null } }, /policies\.files/],
    ['no server certificate', { tls: { serverSecret: '' } }, /tls\.serverSecret is required/],
    ['no client CA', { tls: { clientCaSecret: '' } }, /tls\.clientCaSecret is required/],
    ['Redis without URL', { replay: { store: 'redis', redis: { url: '' } } }, /replay\.redis\.url is required/],
    [
      'Sentinel without master name',
      { replay: { store: 'redis', redis: { mode: 'sentinel', sentinels: [{ host: 's', port: 26379 }] } } },
      /sentinelMasterName/,
    ],
    [
      'the revocation mirror with Redis Cluster',
      { replay: { store: 'redis', redis: { mode: 'cluster', cluster: [{ host: 'r', port: 6379 }] }, revocationMirror: { enabled: true } } },
      /revocationMirror needs replay\.redis\.mode single or sentinel/,
    ],
  ]
  for (const [what, override, message] of cases) assert.throws(() => render(valuesWith(exampleValues('minimal.yaml'), override)), message, what)
})

test('the Deployment: rolling update without unavailability, anti-affinity, probes on the admin port, restricted security context, /tmp only', () => {
  const deployment = documentOf(render(production()), 'Deployment')
  const pod = deployment.spec.template.spec
  const [container] = pod.containers
  assert.equal(deployment.spec.replicas, undefined, 'the autoscaler owns the replica count')
  assert.deepEqual(deployment.spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } })
  assert.equal(pod.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey, 'kubernetes.io/hostname')
  assert.equal(
    documentOf(render(minimal()), 'Deployment').spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight,
    100,
  )
  assert.deepEqual(container.startupProbe.httpGet, { path: '/healthz', port: 'admin' })
  assert.deepEqual(container.livenessProbe.httpGet, { path: '/healthz', port: 'admin' })
  assert.deepEqual(container.readinessProbe.httpGet, { path: '/readyz', port: 'admin' })
  assert.deepEqual(
    container.ports.map((p: { name: string; containerPort: number }) => [p.name, p.containerPort]),
    [
      ['https', 8443],
      ['admin', 9090],
    ],
  )
  assert.deepEqual(container.securityContext, {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    privileged: false,
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    seccompProfile: { type: 'RuntimeDefault' },
  })
  assert.equal(pod.securityContext.runAsNonRoot, true)
  assert.deepEqual(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' })
  assert.equal(pod.automountServiceAccountToken, false)
  assert.deepEqual(container.lifecycle, { preStop: { sleep: { seconds: 5 } } })
  const writable = container.volumeMounts.filter((m: { readOnly?: boolean }) => !m.readOnly)
  assert.deepEqual(
    writable.map((m: { mountPath: string }) => m.mountPath),
    ['/tmp'],
  )
  assert.deepEqual(pod.volumes.find((v: { name: string }) => v.name === 'tmp').emptyDir, { medium: 'Memory', sizeLimit: '64Mi' })
  assert.ok(!pod.volumes.some((v: Record<string, unknown>) => 'hostPath' in v))
  assert.deepEqual(container.args, ['src/main.ts', 'start', '--config', '/etc/fapi-gateway/config/gateway.yaml'])
  assert.equal(container.image, 'registry.bank.example/fapi-gateway:0.1.0')
  const secretEnv = Object.fromEntries(
    container.env
      .filter((e: { valueFrom?: unknown }) => e.valueFrom)
      .map((e: { name: string; valueFrom: { secretKeyRef: { name: string } } }) => [e.name, e.valueFrom.secretKeyRef.name]),
  )
  assert.equal(secretEnv.FAPI_GATEWAY_REDIS_PASSWORD, 'redis-auth')
  assert.equal(secretEnv.FAPI_GATEWAY_ADMIN_TOKEN, 'fapi-gateway-admin')
  assert.equal(secretEnv.FAPI_GATEWAY_NONCE_SECRET, 'fapi-gateway-dpop-nonce')
})

test('a change to the configuration or the policies changes the pod checksum annotation; the certificate Secrets are mounted whole', () => {
  const checksum = (values: unknown) => documentOf(render(values), 'Deployment').spec.template.metadata.annotations['checksum/config'] as string
  const base = checksum(production())
  assert.match(base, /^[0-9a-f]{64}$/)
  assert.equal(checksum(production()), base)
  assert.notEqual(checksum(valuesWith(exampleValues('production.yaml'), { gateway: { logLevel: 'debug' } })), base)
  assert.notEqual(
    checksum(
      valuesWith(exampleValues('production.yaml'), {
        policies: { files: { 'extra.yaml': { routes: [{ name: 'x', path: '/x', methods: ['GET'], upstream: 'data-api' }] } } },
      }),
    ),
    base,
  )
  const pod = documentOf(render(production()), 'Deployment').spec.template.spec
  for (const mount of pod.containers[0].volumeMounts) assert.equal(mount.subPath, undefined, `${mount.name} without subPath`)
})

test('Services: the TLS port passes through (LoadBalancer or NodePort), the admin port stays inside the cluster', () => {
  const chart = render(production())
  const service = documentOf(chart, 'Service', 'fapi-gateway')
  assert.equal(service.spec.type, 'LoadBalancer')
  assert.equal(service.spec.externalTrafficPolicy, 'Local')
  assert.deepEqual(service.spec.ports, [{ name: 'https', port: 443, targetPort: 'https', protocol: 'TCP' }])
  const admin = documentOf(chart, 'Service', 'fapi-gateway-admin')
  assert.equal(admin.spec.type, 'ClusterIP')
  assert.equal(admin.spec.ports[0].targetPort, 'admin')
  const nodePort = documentOf(render(valuesWith(exampleValues('redis-cluster-nodeport.yaml'))), 'Service', 'fapi-gateway')
  assert.equal(nodePort.spec.type, 'NodePort')
  assert.equal(nodePort.spec.ports[0].nodePort, 30443)
})

test('NetworkPolicy: partners to the TLS port, Prometheus to the admin port, egress only to DNS and the listed destinations', () => {
  const policy = documentOf(render(production()), 'NetworkPolicy')
  assert.deepEqual(policy.spec.policyTypes, ['Ingress', 'Egress'])
  const [partners, metrics] = policy.spec.ingress
  assert.deepEqual(partners.ports, [{ port: 8443, protocol: 'TCP' }])
  assert.deepEqual(partners.from, [{ ipBlock: { cidr: '198.51.100.0/24' } }])
  assert.deepEqual(metrics.ports, [{ port: 9090, protocol: 'TCP' }])
  assert.deepEqual(metrics.from, [
    {
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } },
      podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } },
    },
  ])
  const egress = policy.spec.egress as { to: unknown[]; ports: { port: number }[] }[]
  assert.equal(egress.length, 6, 'DNS, Redis, upstreams, issuers, revocation, event sink')
  assert.deepEqual(
    egress[0]!.ports.map((p) => p.port),
    [53, 53],
  )
  assert.ok(
    egress.every((rule) => rule.to.length > 0),
    'no rule opens egress to everywhere',
  )
  const open = documentOf(render(minimal()), 'NetworkPolicy').spec.ingress[0]
  assert.equal(open.from, undefined, 'no partner CIDRs: the TLS port is open to anyone')
})

test('upstream trust: the gateway client certificate Secret is mounted whole and set as the upstream certFile/keyFile; the upstream pods admit only the gateway pods', () => {
  const chart = render(production())
  const gatewayYaml = documentOf(chart, 'ConfigMap', 'fapi-gateway-config').data['gateway.yaml'] as string
  const upstream = (parse(gatewayYaml) as { upstreams: Record<string, Record<string, unknown>> }).upstreams['data-api']
  assert.deepEqual(upstream, {
    url: 'https://accounts.payments.svc.cluster.local:8443',
    connections: 128,
    certFile: '/etc/fapi-gateway/upstream-client/data-api/tls.crt',
    keyFile: '/etc/fapi-gateway/upstream-client/data-api/tls.key',
  })
  const pod = documentOf(chart, 'Deployment').spec.template.spec
  assert.deepEqual(
    pod.containers[0].volumeMounts.find((m: { name: string }) => m.name === 'upstream-client-data-api'),
    {
      name: 'upstream-client-data-api',
      mountPath: '/etc/fapi-gateway/upstream-client/data-api',
      readOnly: true,
    },
  )
  const secretVolume = (name: string) => pod.volumes.find((v: { name: string }) => v.name === name).secret
  assert.deepEqual(
    secretVolume('upstream-client-data-api'),
    { secretName: 'fapi-gateway-upstream-client', defaultMode: secretVolume('server-tls').defaultMode },
    'a private key: as the server key',
  )

  const policy = documentOf(chart, 'NetworkPolicy', 'accounts-from-fapi-gateway')
  assert.equal(policy.metadata.namespace, 'payments')
  assert.deepEqual(policy.spec.podSelector, { matchLabels: { 'app.kubernetes.io/name': 'accounts' } })
  assert.deepEqual(policy.spec.policyTypes, ['Ingress'])
  const gatewayPods = documentOf(chart, 'Deployment').spec.selector.matchLabels
  assert.deepEqual(policy.spec.ingress, [
    {
      from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'payments' } }, podSelector: { matchLabels: gatewayPods } }],
      ports: [{ port: 8443, protocol: 'TCP' }],
    },
  ])
  assert.equal(render(minimal()).documents.filter((d) => d.kind === 'NetworkPolicy').length, 1, 'none for upstreams unless listed')

  assert.throws(
    () => render(valuesWith(exampleValues('production.yaml'), { tls: { upstreamClientSecrets: { ledger: 's' } } })),
    /tls\.upstreamClientSecrets\.ledger: there is no upstream ledger/,
  )
  assert.throws(
    () =>
      render(
        valuesWith(exampleValues('production.yaml'), { gateway: { upstreams: { 'data-api': { url: 'https://a.example', certFile: '/x', keyFile: '/y' } } } }),
      ),
    /gateway\.upstreams\.data-api: certFile and keyFile come from tls\.upstreamClientSecrets\.data-api/,
  )
})

/** The pod's /etc/fapi-gateway, rebuilt in a temporary folder from the rendered ConfigMaps, loaded by the gateway's loader. */
function loadRendered(chart: ReturnType<typeof render>): LoadedConfig {
  const root = mkdtempSync(join(tmpdir(), 'fapi-gateway-chart-'))
  try {
    const gatewayYaml = (documentOf(chart, 'ConfigMap', 'fapi-gateway-config').data['gateway.yaml'] as string).replaceAll('/etc/fapi-gateway/', `${root}/`)
    const partners = chart.documents.find((d) => d.kind === 'ConfigMap' && (d.metadata as { name?: string }).name === 'fapi-gateway-partners')
    for (const path of new Set(gatewayYaml.match(new RegExp(`${root}/[^"\\s]+`, 'g')) ?? [])) {
      if (path.endsWith('/policies')) continue
      mkdirSync(dirname(path), { recursive: true })
      writeFileSync(path, path === `${root}/partners/partners.yaml` && partners ? (partners.data as Record<string, string>)['partners.yaml']! : 'placeholder')
    }
    mkdirSync(join(root, 'policies'), { recursive: true })
    for (const [file, text] of Object.entries(documentOf(chart, 'ConfigMap', 'fapi-gateway-policies').data as Record<string, string>))
      writeFileSync(join(root, 'policies', file), text)
    writeFileSync(join(root, 'gateway.yaml'), gatewayYaml)
    return loadConfig(join(root, 'gateway.yaml'), {})
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
}

test('the configuration the chart renders is accepted by the gateway loader, for every example', () => {
  for (const name of exampleFiles()) {
    const loaded = loadRendered(render(valuesWith(exampleValues(name))))
    const values = exampleValues(name) as { gateway: { publicBaseUrl: string }; replay?: { store?: string } }
    assert.equal(loaded.config.listener.publicBaseUrl, values.gateway.publicBaseUrl, name)
    assert.equal(loaded.config.admin.host, '0.0.0.0', 'probes and Prometheus reach the admin port from outside the pod')
    assert.equal(loaded.config.replay.store, values.replay?.store ?? 'redis', name)
    assert.ok(loaded.routes.length > 0, name)
    assert.equal(loaded.config.authorizationServer, undefined, `${name}: no façade unless asked`)
  }
})

test('the authorization-server façade: its section and the partner file (a ConfigMap) reach the pod, and the loader accepts them', () => {
  const example = join(CHART_DIR, '..', '..', 'examples', 'legacy-authorization-server')
  // The legacy server's CA, mounted through extraVolumes in a pod.
  const gateway = parse(readFileSync(join(example, 'gateway.yaml'), 'utf8').replaceAll('tls/legacy-ca.pem', '/etc/fapi-gateway/legacy-ca/ca.crt')) as {
    issuers: { name: string }[]
    authorizationServer: Record<string, unknown>
  }
  const { partnersFile: _, ...authorizationServer } = gateway.authorizationServer
  const partners = parse(readFileSync(join(example, 'partners.yaml'), 'utf8')) as { partners: unknown[] }
  const base = production() as { gateway: { issuers: unknown[] } }
  const values = valuesWith(base, { gateway: { issuers: [...base.gateway.issuers, ...gateway.issuers], authorizationServer, partners } })
  assert.deepEqual(valuesValidator()(values), [])
  const chart = render(values)

  const pod = documentOf(chart, 'Deployment').spec.template.spec
  assert.deepEqual(
    pod.containers[0].volumeMounts.find((m: { name: string }) => m.name === 'partners'),
    { name: 'partners', mountPath: '/etc/fapi-gateway/partners', readOnly: true },
  )
  assert.deepEqual(
    pod.volumes.find((v: { name: string }) => v.name === 'partners'),
    { name: 'partners', configMap: { name: 'fapi-gateway-partners' } },
  )
  const loaded = loadRendered(chart)
  assert.equal(loaded.config.authorizationServer?.resourceIssuer, 'legacy')
  assert.equal(loaded.config.authorizationServer?.legacy.tokenEndpoint, 'https://login.bank.internal/oauth/token')
  assert.deepEqual(
    loaded.partners?.entries.map((p) => p.clientId),
    ['fintech-one', 'fintech-two', 'fintech-three'],
  )

  assert.throws(() => render(valuesWith(values, { gateway: { partners: null } })), /gateway\.partners is required with gateway\.authorizationServer/)
  assert.throws(
    () => render(valuesWith(values, { gateway: { authorizationServer: { partnersFile: 'p.yaml' } } })),
    /gateway\.authorizationServer\.partnersFile: the chart mounts gateway\.partners there/,
  )
  assert.notDeepEqual(valuesValidator()(valuesWith(values, { gateway: { partners: { partners: [{ clientId: 'x' }] } } })), [])
})

test('Redis settings reach the configuration: Sentinel with TLS and passwordEnv, Cluster, single node', () => {
  const configOf = (values: unknown) => documentOf(render(values), 'ConfigMap', 'fapi-gateway-config').data['gateway.yaml'] as string
  const sentinel = configOf(production())
  assert.match(sentinel, /redis:\n\s+sentinels:\n\s+- host: redis-sentinel-0/)
  assert.match(sentinel, /name: "fapi"\n\s+tls: true\n\s+passwordEnv: FAPI_GATEWAY_REDIS_PASSWORD/)
  assert.match(configOf(valuesWith(exampleValues('redis-cluster-nodeport.yaml'))), /redis:\n\s+cluster:\n/)
  assert.match(
    configOf(valuesWith(exampleValues('minimal.yaml'), { replicaCount: 2, replay: { store: 'redis', redis: { url: 'rediss://redis:6380' } } })),
    /url: "rediss:\/\/redis:6380"/,
  )
  assert.match(configOf(production()), /memoryMaxEntries: 1000000\n/, 'an integer, not 1e+06')
  assert.match(configOf(production()), /revocationMirror:\n\s+enabled: false\n\s+heartbeatMs: 100\n\s+maxEntries: 100000\n\s+maxStalenessMs: 500\n/)
  assert.match(configOf(valuesWith(production(), { replay: { revocationMirror: { enabled: true } } })), /revocationMirror:\n\s+enabled: true\n/)
})

test('the alert rules pass promtool check rules', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fapi-gateway-rules-'))
  try {
    const rules = alertRules(production())
    const names = (rules.groups[0] as { rules: { alert: string }[] }).rules.map((r) => r.alert)
    assert.deepEqual(names, [
      'FapiGatewayCertificateExpiresSoon',
      'FapiGatewayReplayStoreUnavailable',
      'FapiGatewayRevocationMirrorStale',
      'FapiGatewayIssuerKeysUnavailable',
      'FapiGatewayRefusalSpike',
      'FapiGatewayCredentialAbuse',
      'FapiGatewayUpstream5xxRatio',
      'FapiGatewayLatencyP99High',
      'FapiGatewayHandshakeFlood',
      'FapiGatewaySecurityEventsDropped',
      'FapiGatewayStdoutDropped',
    ])
    const file = join(dir, 'rules.yaml')
    writeFileSync(file, stringify(rules))
    const result = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' })
    assert.equal(result.error, undefined, 'promtool runs (Debian package prometheus)')
    assert.equal(result.status, 0, result.stdout + result.stderr)
    assert.match(result.stdout, /SUCCESS: 11 rules found/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('the dashboard ConfigMap carries the Grafana sidecar label and the dashboard JSON', () => {
  const configMap = documentOf(render(production()), 'ConfigMap', 'fapi-gateway-dashboard')
  assert.equal(configMap.metadata.labels.grafana_dashboard, '1')
  const dashboard = JSON.parse(configMap.data['fapi-gateway.json'] as string) as { uid: string; panels: { title: string; targets?: { expr: string }[] }[] }
  assert.equal(dashboard.uid, 'fapi-gateway')
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)).join('\n')
  for (const metric of [
    'fapi_gateway_requests_total',
    'fapi_gateway_refusals_total',
    'fapi_gateway_request_duration_seconds_bucket',
    'fapi_gateway_upstream_responses_total',
    'fapi_gateway_revocation_lookups_total',
    'fapi_gateway_certificate_expiry_seconds',
    'fapi_gateway_dependency_up',
    'fapi_gateway_stdout_dropped_lines_total',
  ]) {
    assert.ok(exprs.includes(metric), metric)
  }
  for (const title of [
    'Requests by route and outcome',
    'Refusals by reason',
    'Latency percentiles (allowed requests)',
    'Upstream 5xx ratio',
    'Revocation look-ups',
    'Certificate expiry',
    'Stdout lines dropped (log reader behind)',
  ]) {
    assert.ok(
      dashboard.panels.some((p) => p.title === title),
      title,
    )
  }
})
