// The revocation mirror against a real redis-server: it answers from its copy only while a
// heartbeat proves the copy current, loads what was stored before it started, and hands every
// lookup back to Redis (which fails closed) when it cannot prove that.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { createServer, Socket, type AddressInfo } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { connectRedis } from '../../../src/replay/redis-client.ts'
import { createRedisReplayStore } from '../../../src/replay/redis-store.ts'
import type { ReplayStore } from '../../../src/replay/store.ts'
import { createRevocationMirror, type RevocationMirror, type RevocationMirrorOptions } from '../../../src/tokens/revocation-mirror.ts'
import { createRevokedTokenList, REVOCATION_CHANNEL, REVOKED_KEY_PATTERN, revokedTokenKey, type RevokedTokenList } from '../../../src/tokens/revoked-tokens.ts'
import { recordingLogger } from '../../support/recording-logger.ts'
import { redisCli, startRedisServer, waitUntil, type RedisServer } from '../../support/redis.ts'

const PREFIX = 'fapigw:'
const unavailable = { name: 'GatewayError', code: 'GW_REPLAY_STORE_UNAVAILABLE' }
let counter = 0
const newHash = () => createHash('sha256').update(`token ${counter++} ${Math.random()}`).digest('base64url')

let redis: RedisServer
const closers: (() => Promise<unknown>)[] = []
before(async () => {
  redis = await startRedisServer()
})
after(async () => {
  await Promise.all(closers.map((close) => close()))
  await redis?.close()
})

async function store(url = redis.url): Promise<ReplayStore> {
  const opened = createRedisReplayStore({ mode: 'single', url, prefix: PREFIX, maxReconnectDelayMs: 100, commandTimeoutMs: 300 })
  closers.push(() => opened.close())
  await waitUntil(() => opened.ready(), 'the store to connect')
  return opened
}

function mirror(options: Partial<RevocationMirrorOptions> & { url?: string; username?: string; password?: string } = {}): RevocationMirror {
  const { url = redis.url, ...rest } = options
  const created = createRevocationMirror({
    connect: () => connectRedis({ mode: 'single', url, maxReconnectDelayMs: 100, commandTimeoutMs: 300 }) as Redis,
    prefix: PREFIX,
    channel: REVOCATION_CHANNEL,
    keyPattern: REVOKED_KEY_PATTERN,
    heartbeatMs: 25,
    // Roomy, so that a busy test machine does not make the copy stale in the middle of a test.
    maxStalenessMs: 1000,
    maxEntries: 1000,
    ...rest,
  })
  closers.push(() => created.close())
  return created
}

/** Another instance's admin endpoint: stores and announces, keeps no mirror. */
async function announcer(): Promise<RevokedTokenList> {
  return createRevokedTokenList(await store(), { announce: true })
}

async function existsCalls(): Promise<number> {
  const stats = await redisCli(redis.port, 'info', 'commandstats')
  return Number(/cmdstat_exists:calls=(\d+)/.exec(stats)?.[1] ?? 0)
}

const current = (m: RevocationMirror, wanted = true) => waitUntil(() => m.current() === wanted, `the mirror to be ${wanted ? 'current' : 'stale'}`)

