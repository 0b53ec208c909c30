import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { Socket } from 'node:net'
import { after, before, test } from 'node:test'
import { Redis } from 'ioredis'
import { checkReplay } from '../../../src/checks/replay.ts'
import { createRedisReplayStore, type RedisReplayStoreOptions } from '../../../src/replay/redis-store.ts'
import type { ReplayStore } from '../../../src/replay/store.ts'
import { createRevokedTokenList } from '../../../src/tokens/revoked-tokens.ts'
import type { DpopProof } from '../../../src/types.ts'
import { recordingLogger } from '../../support/recording-logger.ts'
import { redisCli, startRedisServer, waitUntil, watchRedisCommands, type RedisServer } from '../../support/redis.ts'

const unavailable = { name: 'GatewayError', code: 'GW_REPLAY_STORE_UNAVAILABLE' }

let redis: RedisServer
let inspector: Redis
const stores: ReplayStore[] = []

before(async () => {
  redis = await startRedisServer()
  inspector = new Redis(redis.url, { lazyConnect: true })
  await inspector.connect()
})

after(async () => {
  await Promise.all(stores.map((store) => store.close()))
  inspector?.disconnect()
  await redis?.close()
})

function open(options: Partial<RedisReplayStoreOptions> = {}, url = redis.url): ReplayStore {
  const store = createRedisReplayStore({ mode: 'single', url, maxReconnectDelayMs: 100, ...options } as RedisReplayStoreOptions)
  stores.push(store)
  return store
}

function untilReady(store: ReplayStore, wanted = true): Promise<void> {
  return waitUntil(() => store.ready() === wanted, `ready() to be ${wanted}`)
}

function proof(jti: string, jkt = 'jkt-0123456789abcdefghijklmnopqrstuvwxyzABCD'): DpopProof {
  return { jkt, jti, iat: 1_700_000_000, htm: 'GET', htu: 'https://rs.example/accounts', nonce: undefined }
}

test('claim succeeds once, then reports the key as used', async () => {
  const store = open()
  await untilReady(store)
  assert.equal(await store.claim('once', 60_000), true)
  assert.equal(await store.claim('once', 60_000), false)
})

test('claim stores the key under the prefix with its TTL (SET NX PX)', async () => {
  const store = open()
  await untilReady(store)
  assert.equal(await store.claim('ttl-check', 30_000), true)
  const pttl = await inspector.pttl('fapigw:ttl-check')
  assert.ok(pttl > 0 && pttl <= 30_000, `PTTL ${pttl}`)
  assert.equal(await inspector.exists('ttl-check'), 0)

  const custom = open({ prefix: 'other:' })
  await untilReady(custom)
  assert.equal(await custom.claim('ttl-check', 30_000), true, 'a different prefix is a different namespace')
  assert.equal(await inspector.exists('other:ttl-check'), 1)
})

test('a claim expires with its TTL', async () => {
  const store = open()
  await untilReady(store)
  assert.equal(await store.claim('short-lived', 1), true)
  await waitUntil(async () => (await inspector.exists('fapigw:short-lived')) === 0, 'the key to expire')
  assert.equal(await store.claim('short-lived', 60_000), true)
})

test('200 concurrent claims of one key from two gateway instances: exactly one wins', async () => {
  const first = open()
  const second = open()
  await Promise.all([untilReady(first), untilReady(second)])
  const claims = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? first : second).claim('contended', 60_000))
  const results = await Promise.all(claims)
  assert.equal(results.filter((won) => won).length, 1)
})

test('put is idempotent, sets the TTL, and has sees it', async () => {
  const store = open()
  await untilReady(store)
  assert.equal(await store.has('put-key'), false)
  await store.put('put-key', 20_000)
  await store.put('put-key', 20_000)
  assert.equal(await store.has('put-key'), true)
  const pttl = await inspector.pttl('fapigw:put-key')
  assert.ok(pttl > 0 && pttl <= 20_000, `PTTL ${pttl}`)
})

const TOKEN_HASH = 'fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo'

