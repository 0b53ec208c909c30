// npm run bench: the gateway against its baselines, measured in the same run, round by round.
// Targets run one at a time so that they never compete with each other for the CPU.
//   node bench/run.ts [--rounds 3] [--seconds 8] [--quick] [--workers 1] [--only scenario,…] [--targets gateway,bare,…]
//   node bench/run.ts --soak 10 [--soak-rate 1000]: the gateway alone at a fixed rate for 10 minutes, RSS sampled
//   façade scenarios (targets legacy and facade): facade-token-ka16 (the gateway's token endpoint, private_key_jwt + DPoP, against the
//   legacy server's directly with client_secret_basic) and facade-registry-dpop-ka32 (a registry-bound token against dpop-es256-ka32)
//   node bench/run.ts --introspection-flood [--seconds 5] [--quick]: a partner's new opaque tokens alone and during a flood (bench/introspection-flood.ts)
//   [--verify-on threadPool|eventLoop] sets the gateway's dpop.verifyOn; [--revocation-mirror] turns on replay.revocationMirror; [--profile DIR] runs the gateway with --cpu-prof; [--node-options="--max-semi-space-size=16 …"] gives the gateway,
//   the bare forwarder and the express app the same Node/V8 flags; BENCH_TARGET_STDOUT=1 shows their stdout (--trace-gc)
import { fork, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, hostname, platform, release, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { createHash } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { stringify } from 'yaml'
import { exportJWK, SignJWT } from 'jose'
import { Agent, request } from 'undici'
import { createDevPki, writeDevPki, chainPem } from '../dev/pki.ts'
import { startDevIssuer } from '../dev/issuer.ts'
import { freePort, REPO_ROOT, DEMO_AUDIENCE } from '../dev/environment.ts'
import { checkDpop, type DpopSettings } from '../src/checks/dpop/check.ts'
import { createProofKeyCache } from '../src/checks/dpop/proof-key-cache.ts'
import { createProof, generateDpopKey } from '../src/client/partner-client.ts'
import { redisCli, startRedisServer, watchRedisCommands } from '../test/support/redis.ts'
import { startFacadeEnvironment, type FacadeEnvironment } from '../dev/facade-environment.ts'
import { createLogger } from '../src/observability/log.ts'
import type { DpopKey } from '../src/client/partner-client.ts'
import type { LoadJob, LoadResult } from './load.ts'
import { stop, untilReady } from './gateway-process.ts'

const HERE = fileURLToPath(new URL('.', import.meta.url))
const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '8' },
    quick: { type: 'boolean', default: false },
    workers: { type: 'string', default: '1' },
    profile: { type: 'string' },
    only: { type: 'string' },
    targets: { type: 'string' },
    'auto-pipelining': { type: 'boolean', default: false },
    'verify-on': { type: 'string' },
    'revocation-mirror': { type: 'boolean', default: false },
    soak: { type: 'string' },
    'introspection-flood': { type: 'boolean', default: false },
    'soak-rate': { type: 'string', default: '1000' },
    'node-options': { type: 'string' },
    out: { type: 'string', default: join(HERE, 'results') },
  },
})
const ROUNDS = args.quick ? 1 : Number(args.rounds)
const SECONDS = args.quick ? 2 : Number(args.seconds)

interface Target {
  readonly name: string
  readonly url: string
  /** The process whose CPU and memory are measured, with its descendants. */
  readonly pid: number
  /** Stopped after its scenarios; absent for what runs all along (the upstream, the legacy server in this process). */
  readonly child?: ChildProcess
}

function clockTicks(): number {
  const result = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })
  return Number(result.stdout.trim()) || 100
}
const TICKS = clockTicks()
/** Node/V8 flags for every measured Node process (gateway and baselines alike), not the harness. */
const TARGET_NODE_OPTIONS = args['node-options']?.split(' ').filter(Boolean) ?? []

/** The process and every descendant (cluster workers, nginx workers). */
function processTree(pid: number): number[] {
  const pids = [pid]
  try {
    for (const task of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) pids.push(...processTree(Number(task)))
  } catch {
    // gone
  }
  return pids
}

function cpuSeconds(pid: number): number {
  return processTree(pid).reduce((sum, p) => {
    try {
      const fields = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ')
      return sum + (Number(fields[11]) + Number(fields[12])) / TICKS
    } catch {
      return sum
    }
  }, 0)
}

/** A memory figure of /proc/<pid>/status (VmHWM: peak RSS, VmRSS: RSS now) summed over the process tree, in MB. */
function memoryMb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const pattern = new RegExp(`${field}:\\s+(\\d+) kB`)
  return processTree(pid).reduce((sum, p) => {
    try {
      const match = pattern.exec(readFileSync(`/proc/${p}/status`, 'utf8'))
      return sum + (match ? Number(match[1]) / 1024 : 0)
    } catch {
      return sum
    }
  }, 0)
}