describe('revocation mirror', () => {
  it('answers from its copy without asking Redis: a revocation announced by another instance is refused, others pass', async () => {
    const local = mirror()
    const list = createRevokedTokenList(await store(), { announce: true, mirror: local })
    await current(local)
    const revoked = newHash()
    await (await announcer()).revoke(revoked, 60_000)
    await waitUntil(() => local.lookup(revokedTokenKey(revoked)) === true, 'the announcement to arrive')

    const asked = await existsCalls()
    assert.equal(await list.isRevoked(revoked), true)
    assert.equal(await list.isRevoked(newHash()), false)
    assert.equal(await existsCalls(), asked, 'no EXISTS reached Redis')
    assert.ok(local.stats().hits >= 2)
  })

  it('loads what was stored before it started, announced or not, with its TTL', async () => {
    const announced = newHash()
    await (await announcer()).revoke(announced, 60_000)
    const written = newHash()
    await redisCli(redis.port, 'set', PREFIX + revokedTokenKey(written), '1', 'px', '60000')
    const local = mirror()
    await current(local)
    assert.equal(local.lookup(revokedTokenKey(announced)), true)
    assert.equal(local.lookup(revokedTokenKey(written)), true)
    assert.equal(local.lookup(revokedTokenKey(newHash())), false)
  })

  it("knows this instance's own revocations at once, and forgets entries when their TTL ends", async () => {
    const local = mirror()
    const list = createRevokedTokenList(await store(), { announce: true, mirror: local })
    await current(local)
    const soon = newHash()
    await list.revoke(soon, 150)
    assert.equal(local.lookup(revokedTokenKey(soon)), true)
    await delay(250)
    assert.equal(local.lookup(revokedTokenKey(soon)), false)
    assert.equal(await redisCli(redis.port, 'exists', PREFIX + revokedTokenKey(soon)), '0', 'Redis expired it too')
  })

  it('a revocation stored while the subscription was cut is found by the reload after it', async () => {
    const local = mirror()
    await current(local)
    // Stored without an announcement, as if published while the mirror was not listening.
    const missed = newHash()
    await redisCli(redis.port, 'set', PREFIX + revokedTokenKey(missed), '1', 'px', '60000')
    await delay(100)
    assert.equal(local.lookup(revokedTokenKey(missed)), false, 'nothing announced it')
    await redisCli(redis.port, 'client', 'kill', 'type', 'pubsub')
    await waitUntil(() => local.lookup(revokedTokenKey(missed)) === true, 'the reload after resubscribing')
  })

  it('while Redis hangs, heartbeats stop coming back: the copy goes stale and lookups go to Redis, which fails closed', async () => {
    const local = mirror()
    const list = createRevokedTokenList(await store(), { announce: true, mirror: local })
    await current(local)
    assert.equal(await list.isRevoked(newHash()), false)
    redis.freeze()
    try {
      await current(local, false)
      await assert.rejects(list.isRevoked(newHash()), unavailable)
      assert.equal(local.lookup(revokedTokenKey(newHash())), undefined)
    } finally {
      redis.thaw()
    }
    await current(local)
    assert.equal(await list.isRevoked(newHash()), false)
  })

  it('a subscription that goes silent without its socket closing is reconnected, and the copy is stale meanwhile', async () => {
    // A TCP relay in front of Redis for the subscriber (the mirror's first connection) that can
    // stop passing Redis's data to the connections it holds, like a half-open connection.
    const relayed = new Set<{ silent: boolean }>()
    const relay = createServer((client) => {
      const state = { silent: false }
      relayed.add(state)
      const server = new Socket().connect(redis.port, '127.0.0.1')
      client.on('data', (chunk) => server.write(chunk))
      server.on('data', (chunk) => void (state.silent || client.write(chunk)))
      const end = () => {
        client.destroy()
        server.destroy()
      }
      client.on('close', end).on('error', end)
      server.on('close', end).on('error', end)
    })
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
    closers.push(() => new Promise((resolve) => relay.close(resolve)))
    const relayUrl = `redis://127.0.0.1:${(relay.address() as AddressInfo).port}`
    let connections = 0
    const logger = recordingLogger()
    const local = createRevocationMirror({
      connect: () =>
        connectRedis({ mode: 'single', url: connections++ === 0 ? relayUrl : redis.url, maxReconnectDelayMs: 100, commandTimeoutMs: 300 }) as Redis,
      prefix: PREFIX,
      channel: REVOCATION_CHANNEL,
      keyPattern: REVOKED_KEY_PATTERN,
      heartbeatMs: 25,
      maxStalenessMs: 200,
      maxEntries: 1000,
      logger,
    })
    closers.push(() => local.close())
    await current(local)
    for (const state of relayed) state.silent = true
    await current(local, false)
    await current(local)
    assert.ok(
      logger.lines.some((l) => l.level === 'warn' && l.msg?.includes('heartbeats stopped coming back')),
      JSON.stringify(logger.lines),
    )
  })

  it('past maxEntries it stops answering rather than grow, and says so', async () => {
    const logger = recordingLogger()
    // A prefix of its own: the revocations the other tests left in Redis would overflow it at once.
    const local = mirror({ maxEntries: 3, logger, prefix: 'small:' })
    await current(local)
    for (let i = 0; i < 4; i++) local.add(revokedTokenKey(newHash()), 60_000)
    assert.equal(local.current(), false)
    assert.equal(local.lookup(revokedTokenKey(newHash())), undefined)
    assert.ok(logger.lines.some((l) => l.level === 'error' && l.msg?.includes('maxEntries')))
  })

  it('a Redis ACL user with the commands and channels docs/operations.md lists is enough', async () => {
    await redisCli(
      redis.port,
      'acl',
      'setuser',
      'mirror',
      'on',
      '>mirror-secret',
      'resetkeys',
      `~${PREFIX}*`,
      'resetchannels',
      `&${PREFIX}*`,
      '-@all',
      '+subscribe',
      '+publish',
      '+scan',
      '+pttl',
      '+info',
      '+ping',
      '+quit',
      '+eval',
      '+evalsha',
      '+exists',
      '+set',
    )
    const url = `redis://mirror:mirror-secret@127.0.0.1:${redis.port}`
    const local = mirror({ url })
    const list = createRevokedTokenList(await store(url), { announce: true, mirror: local })
    await current(local)
    const revoked = newHash()
    await list.revoke(revoked, 60_000)
    assert.equal(await list.isRevoked(revoked), true)
    const other = mirror({ url })
    await current(other)
    assert.equal(other.lookup(revokedTokenKey(revoked)), true)
  })
})