test('checkReplay against Redis: first use passes, the replay is refused, a huge jti is stored hashed', async () => {
  const store = open()
  await untilReady(store)
  const hugeJti = 'x'.repeat(1_000_000)
  await checkReplay(proof(hugeJti), TOKEN_HASH, store, 60_000)
  await assert.rejects(checkReplay(proof(hugeJti), TOKEN_HASH, store, 60_000), { code: 'GW_DPOP_REPLAY' })

  const keys = await inspector.keys('fapigw:dpop:*')
  const expected = `fapigw:dpop:{${TOKEN_HASH}}:${proof('').jkt}:${createHash('sha256').update(hugeJti).digest('base64url')}`
  assert.ok(keys.includes(expected))
  for (const key of keys) assert.ok(key.length < 200, `key of ${key.length} characters`)
})

test('claimUnlessPresent answers claimed, taken and blocked in one round trip', async () => {
  const store = open()
  await untilReady(store)
  assert.equal(await store.claimUnlessPresent('dpop:{t1}:a', 60_000, 'revoked:{t1}'), 'claimed')
  assert.equal(await store.claimUnlessPresent('dpop:{t1}:a', 60_000, 'revoked:{t1}'), 'taken')
  await store.put('revoked:{t1}', 60_000)
  assert.equal(await store.claimUnlessPresent('dpop:{t1}:b', 60_000, 'revoked:{t1}'), 'blocked')
  const pttl = await inspector.pttl('fapigw:dpop:{t1}:a')
  assert.ok(pttl > 0 && pttl <= 60_000, `PTTL ${pttl}`)
})

test('set, get and delete a value with its TTL under the prefix', async () => {
  const store = open()
  await untilReady(store)
  assert.equal(await store.get('bind:{v1}'), undefined)
  await store.set('bind:{v1}', '{"a":1}', 60_000)
  assert.equal(await store.get('bind:{v1}'), '{"a":1}')
  assert.equal(await inspector.get('fapigw:bind:{v1}'), '{"a":1}')
  const pttl = await inspector.pttl('fapigw:bind:{v1}')
  assert.ok(pttl > 0 && pttl <= 60_000, `PTTL ${pttl}`)
  await store.delete('bind:{v1}')
  await store.delete('bind:{v1}')
  assert.equal(await store.get('bind:{v1}'), undefined)
})

test('claimAndRead answers blocked, absent (claiming nothing), claimed and taken with the value, in one command', async () => {
  const store = open()
  await untilReady(store)
  assert.deepEqual(await store.claimAndRead('dpop:{c1}:a', 60_000, 'revoked:{c1}', 'bind:{c1}'), { outcome: 'absent' })
  assert.equal(await inspector.exists('fapigw:dpop:{c1}:a'), 0, 'no record, no claim')
  await store.set('bind:{c1}', 'record', 60_000)
  const watch = await watchRedisCommands(redis.url)
  try {
    await watch.take()
    assert.deepEqual(await store.claimAndRead('dpop:{c1}:a', 60_000, 'revoked:{c1}', 'bind:{c1}'), { outcome: 'claimed', value: 'record' })
    assert.deepEqual(
      (await watch.take()).map(([command]) => command?.toLowerCase()),
      ['evalsha'],
      'one command (the script was loaded by the absent answer above)',
    )
  } finally {
    await watch.stop()
  }
  assert.deepEqual(await store.claimAndRead('dpop:{c1}:a', 60_000, 'revoked:{c1}', 'bind:{c1}'), { outcome: 'taken', value: 'record' })
  const pttl = await inspector.pttl('fapigw:dpop:{c1}:a')
  assert.ok(pttl > 0 && pttl <= 60_000, `PTTL ${pttl}`)
  await store.put('revoked:{c1}', 60_000)
  assert.deepEqual(await store.claimAndRead('dpop:{c1}:b', 60_000, 'revoked:{c1}', 'bind:{c1}'), { outcome: 'blocked' })
})

test('readUnlessPresent answers blocked or the value', async () => {
  const store = open()
  await untilReady(store)
  assert.deepEqual(await store.readUnlessPresent('bind:{r1}', 'revoked:{r1}'), { outcome: 'read', value: undefined })
  await store.set('bind:{r1}', 'record', 60_000)
  assert.deepEqual(await store.readUnlessPresent('bind:{r1}', 'revoked:{r1}'), { outcome: 'read', value: 'record' })
  await store.put('revoked:{r1}', 60_000)
  assert.deepEqual(await store.readUnlessPresent('bind:{r1}', 'revoked:{r1}'), { outcome: 'blocked' })
})