async function forkReady(
  script: string,
  argv: string[],
  env: NodeJS.ProcessEnv = {},
  execArgv: string[] = [],
): Promise<{ child: ChildProcess; message: Record<string, unknown> }> {
  const child = fork(script, argv, {
    env: { ...process.env, ...env },
    execArgv,
    stdio: ['ignore', process.env.BENCH_TARGET_STDOUT ? 'inherit' : 'ignore', 'inherit', 'ipc'],
  })
  const exited = once(child, 'exit').then(() => {
    throw new Error(`${script} exited before it was ready`)
  })
  const [message] = (await Promise.race([once(child, 'message'), exited])) as [Record<string, unknown>]
  if (!message.ready) throw new Error(`${script}: unexpected message`)
  return { child, message }
}

async function startGatewayProcess(configFile: string, port: number, adminPort: number, env: NodeJS.ProcessEnv = {}): Promise<ChildProcess> {
  const child = fork(join(REPO_ROOT, 'src/main.ts'), ['start', '--config', configFile], {
    execArgv: [...(args.profile ? ['--cpu-prof', '--cpu-prof-dir', args.profile] : []), ...TARGET_NODE_OPTIONS],
    env: { ...process.env, ...env, FAPI_GATEWAY__LISTENER__PORT: String(port), FAPI_GATEWAY__ADMIN__PORT: String(adminPort), FAPI_GATEWAY__LOG__LEVEL: 'warn' },
    stdio: ['ignore', process.env.BENCH_TARGET_STDOUT ? 'inherit' : 'ignore', 'inherit', 'ipc'],
  })
  return untilReady(child, adminPort)
}

interface Measured extends LoadResult {
  readonly cpuUsPerRequest: number
  readonly peakRssMb: number
}

