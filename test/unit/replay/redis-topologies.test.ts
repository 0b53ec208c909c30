import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createHash } from 'node:crypto'
import { Redis } from 'ioredis'
import { bindingKey, createBindingRegistry, type BindingRecord } from '../../../src/tokens/binding-registry.ts'
import { revokedTokenKey } from '../../../src/tokens/revoked-tokens.ts'
import { createRedisReplayStore } from '../../../src/replay/redis-store.ts'
import type { ReplayStore } from '../../../src/replay/store.ts'
import { startRedisCluster, startRedisSentinel, startRedisServer, waitUntil } from '../../support/redis.ts'

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

test('cluster of three masters: the binding record, the revoked entry and the jti claims of one token share a slot', async (t) => {
  const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 0 })
  t.after(() => cluster.close())
  const store = createRedisReplayStore({ mode: 'cluster', nodes: [...cluster.addresses], maxReconnectDelayMs: 100 })
  t.after(() => store.close())
  await untilReady(store)
  const registry = createBindingRegistry(store)
  const hashes = ['a', 'b', 'c', 'd', 'e', 'f'].map((seed) => createHash('sha256').update(seed).digest('base64url'))
  const masters = new Set(await Promise.all(hashes.map((hash) => cluster.masterFor(bindingKey(hash)))))
  assert.ok(masters.size > 1, 'the tokens spread over several masters')
  for (const hash of hashes) {
    const record: BindingRecord = {
      kind: 'access_token',
      issuerName: 'legacy',
      clientId: 'partner',
      legacyClientId: 'legacy-client',
      jkt: hash,
      scope: 'accounts',
      issuedAt: 1_700_000_000,
      expiresAt: 1_700_000_600,
    }
    await registry.record(hash, record, 60_000)
    assert.deepEqual(await registry.lookup(hash), record)
    const claimKey = `dpop:{${hash}}:${hash}:jti`
    const claimed = await store.claimAndRead(claimKey, 60_000, revokedTokenKey(hash), bindingKey(hash))
    assert.equal(claimed.outcome, 'claimed')
    assert.deepEqual(JSON.parse((claimed as { value: string }).value), record)
    assert.equal((await store.claimAndRead(claimKey, 60_000, revokedTokenKey(hash), bindingKey(hash))).outcome, 'taken')
    assert.equal((await store.readUnlessPresent(bindingKey(hash), revokedTokenKey(hash))).outcome, 'read')
    await store.put(revokedTokenKey(hash), 60_000)
    assert.deepEqual(await store.readUnlessPresent(bindingKey(hash), revokedTokenKey(hash)), { outcome: 'blocked' })
    await registry.remove(hash)
    assert.equal(await registry.lookup(hash), undefined)
  }
  // Keys in different slots are refused by the cluster: the hash tag is what makes the scripts work.
  const [first, second] = hashes as [string, string]
  await assert.rejects(store.claimAndRead(`dpop:{${first}}:x`, 60_000, revokedTokenKey(first), bindingKey(second)), unavailable)
})
