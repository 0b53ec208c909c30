// The introspection flood, measured: a partner presenting new opaque tokens (each one a call to a slow
// introspection endpoint) alone, then while another address floods the gateway with random Bearer
// strings; once with bounds like those before the flood limits (a pool of 4, nothing per address),
// once with the defaults. The flood runs in its own process so that it does not slow the partner's clock.
//   node bench/introspection-flood.ts [--seconds 5] [--quick] [--flood 400] [--flood-rate 100] [--delay-ms 100] [--partners 4]
// The default rate is what a pool of 4 connections to a 100 ms endpoint cannot absorb (40 calls a second) while the
// gateway's CPU still can; at several hundred strings a second on a small machine the CPU becomes the limit whatever
// the bounds (every request, refused or not, costs TLS, HTTP and a security event).
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { randomBytes, createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, platform, release, tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Agent, request } from 'undici'
import { stringify } from 'yaml'
import { startDevIssuer } from '../dev/issuer.ts'
import { chainPem, createDevPki, writeDevPki } from '../dev/pki.ts'
import { DEMO_AUDIENCE, freePort, REPO_ROOT } from '../dev/environment.ts'
import { startDemoUpstream } from '../dev/upstream.ts'
import { stop, untilReady } from './gateway-process.ts'

const HERE = fileURLToPath(new URL('.', import.meta.url))
const ATTACKER_ADDRESS = '127.0.0.2'

interface FloodJob {
  readonly url: string
  readonly caPem: string
  /** Most strings in flight at once. */
  readonly concurrency: number
  /** Strings sent a second (open model: the same traffic whatever the gateway answers). */
  readonly rate: number
}

interface FloodResult {
  readonly requests: number
  readonly errors: number
  /** Strings not sent because `concurrency` were still waiting for their answer. */
  readonly skipped: number
  readonly statuses: Record<string, number>
}

/**
 * The flooding process: `rate` random Bearer strings a second from ATTACKER_ADDRESS, at most `concurrency` in flight.
 * Says `ready` after a second of it, once every connection is open, and stops when told to.
 */
async function flood(job: FloodJob, stopped: Promise<void>, ready: () => void): Promise<FloodResult> {
  const agent = new Agent({ localAddress: ATTACKER_ADDRESS, connect: { ca: job.caPem, rejectUnauthorized: true }, connections: job.concurrency })
  const statuses: Record<string, number> = {}
  let requests = 0
  let errors = 0
  let skipped = 0
  let inFlight = 0
  const sent: Promise<void>[] = []
  const send = async () => {
    inFlight++
    try {
      const response = await request(`${job.url}/accounts/1`, {
        dispatcher: agent,
        headers: { authorization: `Bearer ${randomBytes(24).toString('base64url')}` },
      })
      const body = (await response.body.json()) as { code?: string }
      const key = `${response.statusCode} ${body.code ?? ''}`.trim()
      statuses[key] = (statuses[key] ?? 0) + 1
    } catch {
      errors++
    }
    requests++
    inFlight--
  }
  // Open every connection first, with requests that carry no token (answered 401 without any issuer call),
  // so that the TLS handshakes are behind the flood and not in the partner's measurement.
  let connected = 0
  agent.on('connect', () => void connected++)
  await Promise.all(
    Array.from({ length: job.concurrency }, async () => {
      while (connected < job.concurrency) {
        const response = await request(`${job.url}/accounts/1`, { dispatcher: agent })
        await response.body.dump()
      }
    }),
  )
  const started = performance.now()
  let due = 0
  const tick = setInterval(() => {
    const target = Math.floor(((performance.now() - started) / 1000) * job.rate)
    for (; due < target; due++) {
      if (inFlight >= job.concurrency) skipped++
      else sent.push(send())
    }
  }, 5)
  const readyTimer = setTimeout(ready, 1_000)
  await stopped
  clearInterval(tick)
  clearTimeout(readyTimer)
  await Promise.all(sent)
  await agent.close()
  return { requests, errors, skipped, statuses }
}

