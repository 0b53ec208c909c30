import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Redis } from 'ioredis'
import { createRedisReplayStore } from '../../../src/replay/redis-store.ts'
import type { ReplayStore } from '../../../src/replay/store.ts'
import { startRedisSentinel, startRedisServer, waitUntil } from '../../support/redis.ts'

const unavailable = { name: 'GatewayError', code: 'GW_REPLAY_STORE_UNAVAILABLE' }

function untilReady(store: ReplayStore, wanted = true): Promise<void> {
  return waitUntil(() => store.ready() === wanted, `ready() to be ${wanted}`)
}

test('sentinel mode: finds the master through Sentinel and claims once', async (t) => {
  const master = await startRedisServer()
  t.after(() => master.close())
  const sentinel = await startRedisSentinel(master.port, 'gateway-master')
  t.after(() => sentinel.close())

  const store = createRedisReplayStore({
    mode: 'sentinel',
    sentinels: [{ host: '127.0.0.1', port: sentinel.port }],
    name: 'gateway-master',
    maxReconnectDelayMs: 100,
  })
  t.after(() => store.close())
  await untilReady(store)
  assert.equal(await store.claim('via-sentinel', 60_000), true)
  assert.equal(await store.claim('via-sentinel', 60_000), false)

  const inspector = new Redis(master.url)
  t.after(() => inspector.disconnect())
  const pttl = await inspector.pttl('fapigw:via-sentinel')
  assert.ok(pttl > 0 && pttl <= 60_000, `PTTL ${pttl}`)
})

test('cluster mode: claims once, fails closed while the node is down, recovers without a new store', async (t) => {
  const node = await startRedisServer({ cluster: true })
  t.after(() => node.close())

  const store = createRedisReplayStore({ mode: 'cluster', nodes: [{ host: '127.0.0.1', port: node.port }], maxReconnectDelayMs: 100 })
  t.after(() => store.close())
  await untilReady(store)
  assert.equal(await store.claim('via-cluster', 60_000), true)
  assert.equal(await store.claim('via-cluster', 60_000), false)
  assert.equal(await store.claimUnlessPresent('dpop:{tok}:x', 60_000, 'revoked:{tok}'), 'claimed')
  assert.equal(await store.claimUnlessPresent('dpop:{tok}:x', 60_000, 'revoked:{tok}'), 'taken')
  await store.put('revoked:x', 60_000)
  assert.equal(await store.has('revoked:x'), true)

  await node.stop()
  await assert.rejects(store.claim('during-outage', 60_000), unavailable)
  await untilReady(store, false)
  await assert.rejects(store.claim('during-outage', 60_000), unavailable)
  await assert.rejects(store.has('revoked:x'), unavailable)

  await node.start()
  await untilReady(store)
  assert.equal(await store.claim('after-outage', 60_000), true)
})
