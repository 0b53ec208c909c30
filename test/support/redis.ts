// Real redis-server processes for tests: 127.0.0.1 only, no persistence, killed at test end
// and when the test process exits or is interrupted.
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
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

export interface RedisSentinel {
  readonly port: number
  close(): Promise<void>
}

/** A Sentinel on a free port that monitors 127.0.0.1:masterPort under name (quorum 1). */
export async function startRedisSentinel(masterPort: number, name: string): Promise<RedisSentinel> {
  const dir = await mkdtemp(join(tmpdir(), 'fapigw-sentinel-'))
  const port = await findFreePort()
  const configFile = join(dir, 'sentinel.conf')
  await writeFile(configFile, [
    `port ${port}`,
    'bind 127.0.0.1',
    `dir ${dir}`,
    `sentinel monitor ${name} 127.0.0.1 ${masterPort} 1`,
    '',
  ].join('\n'))
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