if (process.argv[2] === '--flood-child') {
  let stop!: () => void
  const stopped = new Promise<void>((resolve) => (stop = resolve))
  process.on('message', (message: FloodJob | 'stop') => {
    if (message === 'stop') return stop()
    flood(message, stopped, () => process.send!('ready')).then(
      (result) => process.send!({ result }, () => process.exit(0)),
      (error: unknown) => process.send!({ error: String(error) }, () => process.exit(1)),
    )
  })
} else {
  const { values: args } = parseArgs({
    options: {
      seconds: { type: 'string', default: '5' },
      quick: { type: 'boolean', default: false },
      flood: { type: 'string', default: '400' },
      'flood-rate': { type: 'string', default: '100' },
      'delay-ms': { type: 'string', default: '100' },
      partners: { type: 'string', default: '4' },
      out: { type: 'string', default: join(HERE, 'results') },
    },
  })
  main({
    seconds: args.quick ? 2 : Number(args.seconds),
    flood: args.quick ? 200 : Number(args.flood),
    floodRate: Number(args['flood-rate']),
    delayMs: Number(args['delay-ms']),
    partners: Number(args.partners),
    out: args.out!,
  }).catch((error: unknown) => {
    console.error(error)
    process.exit(1)
  })
}

interface Settings {
  readonly seconds: number
  readonly flood: number
  readonly floodRate: number
  readonly delayMs: number
  readonly partners: number
  readonly out: string
}

interface PartnerResult {
  readonly requests: number
  readonly ok: number
  readonly statuses: Record<string, number>
  readonly p50ms: number
  readonly p99ms: number
}

interface Phase {
  readonly variant: string
  readonly phase: 'alone' | 'flood'
  readonly partner: PartnerResult
  readonly flood: FloodResult | undefined
  /** Calls the gateway made to the introspection endpoint during the phase. */
  readonly introspectionCalls: number
  readonly refusedWithoutCall: Record<string, number>
}

const VARIANTS: readonly { name: string; description: string; introspection: Record<string, unknown> }[] = [
  {
    name: 'as-before',
    description: 'pool of 4, no bound per address, waits up to 5 s, no inactive cache',
    introspection: { connections: 4, maxPendingPerClient: 1_000_000, maxQueued: 1_000_000, maxQueueWaitMs: 5_000, inactiveCacheTtlSeconds: 0 },
  },
  { name: 'defaults', description: 'the default bounds', introspection: {} },
]

function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!
}

async function metricSums(adminPort: number): Promise<{ calls: number; refused: Record<string, number> }> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()
  let calls = 0
  const refused: Record<string, number> = {}
  for (const line of text.split('\n')) {
    const call = /^fapi_gateway_introspection_calls_total\{[^}]*\} (\d+)/.exec(line)
    if (call) calls += Number(call[1])
    const refusal = /^fapi_gateway_introspection_refused_total\{[^}]*reason="([a-z_]+)"[^}]*\} (\d+)/.exec(line)
    if (refusal) refused[refusal[1]!] = (refused[refusal[1]!] ?? 0) + Number(refusal[2])
  }
  return { calls, refused }
}

async function startGatewayProcess(configFile: string, adminPort: number): Promise<ChildProcess> {
  const child = fork(join(REPO_ROOT, 'src/main.ts'), ['start', '--config', configFile], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    env: { ...process.env, FAPI_GATEWAY__LOG__LEVEL: 'warn' },
  })
  return untilReady(child, adminPort)
}

