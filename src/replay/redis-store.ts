import { Redis, type ChainableCommander } from 'ioredis'
import { GatewayError, refuse } from '../errors.ts'
import type { Logger } from '../types.ts'
import { connectRedis, type RedisClientOptions } from './redis-client.ts'
import { wholeTtlMs, type ClaimAndReadOutcome, type ReadOutcome, type ReplayStore } from './store.ts'

export type { RedisNodeAddress, RedisTopology } from './redis-client.ts'

export type RedisReplayStoreOptions = RedisClientOptions & {
  /** Prepended to every key. Default 'fapigw:'. */
  readonly prefix?: string
  readonly logger?: Logger
}

/**
 * KEYS[1] blocks the claim (a revoked token), KEYS[2] is claimed for ARGV[1] ms.
 * 0 claimed, 1 taken, 2 blocked. One command, atomic on the server.
 */
const CLAIM_UNLESS_PRESENT_LUA = `if redis.call('EXISTS', KEYS[1]) == 1 then return 2 end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return 0 end
return 1`
const CLAIM_OUTCOMES = ['claimed', 'taken', 'blocked'] as const

/** KEYS[1] set for ARGV[1] ms and announced on channel ARGV[2] as `<ARGV[3]> <ARGV[1]>`: both or neither. */
const PUT_AND_PUBLISH_LUA = `redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3] .. ' ' .. ARGV[1])
return 1`

/**
 * KEYS[1] blocks (a revoked token), KEYS[2] is read (a binding record), KEYS[3] is claimed for ARGV[1] ms
 * only when KEYS[2] is present, so that tokens nobody recorded cannot fill the store with claims.
 * {0, value} claimed, {1, value} taken, {2} blocked, {3} absent.
 */
const CLAIM_AND_READ_LUA = `if redis.call('EXISTS', KEYS[1]) == 1 then return {2} end
local value = redis.call('GET', KEYS[2])
if not value then return {3} end
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[1]) then return {0, value} end
return {1, value}`
const CLAIM_AND_READ_OUTCOMES = ['claimed', 'taken', 'blocked', 'absent'] as const

/** KEYS[1] blocks, KEYS[2] is read: {1} blocked, {0} absent, {0, value} read. */
const READ_UNLESS_PRESENT_LUA = `if redis.call('EXISTS', KEYS[1]) == 1 then return {1} end
local value = redis.call('GET', KEYS[2])
if not value then return {0} end
return {0, value}`

type ClaimCommander = {
  claimUnlessPresent(blockingKey: string, claimKey: string, ttlMs: number): unknown
  claimAndRead(blockingKey: string, readKey: string, claimKey: string, ttlMs: number): unknown
  readUnlessPresent(blockingKey: string, readKey: string): unknown
}

/** A script's `{code, value?}` answer; anything else is refused as the store failing. */
function scriptReply(reply: unknown, codes: number): [number, string | undefined] {
  if (Array.isArray(reply) && reply.length >= 1 && reply.length <= 2) {
    const [code, value] = reply as unknown[]
    if (typeof code === 'number' && Number.isInteger(code) && code >= 0 && code < codes && (value === undefined || typeof value === 'string')) {
      return [code, value]
    }
  }
  return refuse('GW_REPLAY_STORE_UNAVAILABLE', 'redis script answered something unexpected')
}
type PublishingCommander = { putAndPublish(key: string, ttlMs: number, channel: string, announcedKey: string): Promise<unknown> }

/** One command, written either to the client itself or into a pipeline (ioredis gives both the same methods). */
type StoreCommand = (target: Redis | ChainableCommander) => unknown

interface QueuedCommand {
  readonly command: StoreCommand
  resolve(reply: unknown): void
  reject(error: Error): void
}

/**
 * The claims and lookups of every request that reaches the store during one turn of the event
 * loop go out as one pipeline: one write and, usually, one read for all of them, instead of a
 * system call each way per request. Flushed by setImmediate, i.e. at the end of the same turn.
 */
function createCommandBatch(client: Redis): (command: StoreCommand) => Promise<unknown> {
  let queue: QueuedCommand[] = []
  const failAll = (batch: readonly QueuedCommand[], error: unknown): void => {
    const failure = error instanceof Error ? error : new Error(String(error))
    for (const queued of batch) queued.reject(failure)
  }
  const flush = (): void => {
    const batch = queue
    queue = []
    try {
      if (batch.length === 1) {
        const [only] = batch as [QueuedCommand]
        ;(only.command(client) as Promise<unknown>).then(only.resolve, only.reject)
        return
      }
      const pipeline = client.pipeline()
      for (const queued of batch) queued.command(pipeline)
      pipeline
        .exec()
        .then((replies) => {
          if (!replies) throw new Error('pipeline was not executed')
          for (let i = 0; i < batch.length; i++) {
            const [error, reply] = replies[i]!
            if (error) batch[i]!.reject(error)
            else batch[i]!.resolve(reply)
          }
        })
        .catch((error: unknown) => failAll(batch, error))
    } catch (error) {
      // A flush runs outside any request: a throw here must fail its requests, not the process.
      failAll(batch, error)
    }
  }
  return (command) =>
    new Promise((resolve, reject) => {
      if (queue.length === 0) setImmediate(flush)
      queue.push({ command, resolve, reject })
    })
}

/**
 * Replay store shared by every gateway instance. claim is one `SET key 1 NX PX ttl`, atomic on
 * the server (RFC 9449 §11.1; no read-then-write). Commands never queue while Redis is away:
 * they fail at once or after commandTimeoutMs, and the client keeps reconnecting in the background.
 */