test('the claims and lookups of one event-loop turn reach Redis in one write, each with its own answer', async () => {
  const store = open()
  await untilReady(store)
  await store.put('revoked:{batched}', 60_000)
  const writes: number[] = []
  const write = Socket.prototype.write
  Socket.prototype.write = function (this: Socket, ...args: Parameters<Socket['write']>) {
    if (this.remotePort === redis.port) writes.push(1)
    return write.apply(this, args)
  } as Socket['write']
  let outcomes
  try {
    outcomes = await Promise.all([
      ...Array.from({ length: 40 }, (_, i) => store.claimUnlessPresent(`dpop:{batched}:${i % 20}`, 60_000, 'revoked:{other}')),
      store.claimUnlessPresent('dpop:{batched}:x', 60_000, 'revoked:{batched}'),
      store.has('revoked:{batched}'),
      store.has('revoked:{absent}'),
    ])
  } finally {
    Socket.prototype.write = write
  }
  assert.equal(writes.length, 1, 'one write for the whole turn')
  const claims = outcomes.slice(0, 40)
  assert.equal(claims.filter((outcome) => outcome === 'claimed').length, 20)
  assert.equal(claims.filter((outcome) => outcome === 'taken').length, 20)
  assert.deepEqual(outcomes.slice(40), ['blocked', true, false])

  // The next turn is a batch of its own.
  assert.equal(await store.claimUnlessPresent('dpop:{batched}:0', 60_000, 'revoked:{other}'), 'taken')
})

test('a Redis ACL user with only the commands docs/operations.md lists is enough; without EVAL the store fails closed', async () => {
  const commands = ['+eval', '+evalsha', '+exists', '+set', '+get', '+del', '+info', '+ping', '+quit']
  await redisCli(redis.port, 'acl', 'setuser', 'gateway', 'on', '>gateway-secret', 'resetkeys', '~fapigw:*', 'resetchannels', '-@all', ...commands)
  await redisCli(
    redis.port,
    'acl',
    'setuser',
    'no-scripts',
    'on',
    '>no-scripts-secret',
    'resetkeys',
    '~fapigw:*',
    'resetchannels',
    '-@all',
    ...commands.filter((c) => !c.includes('eval')),
  )
  const url = (user: string) => redis.url.replace('redis://', `redis://${user}:${user === 'gateway' ? 'gateway' : 'no-scripts'}-secret@`)

  const store = open({}, url('gateway'))
  await untilReady(store)
  assert.equal(await store.claimUnlessPresent('dpop:{acl}:a', 60_000, 'revoked:{acl}'), 'claimed')
  assert.equal(await store.claimUnlessPresent('dpop:{acl}:a', 60_000, 'revoked:{acl}'), 'taken')
  await store.put('revoked:{acl}', 60_000)
  assert.equal(await store.has('revoked:{acl}'), true)
  assert.equal(await store.claimUnlessPresent('dpop:{acl}:b', 60_000, 'revoked:{acl}'), 'blocked')
  assert.equal(await store.claim('acl-claim', 60_000), true)
  await store.set('bind:{acl2}', 'record', 60_000)
  assert.equal(await store.get('bind:{acl2}'), 'record')
  assert.deepEqual(await store.claimAndRead('dpop:{acl2}:a', 60_000, 'revoked:{acl2}', 'bind:{acl2}'), { outcome: 'claimed', value: 'record' })
  assert.deepEqual(await store.readUnlessPresent('bind:{acl2}', 'revoked:{acl2}'), { outcome: 'read', value: 'record' })
  await store.delete('bind:{acl2}')
  assert.equal(await store.get('bind:{acl2}'), undefined)

  const limited = open({}, url('no-scripts'))
  await untilReady(limited)
  await assert.rejects(limited.claimUnlessPresent('dpop:{acl}:c', 60_000, 'revoked:{acl}'), unavailable)
  assert.equal(await limited.has('revoked:{acl}'), true, 'the same user can still read')
})

