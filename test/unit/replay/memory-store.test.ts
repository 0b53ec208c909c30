import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createMemoryReplayStore } from '../../../src/replay/memory-store.ts'

function clock(start = 1_700_000_000_000) {
  let now = start
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms
    },
  }
}

const unavailable = { name: 'GatewayError', code: 'GW_REPLAY_STORE_UNAVAILABLE' }

test('claim succeeds once, then reports the key as used', async (t) => {
  const time = clock()
  const store = createMemoryReplayStore({ maxEntries: 10, now: time.now })
  t.after(() => store.close())
  assert.equal(await store.claim('a', 1000), true)
  assert.equal(await store.claim('a', 1000), false)
  assert.equal(await store.claim('b', 1000), true)
})

test('a claim expires after its TTL and not before', async (t) => {
  const time = clock()
  const store = createMemoryReplayStore({ maxEntries: 10, now: time.now })
  t.after(() => store.close())
  assert.equal(await store.claim('a', 1000), true)
  time.advance(999)
  assert.equal(await store.claim('a', 1000), false)
  assert.equal(await store.has('a'), true)
  time.advance(1)
  assert.equal(await store.has('a'), false)
  assert.equal(await store.claim('a', 1000), true)
})

test('concurrent claims of one key: exactly one wins', async (t) => {
  const store = createMemoryReplayStore({ maxEntries: 1000, now: clock().now })
  t.after(() => store.close())
  const results = await Promise.all(Array.from({ length: 200 }, () => store.claim('same', 1000)))
  assert.equal(results.filter(Boolean).length, 1)
})

test('when full of live keys it refuses new keys instead of evicting one', async (t) => {
  const time = clock()
  const store = createMemoryReplayStore({ maxEntries: 3, now: time.now })
  t.after(() => store.close())
  for (const key of ['a', 'b', 'c']) assert.equal(await store.claim(key, 1000), true)
  await assert.rejects(store.claim('d', 1000), unavailable)
  await assert.rejects(store.put('d', 1000), unavailable)
  // The live keys are all still remembered: none was evicted to make room.
  for (const key of ['a', 'b', 'c']) assert.equal(await store.claim(key, 1000), false)
})

test('when full, expired keys are dropped to make room', async (t) => {
  const time = clock()
  const store = createMemoryReplayStore({ maxEntries: 3, now: time.now })
  t.after(() => store.close())
  assert.equal(await store.claim('short', 100), true)
  assert.equal(await store.claim('long-1', 10_000), true)
  assert.equal(await store.claim('long-2', 10_000), true)
  await assert.rejects(store.claim('new', 1000), unavailable)
  time.advance(100)
  assert.equal(await store.claim('new', 1000), true)
  assert.equal(await store.claim('long-1', 10_000), false)
  assert.equal(await store.claim('long-2', 10_000), false)
  await assert.rejects(store.claim('another', 1000), unavailable)
})

test('put adds a key for its TTL, is idempotent, and has sees it', async (t) => {
  const time = clock()
  const store = createMemoryReplayStore({ maxEntries: 2, now: time.now })
  t.after(() => store.close())
  assert.equal(await store.has('revoked'), false)
  await store.put('revoked', 500)
  await store.put('revoked', 500)
  assert.equal(await store.has('revoked'), true)
  assert.equal(await store.claim('revoked', 500), false)
  await store.put('other', 500)
  await store.put('revoked', 500) // re-adding an existing key needs no extra room
  time.advance(500)
  assert.equal(await store.has('revoked'), false)
})

test('invalid TTLs are refused as wiring bugs', async (t) => {
  const store = createMemoryReplayStore({ maxEntries: 2, now: clock().now })
  t.after(() => store.close())
  for (const ttl of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    await assert.rejects(store.claim('a', ttl), { code: 'GW_INTERNAL' })
  }
  assert.throws(() => createMemoryReplayStore({ maxEntries: 0, now: Date.now }), RangeError)
})

