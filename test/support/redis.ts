// Real redis-server processes for tests: 127.0.0.1 only, no persistence, killed at test end
// and when the test process exits or is interrupted.
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { findFreePort } from './ports.ts'

const redisServerBinary = '/usr/bin/redis-server'
const redisCliBinary = '/usr/bin/redis-cli'
const startupLimitMs = 10_000

export interface RedisServer {
  readonly port: number
  /** redis://127.0.0.1:<port> */
  readonly url: string
  /** Kills the server (SIGKILL, like a crash) and waits until it has exited. */
  stop(): Promise<void>
  /** Starts it again on the same port and waits until it answers. */
  start(): Promise<void>
  /** SIGSTOP: the port stays open but nothing answers (a hung or black-holed server). */
  freeze(): void
  /** SIGCONT after freeze(). */
  thaw(): void
  /** stop() and remove the working directory. */
  close(): Promise<void>
}

export interface RedisServerOptions {
  /** A one-node Redis Cluster that owns every slot. */
  readonly cluster?: boolean
}

/** Runs redis-cli against 127.0.0.1:port and returns its trimmed output. */
export function redisCli(port: number, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(redisCliBinary, ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 2000 }, (error, stdout) => {
      if (error) reject(error)
      else resolve(stdout.trim())
    })
  })
}

export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'fapigw-redis-'))
  const port = await findFreePort()
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]
  if (options.cluster) args.push('--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-announce-ip', '127.0.0.1')
  const process = createManagedProcess(dir, [redisServerBinary, ...args], async () => {
    await waitUntil(async () => (await redisCli(port, 'ping')) === 'PONG')
    if (options.cluster) {
      // nodes.conf in dir keeps the slots across restarts; only a fresh node needs them.
      const info = await redisCli(port, 'cluster', 'info')
      if (!info.includes('cluster_slots_assigned:16384')) await redisCli(port, 'cluster', 'addslotsrange', '0', '16383')
      await waitUntil(async () => (await redisCli(port, 'cluster', 'info')).includes('cluster_state:ok'))
    }
  })
  await process.start()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop: process.stop,
    start: process.start,
    freeze: () => process.signal('SIGSTOP'),
    thaw: () => process.signal('SIGCONT'),
    close: process.close,
  }
}

export interface RedisClusterNode {
  readonly port: number
  /** SIGKILL, like a crash; the node is not started again. */
  kill(): Promise<void>
  /** SIGSTOP: its ports stay open but it answers nothing, like a host cut off; left out of the health checks from then on. */
  freeze(): void
}

export interface RedisCluster {
  readonly nodes: readonly RedisClusterNode[]
  /** Seed addresses for a client (every node). */
  readonly addresses: readonly { host: string; port: number }[]
  /** cluster-node-timeout of every node. */
  readonly nodeTimeoutMs: number
  /** Port of the master that serves key's slot now. */
  masterFor(key: string): Promise<number>
  /** Port of a replica of the master on masterPort, if it has one. */
  replicaOf(masterPort: number): Promise<number | undefined>
  /** Until every node still running says cluster_state:ok and all 16384 slots are served by masters that are not failed. */
  untilHealthy(what?: string): Promise<void>
  close(): Promise<void>
}

export interface RedisClusterOptions {
  readonly masters?: number
  readonly replicasPerMaster?: number
  /** cluster-node-timeout: how long a silent master stays in charge before its replica takes over. Default 1000. */
  readonly nodeTimeoutMs?: number
  /** cluster-require-full-coverage: with yes (Redis' default) no slot is served while any slot has no master. */
  readonly requireFullCoverage?: boolean
}