test('revoked-token list on Redis', async () => {
  const store = open()
  await untilReady(store)
  const list = createRevokedTokenList(store)
  const hash = createHash('sha256').update('an access token').digest('base64url')
  assert.equal(await list.isRevoked(hash), false)
  await list.revoke(hash, 60_000)
  assert.equal(await list.isRevoked(hash), true)
  assert.equal(await inspector.exists(`fapigw:revoked:{${hash}}`), 1)
})

test('Redis down: commands fail closed and fast, ready() is false; Redis back: the same store works again', async () => {
  const server = await startRedisServer()
  const logger = recordingLogger()
  const store = open({ logger }, server.url)
  try {
    await untilReady(store)
    assert.equal(await store.claim('before-outage', 60_000), true)

    await server.stop()
    // Whether or not the client has noticed yet, nothing hangs or queues: the call settles with 503.
    await assert.rejects(store.claim('during-outage', 60_000), unavailable)
    await untilReady(store, false)
    await assert.rejects(store.claim('during-outage', 60_000), unavailable)
    await assert.rejects(store.has('during-outage'), unavailable)
    await assert.rejects(store.put('during-outage', 60_000), unavailable)
    const revoked = createRevokedTokenList(store)
    await assert.rejects(revoked.isRevoked(createHash('sha256').update('t').digest('base64url')), unavailable)

    await server.start()
    await untilReady(store)
    assert.equal(await store.claim('after-outage', 60_000), true)
    assert.equal(await store.claim('after-outage', 60_000), false)

    assert.ok(
      logger.lines.some((line) => line.level === 'warn'),
      'the outage was logged',
    )
    assert.ok(!JSON.stringify(logger.lines).includes('during-outage'), 'keys are not logged')
  } finally {
    await server.close()
  }
})

test('Redis frozen (accepts, never answers): commands time out closed, ready() turns false, then recovers', async () => {
  const server = await startRedisServer()
  const store = open({ commandTimeoutMs: 200 }, server.url)
  try {
    await untilReady(store)
    server.freeze()
    await assert.rejects(store.claim('while-frozen', 60_000), unavailable)
    await assert.rejects(store.has('while-frozen'), unavailable)
    await untilReady(store, false)
    server.thaw()
    await untilReady(store)
    assert.equal(await store.claim('after-thaw', 60_000), true)
  } finally {
    server.thaw()
    await server.close()
  }
})

test('a store created while Redis is unreachable is not ready, refuses, then recovers', async () => {
  const server = await startRedisServer()
  await server.stop()
  const store = open({}, server.url)
  try {
    assert.equal(store.ready(), false)
    await assert.rejects(store.claim('k', 60_000), unavailable)
    await server.start()
    await untilReady(store)
    assert.equal(await store.claim('k', 60_000), true)
  } finally {
    await server.close()
  }
})

test('credentials: a password-protected Redis accepts the store only with the password in the URL', async () => {
  const store = open()
  await untilReady(store)
  const password = 'test-secret-password'
  await inspector.config('SET', 'requirepass', password)
  try {
    const logger = recordingLogger()
    const wrong = open({ logger }, `redis://:wrong@127.0.0.1:${redis.port}`)
    const right = open({}, `redis://:${password}@127.0.0.1:${redis.port}`)
    await untilReady(right)
    assert.equal(await right.claim('with-password', 60_000), true)
    assert.equal(wrong.ready(), false)
    await assert.rejects(wrong.claim('with-wrong-password', 60_000), unavailable)
    assert.ok(!JSON.stringify(logger.lines).includes(password))
  } finally {
    await inspector.auth(password)
    await inspector.config('SET', 'requirepass', '')
  }
})

test('a closed store is not ready and fails closed', async () => {
  const store = open()
  await untilReady(store)
  await store.close()
  assert.equal(store.ready(), false)
  await assert.rejects(store.claim('after-close', 60_000), unavailable)
  await store.close()
})

test('invalid TTLs are wiring bugs, not store outages', async () => {
  const store = open()
  await untilReady(store)
  await assert.rejects(store.claim('k', 0), { code: 'GW_INTERNAL' })
  await assert.rejects(store.put('k', Number.NaN), { code: 'GW_INTERNAL' })
})