test('ready until closed; a closed store fails closed', async () => {
  const store = createMemoryReplayStore({ maxEntries: 2, now: clock().now })
  assert.equal(store.ready(), true)
  await store.close()
  assert.equal(store.ready(), false)
  await assert.rejects(store.claim('a', 1000), unavailable)
  await assert.rejects(store.has('a'), unavailable)
})

test('a periodic sweep runs in the background without any store call', async () => {
  const time = clock()
  let swept: () => void = () => {}
  const sweepRan = new Promise<void>((resolve) => {
    swept = resolve
  })
  let calling = false
  const store = createMemoryReplayStore({
    maxEntries: 2,
    sweepIntervalMs: 5,
    now: () => {
      if (!calling) swept()
      return time.now()
    },
  })
  calling = true
  await store.claim('a', 100)
  calling = false
  await sweepRan
  await store.close() // the file finishing proves the timer is unref'd or cleared
})

test('set, get and delete: a value with a TTL', async (t) => {
  const time = clock()
  const store = createMemoryReplayStore({ maxEntries: 10, now: time.now })
  t.after(() => store.close())
  assert.equal(await store.get('bind:{t}'), undefined)
  await store.set('bind:{t}', 'first', 1000)
  await store.set('bind:{t}', 'second', 1000)
  assert.equal(await store.get('bind:{t}'), 'second')
  time.advance(999)
  assert.equal(await store.get('bind:{t}'), 'second')
  time.advance(1)
  assert.equal(await store.get('bind:{t}'), undefined)
  await store.set('bind:{t}', 'third', 1000)
  await store.delete('bind:{t}')
  await store.delete('bind:{t}')
  assert.equal(await store.get('bind:{t}'), undefined)
})

test('claimAndRead: blocked, absent (nothing claimed), claimed and taken with the value', async (t) => {
  const store = createMemoryReplayStore({ maxEntries: 10, now: clock().now })
  t.after(() => store.close())
  assert.deepEqual(await store.claimAndRead('dpop:{t}:a', 1000, 'revoked:{t}', 'bind:{t}'), { outcome: 'absent' })
  assert.equal(await store.has('dpop:{t}:a'), false, 'no record, no claim')
  await store.set('bind:{t}', 'record', 5000)
  assert.deepEqual(await store.claimAndRead('dpop:{t}:a', 1000, 'revoked:{t}', 'bind:{t}'), { outcome: 'claimed', value: 'record' })
  assert.deepEqual(await store.claimAndRead('dpop:{t}:a', 1000, 'revoked:{t}', 'bind:{t}'), { outcome: 'taken', value: 'record' })
  await store.put('revoked:{t}', 1000)
  assert.deepEqual(await store.claimAndRead('dpop:{t}:b', 1000, 'revoked:{t}', 'bind:{t}'), { outcome: 'blocked' })
})

test('readUnlessPresent: blocked, or the value (undefined when absent)', async (t) => {
  const store = createMemoryReplayStore({ maxEntries: 10, now: clock().now })
  t.after(() => store.close())
  assert.deepEqual(await store.readUnlessPresent('bind:{t}', 'revoked:{t}'), { outcome: 'read', value: undefined })
  await store.set('bind:{t}', 'record', 5000)
  assert.deepEqual(await store.readUnlessPresent('bind:{t}', 'revoked:{t}'), { outcome: 'read', value: 'record' })
  await store.put('revoked:{t}', 1000)
  assert.deepEqual(await store.readUnlessPresent('bind:{t}', 'revoked:{t}'), { outcome: 'blocked' })
})

test('values count against maxEntries: a full store refuses a new one, closed store fails closed', async (t) => {
  const store = createMemoryReplayStore({ maxEntries: 1, now: clock().now })
  await store.set('a', 'v', 1000)
  await assert.rejects(store.set('b', 'v', 1000), unavailable)
  await store.set('a', 'replaced', 1000)
  assert.equal(await store.get('a'), 'replaced')
  await store.close()
  await assert.rejects(store.get('a'), unavailable)
  await assert.rejects(store.claimAndRead('x', 1000, 'y', 'a'), unavailable)
  await assert.rejects(store.readUnlessPresent('a', 'y'), unavailable)
  t.diagnostic('closed')
})