/**
 * A Redis Cluster as it runs in production: masters with replicas (3 + 3 by default), each its own
 * redis-server on a free loopback port, joined with `redis-cli --cluster create`. Every node is
 * killed at close() and when the test process exits.
 */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3
  const replicasPerMaster = options.replicasPerMaster ?? 1
  const nodeTimeoutMs = options.nodeTimeoutMs ?? 1000
  const processes: { port: number; process: ManagedProcess; running: boolean }[] = []
  // One connection per node for the polling below: spawning redis-cli for each look is slow on a busy machine.
  const inspectors = new Map<number, Redis>()
  const ask = async (port: number, ...args: string[]): Promise<string> => {
    let inspector = inspectors.get(port)
    if (!inspector) {
      inspector = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 0, enableOfflineQueue: true, retryStrategy: () => 50, commandTimeout: 1000 })
      inspector.on('error', () => {})
      inspectors.set(port, inspector)
    }
    return String(await inspector.call(args[0]!, ...args.slice(1)))
  }
  const forget = (port: number): void => {
    inspectors.get(port)?.disconnect()
    inspectors.delete(port)
  }
  const close = async (): Promise<void> => {
    for (const port of [...inspectors.keys()]) forget(port)
    await Promise.allSettled(processes.map(({ process }) => process.close()))
  }
  try {
    for (let i = 0; i < masters * (1 + replicasPerMaster); i++) {
      const dir = await mkdtemp(join(tmpdir(), 'fapigw-redis-cluster-'))
      const port = await findFreePort()
      // The bus port is not port + 10000 (which may be taken, or above 65535) but a free port of its own.
      const busPort = await findFreePort()
      const args = [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        '--cluster-enabled',
        'yes',
        '--cluster-port',
        String(busPort),
        '--cluster-config-file',
        'nodes.conf',
        '--cluster-announce-ip',
        '127.0.0.1',
        // No 5 s wait before a replica's first sync (Redis' default, for several replicas to share one transfer).
        '--cluster-node-timeout',
        String(nodeTimeoutMs),
        '--repl-diskless-sync-delay',
        '0',
        '--cluster-require-full-coverage',
        options.requireFullCoverage === false ? 'no' : 'yes',
      ]
      const process = createManagedProcess(dir, [redisServerBinary, ...args], () => waitUntil(async () => (await redisCli(port, 'ping')) === 'PONG'))
      processes.push({ port, process, running: false })
      await process.start()
      processes.at(-1)!.running = true
    }
    const ports = processes.map(({ port }) => port)
    await runRedisCli(['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', String(replicasPerMaster), '--cluster-yes'])
  } catch (error) {
    await close()
    throw error
  }

  const running = () => processes.filter((p) => p.running)
  const clusterNodes = async (): Promise<ClusterNodeLine[]> => parseClusterNodes(await ask(running()[0]!.port, 'cluster', 'nodes'))
  const healthy = async (): Promise<boolean> => {
    for (const { port } of running()) {
      const info = await ask(port, 'cluster', 'info')
      if (!info.includes('cluster_state:ok') || !info.includes('cluster_slots_ok:16384')) return false
      const nodes = parseClusterNodes(await ask(port, 'cluster', 'nodes'))
      const livePorts = new Set(running().map((p) => p.port))
      const servedSlots = nodes.filter((n) => n.master && !n.failed && livePorts.has(n.port)).reduce((sum, n) => sum + n.slotCount, 0)
      if (servedSlots !== 16384) return false
      const replication = await ask(port, 'info', 'replication')
      if (replication.includes('role:slave') && !replication.includes('master_link_status:up')) return false
    }
    return true
  }
  const cluster: RedisCluster = {
    nodes: processes.map((entry) => ({
      port: entry.port,
      async kill() {
        entry.running = false
        await entry.process.stop()
        forget(entry.port)
      },
      freeze() {
        entry.running = false
        forget(entry.port)
        entry.process.signal('SIGSTOP')
      },
    })),
    addresses: processes.map(({ port }) => ({ host: '127.0.0.1', port })),
    nodeTimeoutMs,
    async masterFor(key) {
      const answer = await ask(running()[0]!.port, 'cluster', 'keyslot', key)
      if (!/^\d+$/.test(answer)) throw new Error(`CLUSTER KEYSLOT answered ${JSON.stringify(answer)}`)
      const slot = Number(answer)
      const owner = (await clusterNodes()).find((n) => n.master && !n.failed && n.slots.some(([from, to]) => slot >= from && slot <= to))
      if (!owner) throw new Error(`no master serves slot ${slot}`)
      return owner.port
    },
    async replicaOf(masterPort) {
      const nodes = await clusterNodes()
      const master = nodes.find((n) => n.port === masterPort)
      return nodes.find((n) => !n.failed && n.masterId !== undefined && n.masterId === master?.id)?.port
    },
    untilHealthy: (what = 'the redis cluster to be healthy') => waitUntil(healthy, what),
    close,
  }
  try {
    await cluster.untilHealthy('the new redis cluster to be healthy')
  } catch (error) {
    await close()
    throw error
  }
  return cluster
}

interface ClusterNodeLine {
  readonly id: string
  readonly port: number
  readonly master: boolean
  readonly failed: boolean
  readonly masterId: string | undefined
  readonly slots: readonly (readonly [number, number])[]
  readonly slotCount: number
}

/** CLUSTER NODES: `<id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot> ...` */
function parseClusterNodes(text: string): ClusterNodeLine[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [id, address, flags, masterId, , , , , ...slotFields] = line.split(' ') as [string, string, string, string, ...string[]]
      const slots = slotFields
        .filter((field) => !field.startsWith('['))
        .map((field) => {
          const [from, to = from] = field.split('-').map(Number) as [number, number?]
          return [from, to] as const
        })
      return {
        id,
        port: Number(/:(\d+)@/.exec(address)?.[1]),
        master: flags.split(',').includes('master'),
        failed: flags.split(',').some((flag) => flag === 'fail' || flag === 'fail?'),
        masterId: masterId === '-' ? undefined : masterId,
        slots,
        slotCount: slots.reduce((sum, [from, to]) => sum + to - from + 1, 0),
      }
    })
}

function runRedisCli(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(redisCliBinary, [...args], { timeout: startupLimitMs }, (error, stdout, stderr) => {
      if (error) reject(new Error(`redis-cli ${args.join(' ')}: ${error.message}\n${stdout}${stderr}`))
      else resolve(stdout.trim())
    })
  })
}

