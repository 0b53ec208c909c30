// `npm run demo`: the gateway on an embedded development setup, and a scripted partner
// client that makes the legitimate calls and the attacks FAPI 2.0 exists to stop; then the gateway as the
// authorization-server façade of a legacy OAuth 2.0 server, the ways around its binding, and the authorization-code
// flow through the legacy server's own login pages with the attacks on it (dev/demo-facade.ts).
import { certificateThumbprint } from '../src/x509.ts'
import { Writable } from 'node:stream'
import { createLogger } from '../src/observability/log.ts'
import { startDevEnvironment, type DevEnvironment } from './environment.ts'
import { createPartnerClient, createProof, generateDpopKey, type PartnerClient } from '../src/client/partner-client.ts'
import type { Issued } from './pki.ts'
import { startFacadeEnvironment, type FacadeEnvironment } from './facade-environment.ts'
import { buildFacadeScenarios } from './demo-facade.ts'
import { resourceError, type DemoScenario } from './demo-scenario.ts'

export type { DemoScenario } from './demo-scenario.ts'

export interface ScenarioResult {
  readonly name: string
  readonly expected: string
  readonly got: string
  readonly passed: boolean
}

async function buildScenarios(
  env: DevEnvironment,
  clients: { partnerA: PartnerClient; partnerB: PartnerClient; anonymous: PartnerClient },
): Promise<DemoScenario[]> {
  const { pki, issuer, baseUrl } = env
  const { partnerA, partnerB, anonymous } = clients
  const keyA = await generateDpopKey('ES256')
  const imposterKey = await generateDpopKey('ES256')
  const token = await issuer.mint({ jkt: keyA.jkt, clientId: 'partner-a' })
  const certToken = await issuer.mint({ x5t: certificateThumbprint(pki.partnerA.cert.raw), clientId: 'partner-a' })
  const otherAudience = await issuer.mint({ jkt: keyA.jkt, audience: 'https://other-api.example' })
  const htu = `${baseUrl}/accounts/123`
  const proofA = await createProof(keyA, { htm: 'GET', htu, accessToken: token })
  const get = (client: PartnerClient, headers: [string, string][]) => client.send('GET', '/accounts/123', headers)

  return [
    {
      name: 'legitimate DPoP client',
      expectStatus: 200,
      expectError: undefined,
      run: () =>
        get(anonymous, [
          ['authorization', `DPoP ${token}`],
          ['dpop', proofA],
        ]),
    },
    {
      name: 'replayed DPoP proof',
      expectStatus: 401,
      expectError: 'invalid_dpop_proof',
      run: () =>
        get(anonymous, [
          ['authorization', `DPoP ${token}`],
          ['dpop', proofA],
        ]),
    },
    {
      name: 'stolen token, imposter key',
      expectStatus: 401,
      expectError: 'invalid_token',
      run: async () =>
        get(anonymous, [
          ['authorization', `DPoP ${token}`],
          ['dpop', await createProof(imposterKey, { htm: 'GET', htu, accessToken: token })],
        ]),
    },
    { name: 'Bearer downgrade', expectStatus: 401, expectError: 'invalid_token', run: () => get(anonymous, [['authorization', `Bearer ${token}`]]) },
    {
      name: 'token for another audience',
      expectStatus: 401,
      expectError: 'invalid_token',
      run: async () =>
        get(anonymous, [
          ['authorization', `DPoP ${otherAudience}`],
          ['dpop', await createProof(keyA, { htm: 'GET', htu, accessToken: otherAudience })],
        ]),
    },
    { name: 'legitimate mTLS-bound client', expectStatus: 200, expectError: undefined, run: () => get(partnerA, [['authorization', `Bearer ${certToken}`]]) },
    { name: 'wrong client certificate', expectStatus: 401, expectError: 'invalid_token', run: () => get(partnerB, [['authorization', `Bearer ${certToken}`]]) },
    { name: 'no access token', expectStatus: 401, expectError: undefined, run: () => get(anonymous, []) },
  ]
}