async function main(settings: Settings): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fapi-bench-flood-'))
  const pki = await createDevPki()
  writeDevPki(pki, dir)
  const issuer = await startDevIssuer({
    tls: pki.server,
    chainPem: chainPem(pki.server, pki.intermediate),
    audience: DEMO_AUDIENCE,
    introspectionClient: { id: 'fapi-gateway', secret: 'bench-secret' },
    introspectionDelayMs: settings.delayMs,
  })
  const upstream = await startDemoUpstream()
  const x5t = createHash('sha256').update(pki.partnerA.cert.raw).digest('base64url')
  const partnerAgent = new Agent({
    connect: { ca: pki.root.certPem, cert: chainPem(pki.partnerA, pki.intermediate), key: pki.partnerA.keyPem, rejectUnauthorized: true },
  })
  const phases: Phase[] = []

  /** `partners` loops, each presenting a token the gateway has not seen yet on every request. */
  async function partner(url: string, durationMs: number): Promise<PartnerResult> {
    const latencies: number[] = []
    const statuses: Record<string, number> = {}
    const deadline = performance.now() + durationMs
    await Promise.all(
      Array.from({ length: settings.partners }, async () => {
        while (performance.now() < deadline) {
          const token = randomBytes(32).toString('base64url')
          issuer.registerOpaque(token, {
            iss: issuer.issuer,
            aud: DEMO_AUDIENCE,
            exp: Math.floor(Date.now() / 1000) + 300,
            scope: 'accounts:read',
            client_id: 'partner-a',
            sub: 'customer-1',
            cnf: { 'x5t#S256': x5t },
          })
          const started = performance.now()
          let key = 'error'
          try {
            const response = await request(`${url}/accounts/1`, { dispatcher: partnerAgent, headers: { authorization: `Bearer ${token}` } })
            const text = await response.body.text()
            key = response.statusCode === 200 ? '200' : `${response.statusCode} ${(JSON.parse(text) as { code?: string }).code ?? ''}`
          } catch {
            // counted as error
          }
          latencies.push(performance.now() - started)
          statuses[key] = (statuses[key] ?? 0) + 1
        }
      }),
    )
    latencies.sort((a, b) => a - b)
    return { requests: latencies.length, ok: statuses['200'] ?? 0, statuses, p50ms: percentile(latencies, 0.5), p99ms: percentile(latencies, 0.99) }
  }

  try {
    for (const variant of VARIANTS) {
      const port = await freePort()
      const adminPort = await freePort()
      const url = `https://127.0.0.1:${port}`
      const configFile = join(dir, `gateway-${variant.name}.yaml`)
      writeFileSync(
        configFile,
        stringify({
          listener: {
            host: '127.0.0.1',
            port,
            publicBaseUrl: url,
            tls: {
              certFile: 'server-chain.crt',
              keyFile: 'server.key',
              clientCaFile: 'client-ca.crt',
              clientIntermediatesFile: 'client-intermediates.crt',
              clientCertificate: 'request',
            },
            limits: { maxConnections: 100_000 },
          },
          admin: { host: '127.0.0.1', port: adminPort },
          issuers: [
            {
              name: 'dev',
              issuer: issuer.issuer,
              caFile: 'client-ca.crt',
              audience: DEMO_AUDIENCE,
              introspection: {
                endpoint: issuer.introspectionUri,
                clientId: 'fapi-gateway',
                auth: { method: 'client_secret_basic', secretEnv: 'BENCH_INTROSPECTION_SECRET' },
                ...variant.introspection,
              },
            },
          ],
          upstreams: { 'data-api': { url: upstream.url } },
          policies: { dir: join(REPO_ROOT, 'policies') },
          log: { level: 'warn' },
        }),
      )
      process.env.BENCH_INTROSPECTION_SECRET = 'bench-secret'
      const gateway = await startGatewayProcess(configFile, adminPort)
      try {
        await partner(url, 500) // warm-up: connections, JIT
        for (const phase of ['alone', 'flood'] as const) {
          const before = await metricSums(adminPort)
          let flooder: ChildProcess | undefined
          let floodDone: Promise<FloodResult> | undefined
          if (phase === 'flood') {
            flooder = fork(fileURLToPath(import.meta.url), ['--flood-child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
            const messages = flooder
            const ready = new Promise<void>((resolve) => messages.on('message', (message) => message === 'ready' && resolve()))
            floodDone = new Promise<FloodResult>((resolve, reject) =>
              messages.on('message', (message) => {
                if (message === 'ready') return
                const { result, error } = message as { result?: FloodResult; error?: string }
                if (result) resolve(result)
                else reject(new Error(`flood failed: ${error}`))
              }),
            )
            flooder.send({ url, caPem: pki.root.certPem, concurrency: settings.flood, rate: settings.floodRate } satisfies FloodJob)
            await ready
          }
          const measured = await partner(url, settings.seconds * 1000)
          flooder?.send('stop')
          const floodResult = await floodDone
          if (flooder) await once(flooder, 'exit').catch(() => undefined)
          const after = await metricSums(adminPort)
          const refused = Object.fromEntries(Object.entries(after.refused).map(([reason, n]) => [reason, n - (before.refused[reason] ?? 0)]))
          phases.push({
            variant: variant.name,
            phase,
            partner: measured,
            flood: floodResult,
            introspectionCalls: after.calls - before.calls,
            refusedWithoutCall: refused,
          })
          const row = phases.at(-1)!
          console.log(
            `${variant.name.padEnd(10)} ${phase.padEnd(6)} partner ${row.partner.ok}/${row.partner.requests} ok, p50 ${row.partner.p50ms.toFixed(1)} ms, p99 ${row.partner.p99ms.toFixed(1)} ms ${JSON.stringify(row.partner.statuses)}` +
              (row.flood
                ? `; flood ${row.flood.requests} requests (${row.flood.skipped} not sent: ${settings.flood} in flight) ${JSON.stringify(row.flood.statuses)}`
                : '') +
              `; issuer calls ${row.introspectionCalls}`,
          )
        }
      } finally {
        await stop(gateway)
      }
    }
  } finally {
    await partnerAgent.close()
    await issuer.close()
    await upstream.close()
    rmSync(dir, { recursive: true, force: true })
  }
  report(phases, settings)
}

function report(phases: readonly Phase[], settings: Settings): void {
  const date = new Date().toISOString()
  const find = (variant: string, phase: string) => phases.find((p) => p.variant === variant && p.phase === phase)!
  const successRate = (p: Phase) => p.partner.ok / Math.max(1, p.partner.requests)
  const lines = [
    `# fapi-gateway introspection flood, ${date}`,
    '',
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}, ${platform()} ${release()}; Node ${process.version}. Introspection endpoint answering after ${settings.delayMs} ms; ` +
      `${settings.partners} partner loops from 127.0.0.1, each request with a token the gateway has not seen (one introspection call each), for ${settings.seconds} s alone and ${settings.seconds} s during a flood ` +
      `of ${settings.floodRate} random Bearer strings a second, at most ${settings.flood} in flight, from ${ATTACKER_ADDRESS} (its own process; measured from its second second on). Everything on the same machine.`,
    '',
    '| bounds | phase | partner ok / sent | partner p50 ms | partner p99 ms | partner answers | flood sent (not sent: cap in flight) | flood answers | issuer calls | refused without a call |',
    '|---|---|---:|---:|---:|---|---:|---|---:|---|',
    ...phases.map(
      (p) =>
        `| ${p.variant} | ${p.phase} | ${p.partner.ok} / ${p.partner.requests} | ${p.partner.p50ms.toFixed(1)} | ${p.partner.p99ms.toFixed(1)} | ${JSON.stringify(p.partner.statuses)} | ${p.flood ? `${p.flood.requests} (${p.flood.skipped})` : '—'} | ${p.flood ? JSON.stringify(p.flood.statuses) : '—'} | ${p.introspectionCalls} | ${JSON.stringify(p.refusedWithoutCall)} |`,
    ),
    '',
    '| ratio, flood over alone | as-before | defaults |',
    '|---|---:|---:|',
    `| partner success rate | ${(successRate(find('as-before', 'flood')) / successRate(find('as-before', 'alone'))).toFixed(2)} | ${(successRate(find('defaults', 'flood')) / successRate(find('defaults', 'alone'))).toFixed(2)} |`,
    `| partner requests served | ${(find('as-before', 'flood').partner.ok / Math.max(1, find('as-before', 'alone').partner.ok)).toFixed(2)} | ${(find('defaults', 'flood').partner.ok / Math.max(1, find('defaults', 'alone').partner.ok)).toFixed(2)} |`,
    `| partner p50 latency | ${(find('as-before', 'flood').partner.p50ms / find('as-before', 'alone').partner.p50ms).toFixed(2)} | ${(find('defaults', 'flood').partner.p50ms / find('defaults', 'alone').partner.p50ms).toFixed(2)} |`,
    `| partner p99 latency | ${(find('as-before', 'flood').partner.p99ms / find('as-before', 'alone').partner.p99ms).toFixed(2)} | ${(find('defaults', 'flood').partner.p99ms / find('defaults', 'alone').partner.p99ms).toFixed(2)} |`,
    '',
  ]
  mkdirSync(settings.out, { recursive: true })
  const stamp = `${date.replace(/[:.]/g, '-')}-introspection-flood`
  const { out: _out, ...measuredWith } = settings
  writeFileSync(join(settings.out, `${stamp}.json`), JSON.stringify({ date, settings: measuredWith, phases }, null, 2))
  writeFileSync(join(settings.out, `${stamp}.md`), lines.join('\n'))
  console.log('\n' + lines.join('\n'))
}