export interface RedisSentinel {
  readonly port: number
  close(): Promise<void>
}

/** A Sentinel on a free port that monitors 127.0.0.1:masterPort under name (quorum 1). */
export async function startRedisSentinel(masterPort: number, name: string): Promise<RedisSentinel> {
  const dir = await mkdtemp(join(tmpdir(), 'fapigw-sentinel-'))
  const port = await findFreePort()
  const configFile = join(dir, 'sentinel.conf')
  await writeFile(configFile, [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor ${name} 127.0.0.1 ${masterPort} 1`, ''].join('\n'))
  const process = createManagedProcess(dir, [redisServerBinary, configFile, '--sentinel'], async () => {
    await waitUntil(async () => (await redisCli(port, 'sentinel', 'get-master-addr-by-name', name)).includes(String(masterPort)))
  })
  await process.start()
  return { port, close: process.close }
}

export interface ManagedProcess {
  start(): Promise<void>
  stop(): Promise<void>
  signal(signal: NodeJS.Signals): void
  close(): Promise<void>
}

export function createManagedProcess(dir: string, command: readonly string[], untilReady: () => Promise<void>): ManagedProcess {
  let child: ChildProcess | undefined
  let output = ''

  const killNow = (): void => {
    child?.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    killNow()
    removeExitHooks()
    globalThis.process.kill(globalThis.process.pid, signal)
  }
  const removeExitHooks = (): void => {
    globalThis.process.off('exit', killNow)
    globalThis.process.off('SIGINT', onSignal)
    globalThis.process.off('SIGTERM', onSignal)
  }
  globalThis.process.on('exit', killNow)
  globalThis.process.on('SIGINT', onSignal)
  globalThis.process.on('SIGTERM', onSignal)

  async function start(): Promise<void> {
    if (child) throw new Error('already running')
    output = ''
    const [binary, ...args] = command as [string, ...string[]]
    const started = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    child = started
    const collect = (chunk: Buffer): void => {
      if (output.length < 20_000) output += chunk.toString()
    }
    started.stdout?.on('data', collect)
    started.stderr?.on('data', collect)
    started.once('exit', () => {
      if (child === started) child = undefined
    })
    const exited = new Promise<never>((_, reject) => {
      started.once('exit', (code, signal) => reject(new Error(`${binary} exited (${code ?? signal}) during start-up:\n${output}`)))
      started.once('error', reject)
    })
    exited.catch(() => {})
    try {
      await Promise.race([untilReady(), exited])
    } catch (error) {
      await stop()
      throw error
    }
  }

  async function stop(): Promise<void> {
    const running = child
    if (!running) return
    if (running.exitCode === null && running.signalCode === null) {
      const exited = new Promise((resolve) => running.once('exit', resolve))
      running.kill('SIGKILL')
      await exited
    }
    if (child === running) child = undefined
  }

  async function close(): Promise<void> {
    await stop()
    removeExitHooks()
    await rm(dir, { recursive: true, force: true })
  }

  function signal(name: NodeJS.Signals): void {
    if (!child) throw new Error('not running')
    child.kill(name)
  }

  return { start, stop, signal, close }
}

/**
 * Polls condition until it holds; errors count as "not yet". Gives up after 10 s so a broken
 * test fails instead of keeping the process alive (a hang guard, not a timing assertion).
 */
export async function waitUntil(condition: () => boolean | Promise<boolean>, what = 'redis to become ready'): Promise<void> {
  const giveUpAt = performance.now() + startupLimitMs
  for (;;) {
    try {
      if (await condition()) return
    } catch {
      // Not yet.
    }
    if (performance.now() > giveUpAt) throw new Error(`gave up waiting for ${what}`)
    await delay(10)
  }
}

export interface RedisCommandWatch {
  /** The commands clients sent since the watch began or the last take(), not those a script ran; each as its arguments. */
  take(): Promise<string[][]>
  stop(): Promise<void>
}

/**
 * Records what clients send to a Redis server (MONITOR). take() sends a marker and waits for it to be
 * monitored: MONITOR reports in execution order, so everything executed before it has been seen.
 */
export async function watchRedisCommands(url: string): Promise<RedisCommandWatch> {
  const client = new Redis(url)
  const marker = new Redis(url)
  // Connected (its ready check done) before the watch begins: from then on it sends only the markers.
  await marker.ping()
  const monitor = await client.monitor()
  let seen: string[][] = []
  let waiting: { token: string; resolve: () => void } | undefined
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (args[0]?.toLowerCase() === 'echo' && waiting && args[1] === waiting.token) {
      waiting.resolve()
      return
    }
    if (source !== 'lua') seen.push(args)
  })
  let count = 0
  return {
    async take() {
      const token = `fapigw-test-marker-${++count}`
      const reached = new Promise<void>((resolve) => (waiting = { token, resolve }))
      await marker.echo(token)
      await reached
      const taken = seen
      seen = []
      return taken
    },
    async stop() {
      monitor.disconnect()
      marker.disconnect()
      client.disconnect()
    },
  }
}