async function play(scenarios: readonly DemoScenario[]): Promise<ScenarioResult[]> {
  const results: ScenarioResult[] = []
  const describe = (status: number, err: string | undefined) => (err ? `${status} ${err}` : `${status}`)
  for (const scenario of scenarios) {
    const response = await scenario.run()
    const error = (scenario.errorOf ?? resourceError)(response)
    const passed = response.status === scenario.expectStatus && error === scenario.expectError
    results.push({ name: scenario.name, expected: describe(scenario.expectStatus, scenario.expectError), got: describe(response.status, error), passed })
  }
  return results
}

export async function runDemoScenarios(env: DevEnvironment): Promise<ScenarioResult[]> {
  const { pki, baseUrl } = env
  const caPem = pki.root.certPem
  const identity = (leaf: Issued) => ({ certPem: leaf.certPem.trimEnd() + '\n' + pki.intermediate.certPem, keyPem: leaf.keyPem })
  const clients = {
    partnerA: createPartnerClient({ baseUrl, caPem, identity: identity(pki.partnerA) }),
    partnerB: createPartnerClient({ baseUrl, caPem, identity: identity(pki.partnerB) }),
    anonymous: createPartnerClient({ baseUrl, caPem }),
  }
  try {
    return await play(await buildScenarios(env, clients))
  } finally {
    await Promise.all(Object.values(clients).map((client) => client.close()))
  }
}

/** The authorization-server façade in front of a legacy OAuth 2.0 server (opaque tokens, introspection). */
export async function runFacadeScenarios(facade: FacadeEnvironment): Promise<ScenarioResult[]> {
  const demo = await buildFacadeScenarios(facade)
  try {
    return await play(demo.scenarios)
  } finally {
    await demo.close()
  }
}

export function formatTable(results: readonly ScenarioResult[]): string {
  const rows = [['scenario', 'expected', 'got', ''], ...results.map((r) => [r.name, r.expected, r.got, r.passed ? 'ok' : 'FAIL'])]
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  const line = (row: string[]) =>
    row
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join('  ')
      .trimEnd()
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n')
}

export async function runDemo(): Promise<number> {
  const events: string[] = []
  const sink = new Writable({
    write(chunk, _encoding, done) {
      events.push(String(chunk))
      done()
    },
  })
  // A throwaway PKI in a temporary folder, removed at the end: certs/dev/ may be in use by `fapi-gateway dev` or your own configuration.
  const logger = createLogger('info', sink)
  const env = await startDevEnvironment({ logger, gateway: { eventStream: sink } })
  let facade: FacadeEnvironment | undefined
  try {
    console.log(`fapi-gateway demo: gateway on ${env.baseUrl}, a throwaway development PKI, in-memory replay store\n`)
    const results = await runDemoScenarios(env)
    console.log(formatTable(results))
    facade = await startFacadeEnvironment({ logger, pki: env.pki, frontChannel: true, gateway: { eventStream: sink } })
    console.log(
      `\nthe authorization-server façade: gateway on ${facade.issuer} as the FAPI 2.0 face of a legacy OAuth 2.0 server (client_secret_basic, opaque tokens) on ${facade.legacy.url}\n`,
    )
    const facadeResults = await runFacadeScenarios(facade)
    console.log(formatTable(facadeResults))
    const all = [...results, ...facadeResults]
    const refusals = events.filter((line) => line.includes('"dataset":"fapi_gateway.security"')).length
    const upstreamRequests = env.upstream.received.length + facade.upstream.received.length
    console.log(
      `\n${all.filter((r) => r.passed).length}/${all.length} scenarios as expected; ${refusals} security events emitted; upstream saw ${upstreamRequests} requests`,
    )
    return all.every((r) => r.passed) ? 0 : 1
  } finally {
    await facade?.close()
    await env.close()
  }
}