export function createRedisReplayStore(options: RedisReplayStoreOptions): ReplayStore {
  const prefix = options.prefix ?? 'fapigw:'
  const commandTimeoutMs = options.commandTimeoutMs ?? 500
  const client = connectRedis(options)
  client.defineCommand('claimUnlessPresent', { numberOfKeys: 2, lua: CLAIM_UNLESS_PRESENT_LUA })
  client.defineCommand('claimAndRead', { numberOfKeys: 3, lua: CLAIM_AND_READ_LUA })
  client.defineCommand('readUnlessPresent', { numberOfKeys: 2, lua: READ_UNLESS_PRESENT_LUA })
  client.defineCommand('putAndPublish', { numberOfKeys: 1, lua: PUT_AND_PUBLISH_LUA })
  // Cluster pipelines must stay within one slot, so there each command goes out on its own.
  const send: (command: StoreCommand) => Promise<unknown> =
    client instanceof Redis ? createCommandBatch(client) : async (command) => command(client as unknown as Redis)

  let closed = false
  const logger = options.logger
  let lastLoggedError: string | undefined
  let wasReady = false
  const logError = (error: unknown): void => {
    const message = error instanceof Error ? error.message : String(error)
    if (message === lastLoggedError) return
    lastLoggedError = message
    logger?.warn({ err: message, mode: options.mode }, 'replay store: redis error')
  }
  client.on('error', logError)
  client.on('node error', logError)
  client.on('ready', () => {
    lastLoggedError = undefined
    wasReady = true
    logger?.info({ mode: options.mode }, 'replay store: redis ready')
  })
  client.on('close', () => {
    if (!wasReady || closed) return
    wasReady = false
    logger?.warn({ mode: options.mode }, 'replay store: redis connection lost, reconnecting')
  })

  // ioredis' commandTimeout bounds a single command; a cluster redirection can chain several,
  // so only in cluster mode is the whole call bounded by a deadline of its own.
  const needsDeadline = options.mode === 'cluster'

  async function run<T>(operation: string, command: () => Promise<T>): Promise<T> {
    if (closed) refuse('GW_REPLAY_STORE_UNAVAILABLE', 'redis replay store is closed')
    let timer: NodeJS.Timeout | undefined
    try {
      if (!needsDeadline) return await command()
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${commandTimeoutMs} ms`)), commandTimeoutMs)
      })
      return await Promise.race([command(), deadline])
    } catch (error) {
      if (error instanceof GatewayError) throw error
      const message = error instanceof Error ? error.message : String(error)
      throw new GatewayError('GW_REPLAY_STORE_UNAVAILABLE', { detail: `redis ${operation}: ${message}`, cause: error })
    } finally {
      clearTimeout(timer)
    }
  }

  return {
    async claim(key, ttlMs) {
      const ttl = wholeTtlMs(ttlMs)
      return run('claim', async () => (await client.set(prefix + key, '1', 'PX', ttl, 'NX')) === 'OK')
    },
    async claimUnlessPresent(claimKey, ttlMs, blockingKey) {
      const ttl = wholeTtlMs(ttlMs)
      return run('claim', async () => {
        const outcome = await send((target) => (target as unknown as ClaimCommander).claimUnlessPresent(prefix + blockingKey, prefix + claimKey, ttl))
        return CLAIM_OUTCOMES[outcome as number] ?? refuse('GW_INTERNAL', `redis claim script answered ${String(outcome)}`)
      })
    },
    async put(key, ttlMs, announceOn) {
      const ttl = wholeTtlMs(ttlMs)
      return run('put', async () => {
        if (announceOn === undefined) await client.set(prefix + key, '1', 'PX', ttl)
        else await (client as unknown as PublishingCommander).putAndPublish(prefix + key, ttl, prefix + announceOn, key)
      })
    },
    has(key) {
      return run('has', async () => (await send((target) => target.exists(prefix + key))) === 1)
    },
    async set(key, value, ttlMs) {
      const ttl = wholeTtlMs(ttlMs)
      return run('set', async () => {
        await client.set(prefix + key, value, 'PX', ttl)
      })
    },
    get(key) {
      return run('get', async () => {
        const value = await send((target) => target.get(prefix + key))
        return typeof value === 'string' ? value : undefined
      })
    },
    delete(key) {
      return run('delete', async () => {
        await client.del(prefix + key)
      })
    },
    claimAndRead(claimKey, ttlMs, blockingKey, readKey) {
      const ttl = wholeTtlMs(ttlMs)
      return run('claim', async (): Promise<ClaimAndReadOutcome> => {
        const reply = await send((target) => (target as unknown as ClaimCommander).claimAndRead(prefix + blockingKey, prefix + readKey, prefix + claimKey, ttl))
        const [code, value] = scriptReply(reply, CLAIM_AND_READ_OUTCOMES.length)
        const outcome = CLAIM_AND_READ_OUTCOMES[code]!
        if (outcome === 'blocked' || outcome === 'absent') return { outcome }
        return { outcome, value: value ?? refuse('GW_REPLAY_STORE_UNAVAILABLE', 'redis claim script answered no value') }
      })
    },
    readUnlessPresent(readKey, blockingKey) {
      return run('read', async (): Promise<ReadOutcome> => {
        const reply = await send((target) => (target as unknown as ClaimCommander).readUnlessPresent(prefix + blockingKey, prefix + readKey))
        const [code, value] = scriptReply(reply, 2)
        return code === 1 ? { outcome: 'blocked' } : { outcome: 'read', value }
      })
    },
    ready() {
      return !closed && client.status === 'ready'
    },
    async close() {
      if (closed) return
      closed = true
      try {
        if (client.status === 'ready') await client.quit()
      } catch {
        // Already gone: disconnect below is all that is left to do.
      } finally {
        client.disconnect()
      }
    },
  }
}