async function measure(target: Target, job: LoadJob): Promise<Measured> {
  const loader = fork(join(HERE, 'load.ts'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const cpuBefore = cpuSeconds(target.pid)
  loader.send(job)
  const [message] = (await once(loader, 'message')) as [{ result?: LoadResult; error?: string }]
  const cpuAfter = cpuSeconds(target.pid)
  await once(loader, 'exit').catch(() => undefined)
  if (!message.result) throw new Error(`load against ${target.name} failed: ${message.error}`)
  const result = message.result
  // Proof generation happens in the loader before its clock starts; the target is idle then.
  return { ...result, cpuUsPerRequest: ((cpuAfter - cpuBefore) * 1e6) / Math.max(1, result.requests), peakRssMb: memoryMb(target.pid, 'VmHWM') }
}

/** Calls of each Redis command so far (INFO commandstats: those scripts run included), without the watch's own. */
async function redisCalls(port: number): Promise<Record<string, number>> {
  const calls: Record<string, number> = {}
  for (const match of (await redisCli(port, 'INFO', 'commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
    if (!WATCH_COMMANDS.has(match[1]!)) calls[match[1]!] = Number(match[2])
  return calls
}

const WATCH_COMMANDS = new Set(['info', 'echo', 'ping', 'monitor', 'client', 'select', 'hello', 'command'])
const REDIS_SAMPLE_REQUESTS = 200

interface RedisCost {
  readonly round: number
  readonly scenario: string
  readonly target: string
  readonly requests: number
  /** Commands the gateway sent a request (each one round trip, or part of a pipelined one), by command. */
  readonly sent: Record<string, number>
  /** Every command Redis executed a request, those its scripts ran included. */
  readonly executed: Record<string, number>
}

/**
 * What one request costs in Redis, from a short run of its own after the measured one: MONITOR sees the commands
 * clients send (not those a script runs), INFO commandstats counts every execution. MONITOR slows Redis, hence apart.
 */
async function redisCost(target: Target, job: LoadJob, redis: { url: string; port: number }): Promise<Omit<RedisCost, 'round' | 'scenario' | 'target'>> {
  const watch = await watchRedisCommands(redis.url)
  try {
    await watch.take()
    const before = await redisCalls(redis.port)
    const result = await measure(target, { ...job, maxRequests: REDIS_SAMPLE_REQUESTS, durationMs: 60_000, fixedRate: undefined, connections: 4 })
    const sent = (await watch.take()).map((args) => args[0]!.toLowerCase()).filter((command) => !WATCH_COMMANDS.has(command))
    const after = await redisCalls(redis.port)
    const perRequest = (counts: [string, number][]) =>
      Object.fromEntries(counts.filter(([, n]) => n > 0).map(([command, n]) => [command, n / Math.max(1, result.requests)]))
    const sentCounts = new Map<string, number>()
    for (const command of sent) sentCounts.set(command, (sentCounts.get(command) ?? 0) + 1)
    return {
      requests: result.requests,
      sent: perRequest([...sentCounts]),
      executed: perRequest(Object.entries(after).map(([command, calls]) => [command, calls - (before[command] ?? 0)])),
    }
  } finally {
    await watch.stop()
  }
}

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

/** One client_credentials token through the façade for partner-a, bound to this DPoP key by the registry. */
async function facadeToken(facade: FacadeEnvironment, key: DpopKey, caPem: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  const clientId = facade.partnerA.clientId
  const assertion = await new SignJWT({ iss: clientId, sub: clientId, aud: facade.issuer, jti: crypto.randomUUID(), iat: now, exp: now + 60 })
    .setProtectedHeader({ alg: 'ES256', kid: facade.partnerA.publicJwk.kid })
    .sign(facade.partnerA.privateKey)
  const agent = new Agent({ connect: { ca: caPem } })
  try {
    const response = await request(facade.tokenEndpoint, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: await createProof(key, { htm: 'POST', htu: facade.tokenEndpoint }) },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        scope: 'accounts:read',
        client_assertion_type: ASSERTION_TYPE,
        client_assertion: assertion,
      }).toString(),
    })
    const answer = (await response.body.json()) as { access_token?: string; error?: string }
    if (response.statusCode !== 200 || !answer.access_token) throw new Error(`façade token request: ${response.statusCode} ${answer.error}`)
    return answer.access_token
  } finally {
    await agent.close()
  }
}

function medianOf(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

/** Median time of one warm DPoP proof check (key imported and cached), in seconds. */
async function proofVerifySeconds(alg: 'ES256' | 'PS256'): Promise<number> {
  const key = await generateDpopKey(alg)
  const token = 'bench-token'
  const url = 'https://127.0.0.1/accounts/1'
  const proof = await createProof(key, { htm: 'GET', htu: url, accessToken: token })
  const settings: DpopSettings = {
    algorithms: ['ES256', 'PS256', 'EdDSA'],
    maxAgeSeconds: 3600,
    maxFutureSeconds: 10,
    maxJtiLength: 256,
    nonceMode: 'off',
    nonces: undefined,
  }
  const keys = createProofKeyCache({ maxEntries: 10 })
  const hash = createHash('sha256').update(token).digest('base64url')
  const input = { method: 'GET', url, proofHeaders: [proof], accessToken: token, accessTokenHash: hash, boundJkt: key.jkt }
  const samples: number[] = []
  for (let batch = 0; batch < 7; batch++) {
    const started = performance.now()
    for (let i = 0; i < 500; i++) checkDpop(input, settings, keys, Date.now())
    samples.push((performance.now() - started) / 500 / 1000)
  }
  return medianOf(samples)
}

function nginxAvailable(): boolean {
  return spawnSync('nginx', ['-v']).status === 0
}

async function startNginx(dir: string, port: number, upstreamUrl: string): Promise<ChildProcess> {
  const conf = join(dir, 'nginx.conf')
  const upstream = new URL(upstreamUrl)
  writeFileSync(
    conf,
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/nginx-body;
  proxy_temp_path ${dir}/nginx-proxy;
  upstream api { server ${upstream.host}; keepalive 64; }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${dir}/server-chain.crt;
    ssl_certificate_key ${dir}/server.key;
    ssl_client_certificate ${dir}/client-ca.crt;
    ssl_verify_client optional;
    ssl_verify_depth 3;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets off;
    ssl_session_cache off;
    location / { proxy_pass http://api; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`,
  )
  const { spawn } = await import('node:child_process')
  const child = spawn('nginx', ['-c', conf, '-e', `${dir}/nginx-error.log`], { stdio: 'ignore' })
  await new Promise((resolve) => setTimeout(resolve, 500))
  if (child.exitCode !== null) throw new Error('nginx did not start')
  return child
}

interface Scenario {
  readonly name: string
  readonly targets: readonly string[]
  readonly job: (target: string, url: string) => LoadJob
}

interface Row extends Measured {
  readonly round: number
  readonly scenario: string
  readonly target: string
}

function thumbprint(der: Buffer): string {
  return createHash('sha256').update(der).digest('base64url')
}

async function main(): Promise<void> {
  if (args['introspection-flood']) {
    const flood = fork(join(HERE, 'introspection-flood.ts'), ['--seconds', String(SECONDS), '--out', args.out!, ...(args.quick ? ['--quick'] : [])], {
      stdio: 'inherit',
    })
    const [code] = (await once(flood, 'exit')) as [number | null]
    if (code !== 0) throw new Error(`introspection flood bench exited with ${code}`)
    return
  }
  const workers = args.workers
  const dir = mkdtempSync(join(tmpdir(), 'fapi-bench-'))
  const pki = await createDevPki()
  writeDevPki(pki, dir)
  const caPem = pki.root.certPem
  const identity = { certPem: chainPem(pki.partnerA, pki.intermediate), keyPem: pki.partnerA.keyPem }
  const redis = await startRedisServer()
  const issuer = await startDevIssuer({ tls: pki.server, chainPem: chainPem(pki.server, pki.intermediate), audience: DEMO_AUDIENCE })
  const upstream = await forkReady(join(HERE, 'upstream.ts'), ['0'])
  const upstreamUrl = `http://127.0.0.1:${upstream.message.port}`

  const gatewayPort = await freePort()
  const adminPort = await freePort()
  const configFile = join(dir, 'gateway.yaml')
  writeFileSync(
    configFile,
    stringify({
      listener: {
        host: '127.0.0.1',
        port: gatewayPort,
        publicBaseUrl: `https://127.0.0.1:${gatewayPort}`,
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
      issuers: [{ name: 'dev', issuer: issuer.issuer, jwksUri: issuer.jwksUri, caFile: 'client-ca.crt', audience: DEMO_AUDIENCE }],
      upstreams: { 'data-api': { url: upstreamUrl, connections: 128 } },
      dpop: { maxAgeSeconds: 300, ...(args['verify-on'] && { verifyOn: args['verify-on'] }) },
      replay: { store: 'redis', redis: { url: redis.url }, autoPipelining: args['auto-pipelining'], revocationMirror: { enabled: args['revocation-mirror'] } },
      policies: { dir: join(REPO_ROOT, 'policies') },
      log: { level: 'warn' },
      ...(workers !== '1' && { workers: workers === 'auto' ? 'auto' : Number(workers) }),
    }),
  )

  const es256 = await generateDpopKey('ES256')
  const ps256 = await generateDpopKey('PS256')
  const dpopKey = async (key: typeof es256) => ({
    alg: key.alg as 'ES256' | 'PS256',
    privateJwk: (await exportJWK(key.privateKey)) as Record<string, unknown>,
    publicJwk: key.publicJwk as Record<string, unknown>,
  })
  const esKey = await dpopKey(es256)
  const psKey = await dpopKey(ps256)
  const tokenEs = await issuer.mint({ jkt: es256.jkt, expiresInSeconds: 3600 })
  const tokenPs = await issuer.mint({ jkt: ps256.jkt, expiresInSeconds: 3600 })
  const tokenMtls = await issuer.mint({ x5t: thumbprint(pki.partnerA.cert.raw), expiresInSeconds: 3600 })
  const path = '/accounts/1'
  const base = { path, caPem, identity }
  const ms = SECONDS * 1000

  // The façade (its legacy server in this process, its gateway a process of its own) only when a façade scenario is asked for.
  const only = args.only?.split(',')
  const onlyTargets = args.targets?.split(',')
  const facadeWanted =
    !args.soak && FACADE_SCENARIOS.some((name) => !only || only.includes(name)) && (!onlyTargets || onlyTargets.some((t) => t === 'legacy' || t === 'facade'))
  const facade = facadeWanted
    ? await startFacadeEnvironment({
        logger: createLogger('silent'),
        pki,
        validate: 'registry',
        startGateways: false,
        config: {
          listener: { limits: { maxConnections: 100_000 } },
          upstreams: { 'data-api': { url: upstreamUrl, connections: 128 } },
          dpop: { maxAgeSeconds: 300, ...(args['verify-on'] && { verifyOn: args['verify-on'] }) },
          replay: {
            store: 'redis',
            redis: { url: redis.url },
            autoPipelining: args['auto-pipelining'],
            revocationMirror: { enabled: args['revocation-mirror'] },
          },
          log: { level: 'warn' },
          ...(workers !== '1' && { workers: workers === 'auto' ? 'auto' : Number(workers) }),
        },
        // The load is one partner from one address: the per-client and per-address limits would measure themselves.
        authorizationServer: { limits: { perClientPerSecond: 1_000_000, perAddressPerSecond: 1_000_000, burst: 1_000_000 } },
      })
    : undefined
  const legacyClient = facade?.legacyClients['partner-a']
  const partnerAssertionKey = facade && ((await exportJWK(facade.partnerA.privateKey)) as Record<string, unknown>)
  let registryToken = ''

  if (args.soak) {
    try {
      await soak(
        { ...base, url: `https://127.0.0.1:${gatewayPort}`, scheme: 'DPoP', token: tokenEs, dpop: { ...esKey, htuBase: `https://127.0.0.1:${gatewayPort}` } },
        () => startGatewayProcess(configFile, gatewayPort, adminPort),
        workers,
      )
    } finally {
      await stop(upstream.child)
      await issuer.close()
      await facade?.close()
      await redis.close()
      rmSync(dir, { recursive: true, force: true })
    }
    return
  }

  const scenarios: Scenario[] = [
    {
      name: 'dpop-es256-ka32',
      targets: ['bare', 'gateway', 'express'],
      job: (_t, url) => ({
        ...base,
        url,
        scheme: 'DPoP',
        token: tokenEs,
        dpop: { ...esKey, htuBase: url },
        connections: 32,
        durationMs: ms,
        maxRequests: SECONDS * 16_000,
      }),
    },
    {
      name: 'dpop-es256-ka128',
      targets: ['bare', 'gateway', 'express'],
      job: (_t, url) => ({
        ...base,
        url,
        scheme: 'DPoP',
        token: tokenEs,
        dpop: { ...esKey, htuBase: url },
        connections: 128,
        durationMs: ms,
        maxRequests: SECONDS * 16_000,
      }),
    },
    {
      name: 'dpop-ps256-ka32',
      targets: ['bare', 'gateway'],
      job: (_t, url) => ({
        ...base,
        url,
        scheme: 'DPoP',
        token: tokenPs,
        dpop: { ...psKey, htuBase: url },
        connections: 32,
        durationMs: ms,
        maxRequests: Math.min(SECONDS, 3) * 8_000,
      }),
    },
    {
      name: 'mtls-bound-ka32',
      targets: ['bare', 'gateway', 'express', 'nginx'],
      job: (_t, url) => ({ ...base, url, scheme: 'Bearer', token: tokenMtls, connections: 32, durationMs: ms, maxRequests: SECONDS * 40_000 }),
    },
    {
      name: 'mtls-new-connection',
      targets: ['bare', 'gateway', 'nginx'],
      job: (_t, url) => ({
        ...base,
        url,
        scheme: 'Bearer',
        token: tokenMtls,
        connections: 32,
        durationMs: ms,
        maxRequests: SECONDS * 10_000,
        newConnectionPerRequest: true,
      }),
    },
    {
      name: 'dpop-es256-1000rps',
      targets: ['direct', 'bare', 'gateway'],
      job: (target, url) =>
        target === 'direct'
          ? { ...base, url, scheme: 'none', connections: 64, durationMs: ms, maxRequests: SECONDS * 1000 + 10, fixedRate: 1000 }
          : {
              ...base,
              url,
              scheme: 'DPoP',
              token: tokenEs,
              dpop: { ...esKey, htuBase: url },
              connections: 64,
              durationMs: ms,
              maxRequests: SECONDS * 1000 + 10,
              fixedRate: 1000,
            },
    },
    {
      // client_credentials: the partner's private_key_jwt and DPoP at the gateway, the gateway's client_secret_basic at the legacy server.
      name: 'facade-token-ka16',
      targets: ['legacy', 'facade'],
      job: (target, url) => {
        const common = { url, caPem, connections: 16, durationMs: ms, maxRequests: SECONDS * 3000, method: 'POST' as const, scheme: 'none' as const }
        const form = { grant_type: 'client_credentials', scope: 'accounts:read' }
        const contentType = { 'content-type': 'application/x-www-form-urlencoded' }
        if (target === 'legacy') {
          const basic = Buffer.from(`${legacyClient!.clientId}:${legacyClient!.secret}`).toString('base64')
          return { ...common, path: new URL(facade!.legacy.tokenEndpoint).pathname, headers: { ...contentType, authorization: `Basic ${basic}` }, form }
        }
        return {
          ...common,
          path: new URL(facade!.tokenEndpoint).pathname,
          headers: contentType,
          form,
          clientAssertion: {
            clientId: facade!.partnerA.clientId,
            audience: facade!.issuer,
            kid: facade!.partnerA.publicJwk.kid!,
            privateJwk: partnerAssertionKey!,
          },
          dpop: { ...esKey, htuBase: url },
        }
      },
    },
    {
      // As dpop-es256-ka32, with a legacy opaque token whose binding the registry holds (facade.validate: registry).
      name: 'facade-registry-dpop-ka32',
      targets: ['facade'],
      job: (_t, url) => ({
        ...base,
        url,
        scheme: 'DPoP',
        token: registryToken,
        dpop: { ...esKey, htuBase: url },
        connections: 32,
        durationMs: ms,
        maxRequests: SECONDS * 16_000,
      }),
    },
  ]

  const haveNginx = nginxAvailable()
  const starters: Record<string, (() => Promise<Target>) | undefined> = {
    direct: async () => ({ name: 'direct', url: upstreamUrl, pid: upstream.child.pid! }),
    bare: async () => {
      const port = await freePort()
      const child = (await forkReady(join(HERE, 'bare-forwarder.ts'), [String(port), upstreamUrl, dir], {}, TARGET_NODE_OPTIONS)).child
      return { name: 'bare', url: `https://127.0.0.1:${port}`, pid: child.pid!, child }
    },
    gateway: async () => {
      const child = await startGatewayProcess(configFile, gatewayPort, adminPort)
      return { name: 'gateway', url: `https://127.0.0.1:${gatewayPort}`, pid: child.pid!, child }
    },
    express: async () => {
      const port = await freePort()
      const started = await forkReady(
        join(HERE, 'express-baseline.ts'),
        [String(port), dir, issuer.issuer, issuer.jwksUri, DEMO_AUDIENCE],
        { NODE_EXTRA_CA_CERTS: join(dir, 'client-ca.crt') },
        TARGET_NODE_OPTIONS,
      )
      return { name: 'express', url: `https://127.0.0.1:${port}`, pid: started.child.pid!, child: started.child }
    },
    nginx: haveNginx
      ? async () => {
          const port = await freePort()
          const child = await startNginx(dir, port, upstreamUrl)
          return { name: 'nginx', url: `https://127.0.0.1:${port}`, pid: child.pid!, child }
        }
      : undefined,
    // The legacy server runs in this process, idle but for it while it is measured.
    legacy: facade ? async () => ({ name: 'legacy', url: facade.legacy.url, pid: process.pid }) : undefined,
    facade: facade
      ? async () => {
          const child = await startGatewayProcess(facade.configFile, Number(new URL(facade.issuer).port), await freePort(), facade.env)
          registryToken = await facadeToken(facade, es256, caPem)
          return { name: 'facade', url: facade.issuer, pid: child.pid!, child }
        }
      : undefined,
  }
  if (!haveNginx) console.log('bench: nginx is not installed; skipping the nginx baseline (apt-get install nginx to include it)')

  const proofEs = await proofVerifySeconds('ES256')
  const proofPs = await proofVerifySeconds('PS256')
  console.log(`bench: warm DPoP proof check ES256 ${(proofEs * 1e6).toFixed(1)} µs, PS256 ${(proofPs * 1e6).toFixed(1)} µs`)

  const rows: Row[] = []
  const redisCosts: RedisCost[] = []
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      for (const targetName of ['direct', 'bare', 'gateway', 'express', 'nginx', 'legacy', 'facade']) {
        const start = starters[targetName]
        const mine = scenarios.filter((s) => s.targets.includes(targetName) && (!only || only.includes(s.name)))
        if (!start || mine.length === 0 || (onlyTargets && !onlyTargets.includes(targetName))) continue
        const target = await start()
        try {
          // Warm-up: JIT, key sets, pools.
          await measure(target, { ...mine[0]!.job(targetName, target.url), durationMs: 1000, maxRequests: 2000, fixedRate: undefined })
          for (const scenario of mine) {
            const job = scenario.job(targetName, target.url)
            const result = await measure(target, job)
            rows.push({ ...result, round, scenario: scenario.name, target: targetName })
            const bad =
              result.errors +
              Object.entries(result.statuses)
                .filter(([status]) => status !== '200')
                .reduce((n, [, c]) => n + c, 0)
            console.log(
              `round ${round} ${scenario.name.padEnd(25)} ${targetName.padEnd(8)} ${result.rps.toFixed(0).padStart(7)} req/s  p50 ${result.p50ms.toFixed(2)} ms  p99 ${result.p99ms.toFixed(2)} ms  cpu ${result.cpuUsPerRequest.toFixed(0)} µs/req${bad ? `  (${bad} not 200: ${JSON.stringify(result.statuses)}, errors ${result.errors})` : ''}`,
            )
            if (targetName === 'facade' || targetName === 'gateway') {
              const cost = { round, scenario: scenario.name, target: targetName, ...(await redisCost(target, job, redis)) }
              redisCosts.push(cost)
              console.log(
                `round ${round} ${scenario.name.padEnd(25)} ${targetName.padEnd(8)} Redis a request (${cost.requests} requests): ${formatRedisCost(cost)}`,
              )
            }
          }
        } finally {
          if (target.child) await stop(target.child)
        }
      }
    }
  } finally {
    await stop(upstream.child)
    await issuer.close()
    await facade?.close()
    await redis.close()
    rmSync(dir, { recursive: true, force: true })
  }
  writeResults(rows, { proofEs, proofPs, workers, redisCosts })
}

const FACADE_SCENARIOS = ['facade-token-ka16', 'facade-registry-dpop-ka32']

function formatRedisCost(cost: RedisCost): string {
  const list = (perRequest: Record<string, number>) =>
    Object.entries(perRequest)
      .map(([command, calls]) => `${command} ${calls.toFixed(2)}`)
      .join(', ') || 'none'
  return `sent ${list(cost.sent)}; executed, scripts' included: ${list(cost.executed)}`
}

/**
 * The memory target's second half: steady DPoP load for --soak minutes, RSS sampled every 5 s.
 * Growth is the last minute's mean over the second minute's (the first is warm-up: JIT, pools, caches).
 */
async function soak(
  job: Omit<LoadJob, 'connections' | 'durationMs' | 'maxRequests'>,
  startGateway: () => Promise<ChildProcess>,
  workers: string,
): Promise<void> {
  const minutes = Number(args.soak)
  const rate = Number(args['soak-rate'])
  if (!(minutes >= 3)) throw new Error('--soak needs at least 3 minutes (one of warm-up, one as the reference, one at the end)')
  const gateway = await startGateway()
  const samples: { atSeconds: number; rssMb: number }[] = []
  let result: Measured
  try {
    const started = performance.now()
    const sampler = setInterval(() => samples.push({ atSeconds: (performance.now() - started) / 1000, rssMb: memoryMb(gateway.pid!, 'VmRSS') }), 5000)
    try {
      result = await measure(
        { name: 'gateway', url: job.url, pid: gateway.pid!, child: gateway },
        {
          ...job,
          connections: 32,
          durationMs: minutes * 60_000,
          maxRequests: Math.ceil(rate * minutes * 60) + 10,
          fixedRate: rate,
          signProofsWhenSent: true,
        },
      )
    } finally {
      clearInterval(sampler)
    }
  } finally {
    await stop(gateway)
  }
  const mean = (from: number, to: number) => {
    const window = samples.filter((s) => s.atSeconds >= from && s.atSeconds < to).map((s) => s.rssMb)
    return window.reduce((a, b) => a + b, 0) / window.length
  }
  const reference = mean(60, 120)
  const end = mean((minutes - 1) * 60, minutes * 60 + 30)
  const growth = end / reference - 1
  const date = new Date().toISOString()
  const bad =
    result.errors +
    Object.entries(result.statuses)
      .filter(([status]) => status !== '200')
      .reduce((n, [, c]) => n + c, 0)
  const lines = [
    `# fapi-gateway soak, ${date}`,
    '',
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${platform()} ${release()}; Node ${process.version}, OpenSSL ${process.versions.openssl}; gateway workers: ${workers}.`,
    `DPoP ES256 at a fixed ${rate} req/s for ${minutes} minutes over 32 connections, a fresh proof per request, Redis replay store.`,
    '',
    `| requests | not 200 | p50 ms | p99 ms | CPU µs/req | RSS minute 2 MB | RSS last minute MB | growth | target |`,
    '|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    `| ${result.requests} | ${bad} | ${result.p50ms.toFixed(2)} | ${result.p99ms.toFixed(2)} | ${result.cpuUsPerRequest.toFixed(0)} | ${reference.toFixed(1)} | ${end.toFixed(1)} | ${(100 * growth).toFixed(1)}% | < 5% |`,
    '',
    'RSS every 5 s (MB): ' + samples.map((s) => s.rssMb.toFixed(0)).join(' '),
    '',
  ]
  mkdirSync(args.out!, { recursive: true })
  const stamp = `${date.replace(/[:.]/g, '-')}-soak`
  writeFileSync(
    join(args.out!, `${stamp}.json`),
    JSON.stringify({ date, minutes, rate, workers, result, samples, referenceMb: reference, endMb: end, growth }, null, 2),
  )
  writeFileSync(join(args.out!, `${stamp}.md`), lines.join('\n'))
  console.log('\n' + lines.join('\n'))
}

function writeResults(rows: readonly Row[], context: { proofEs: number; proofPs: number; workers: string; redisCosts: readonly RedisCost[] }): void {
  const get = (round: number, scenario: string, target: string) => rows.find((r) => r.round === round && r.scenario === scenario && r.target === target)
  const rounds = [...new Set(rows.map((r) => r.round))]
  const ratio = (fn: (round: number) => number | undefined) => {
    const values = rounds.map(fn).filter((v): v is number => v !== undefined && Number.isFinite(v))
    return values.length ? { median: medianOf(values), rounds: values } : undefined
  }
  const limit = (bareRps: number, proof: number) => 1 / (1 / bareRps + proof)
  const ratios = {
    es256VsCryptoLimit: ratio((r) => {
      const g = get(r, 'dpop-es256-ka32', 'gateway')
      const b = get(r, 'dpop-es256-ka32', 'bare')
      return g && b && g.rps / limit(b.rps, context.proofEs)
    }),
    ps256VsCryptoLimit: ratio((r) => {
      const g = get(r, 'dpop-ps256-ka32', 'gateway')
      const b = get(r, 'dpop-ps256-ka32', 'bare')
      return g && b && g.rps / limit(b.rps, context.proofPs)
    }),
    mtlsVsBareForwarder: ratio((r) => {
      const g = get(r, 'mtls-bound-ka32', 'gateway')
      const b = get(r, 'mtls-bound-ka32', 'bare')
      return g && b && g.rps / b.rps
    }),
    es256VsExpress: ratio((r) => {
      const g = get(r, 'dpop-es256-ka32', 'gateway')
      const e = get(r, 'dpop-es256-ka32', 'express')
      return g && e && g.rps / e.rps
    }),
    es256VsExpress128: ratio((r) => {
      const g = get(r, 'dpop-es256-ka128', 'gateway')
      const e = get(r, 'dpop-es256-ka128', 'express')
      return g && e && g.rps / e.rps
    }),
    addedP99msAt1000rps: ratio((r) => {
      const g = get(r, 'dpop-es256-1000rps', 'gateway')
      const d = get(r, 'dpop-es256-1000rps', 'direct')
      return g && d && g.p99ms - d.p99ms
    }),
    handshakesVsNginx: ratio((r) => {
      const g = get(r, 'mtls-new-connection', 'gateway')
      const n = get(r, 'mtls-new-connection', 'nginx')
      return g && n && g.rps / n.rps
    }),
    handshakesVsBare: ratio((r) => {
      const g = get(r, 'mtls-new-connection', 'gateway')
      const b = get(r, 'mtls-new-connection', 'bare')
      return g && b && g.rps / b.rps
    }),
    peakRssVsBare: ratio((r) => {
      const g = get(r, 'mtls-bound-ka32', 'gateway')
      const b = get(r, 'mtls-bound-ka32', 'bare')
      return g && b && g.peakRssMb / b.peakRssMb
    }),
    facadeTokenVsLegacyDirect: ratio((r) => {
      const f = get(r, 'facade-token-ka16', 'facade')
      const l = get(r, 'facade-token-ka16', 'legacy')
      return f && l && f.rps / l.rps
    }),
    registryVsCnfJkt: ratio((r) => {
      const f = get(r, 'facade-registry-dpop-ka32', 'facade')
      const g = get(r, 'dpop-es256-ka32', 'gateway')
      return f && g && f.rps / g.rps
    }),
  }
  const targets: Record<keyof typeof ratios, string> = {
    es256VsCryptoLimit: '≥ 0.90',
    ps256VsCryptoLimit: '≥ 0.90',
    mtlsVsBareForwarder: '≥ 0.85',
    es256VsExpress: '≥ 1.5',
    es256VsExpress128: '≥ 1.5',
    addedP99msAt1000rps: '≤ 1 ms',
    handshakesVsNginx: '≥ 0.5',
    handshakesVsBare: '—',
    peakRssVsBare: '≤ 1.2',
    facadeTokenVsLegacyDirect: '—',
    registryVsCnfJkt: '—',
  }
  const machine = {
    host: hostname(),
    platform: `${platform()} ${release()}`,
    cpus: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}`,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    openssl: process.versions.openssl,
    date: new Date().toISOString(),
    rounds: ROUNDS,
    secondsPerRun: SECONDS,
    workers: context.workers,
    nodeOptions: TARGET_NODE_OPTIONS,
    gateway: { verifyOn: args['verify-on'] ?? 'threadPool (default)', revocationMirror: args['revocation-mirror'] },
  }
  const summarize = (scenario: string, target: string) => {
    const mine = rows.filter((r) => r.scenario === scenario && r.target === target)
    if (mine.length === 0) return undefined
    return {
      rps: medianOf(mine.map((r) => r.rps)),
      p50ms: medianOf(mine.map((r) => r.p50ms)),
      p99ms: medianOf(mine.map((r) => r.p99ms)),
      cpuUsPerRequest: medianOf(mine.map((r) => r.cpuUsPerRequest)),
      peakRssMb: Math.max(...mine.map((r) => r.peakRssMb)),
    }
  }
  const pairs = [...new Set(rows.map((r) => `${r.scenario}|${r.target}`))]
  const lines = [
    `# fapi-gateway bench, ${machine.date}`,
    '',
    `Machine: ${machine.cpus}, ${machine.memoryGiB} GiB, ${machine.platform}; Node ${machine.node}, OpenSSL ${machine.openssl}. ${ROUNDS} round(s) of ${SECONDS} s per run; gateway workers: ${context.workers}; dpop.verifyOn: ${machine.gateway.verifyOn}; replay.revocationMirror: ${machine.gateway.revocationMirror ? 'on' : 'off (default)'}; Node flags of the gateway and the Node baselines: ${TARGET_NODE_OPTIONS.join(' ') || 'none'}. The load generator runs on the same machine.`,
    `Warm DPoP proof check: ES256 ${(context.proofEs * 1e6).toFixed(1)} µs, PS256 ${(context.proofPs * 1e6).toFixed(1)} µs.`,
    '',
    '| scenario | target | req/s | p50 ms | p99 ms | CPU µs/req | peak RSS MB |',
    '|---|---|---:|---:|---:|---:|---:|',
    ...pairs.map((pair) => {
      const [scenario, target] = pair.split('|') as [string, string]
      const s = summarize(scenario, target)!
      return `| ${scenario} | ${target} | ${s.rps.toFixed(0)} | ${s.p50ms.toFixed(2)} | ${s.p99ms.toFixed(2)} | ${s.cpuUsPerRequest.toFixed(0)} | ${s.peakRssMb.toFixed(0)} |`
    }),
    '',
    '| ratio (median of rounds) | value | per round | target |',
    '|---|---:|---|---|',
    ...Object.entries(ratios).map(
      ([name, value]) =>
        `| ${name} | ${value ? value.median.toFixed(2) : 'n/a'} | ${value ? value.rounds.map((v) => v.toFixed(2)).join(', ') : ''} | ${targets[name as keyof typeof ratios]} |`,
    ),
    '',
    ...context.redisCosts.map(
      (c) => `Redis a request, round ${c.round}, ${c.scenario} on ${c.target} (${c.requests} requests under MONITOR): ${formatRedisCost(c)}.`,
    ),
    '',
  ]
  mkdirSync(args.out!, { recursive: true })
  const stamp = machine.date.replace(/[:.]/g, '-')
  writeFileSync(
    join(args.out!, `${stamp}.json`),
    JSON.stringify({ machine, proofVerifySeconds: { ES256: context.proofEs, PS256: context.proofPs }, rows, ratios, redisCosts: context.redisCosts }, null, 2),
  )
  writeFileSync(join(args.out!, `${stamp}.md`), lines.join('\n'))
  console.log('\n' + lines.join('\n'))
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
