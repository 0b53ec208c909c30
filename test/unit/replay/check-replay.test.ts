import assert from 'node:assert/strict'
import { test } from 'node:test'
import { checkReplay, replayTtlMs } from '../../../src/checks/replay.ts'
import { createMemoryReplayStore } from '../../../src/replay/memory-store.ts'
import type { ReplayStore } from '../../../src/replay/store.ts'
import { revokedTokenKey } from '../../../src/tokens/revoked-tokens.ts'
import type { DpopProof } from '../../../src/types.ts'

const jktA = 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs'
const jktB = '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I'
const TOKEN_HASH = 'fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo'

function proof(overrides: Partial<DpopProof> = {}): DpopProof {
  return { jkt: jktA, jti: 'e1j3V_bKic8-LAEB', iat: 1_700_000_000, htm: 'GET', htu: 'https://rs.example/accounts', nonce: undefined, ...overrides }
}

function memoryStore(t: { after(fn: () => unknown): void }, now = () => 1_700_000_000_000): ReplayStore {
  const store = createMemoryReplayStore({ maxEntries: 100, now })
  t.after(() => store.close())
  return store
}

test('the first use of a proof passes', async (t) => {
  await checkReplay(proof(), TOKEN_HASH, memoryStore(t), 60_000)
})

test('the same proof again is refused as a replay', async (t) => {
  const store = memoryStore(t)
  await checkReplay(proof(), TOKEN_HASH, store, 60_000)
  await assert.rejects(checkReplay(proof(), TOKEN_HASH, store, 60_000), { name: 'GatewayError', code: 'GW_DPOP_REPLAY' })
})

test('the same jti under another key, or another jti under the same key, is not a replay', async (t) => {
  const store = memoryStore(t)
  await checkReplay(proof(), TOKEN_HASH, store, 60_000)
  await checkReplay(proof({ jkt: jktB }), TOKEN_HASH, store, 60_000)
  await checkReplay(proof({ jti: 'another-jti' }), TOKEN_HASH, store, 60_000)
})

test('the jti is remembered for the TTL and forgotten after it', async (t) => {
  let now = 1_700_000_000_000
  const store = memoryStore(t, () => now)
  await checkReplay(proof(), TOKEN_HASH, store, 60_000)
  now += 59_999
  await assert.rejects(checkReplay(proof(), TOKEN_HASH, store, 60_000), { code: 'GW_DPOP_REPLAY' })
  now += 1
  await checkReplay(proof(), TOKEN_HASH, store, 60_000)
})

test('the store key is scoped to the key thumbprint and holds a fixed-size hash of the jti', async () => {
  const keys: string[] = []
  const recording: ReplayStore = {
    async claim(key) {
      keys.push(key)
      return true
    },
    async claimUnlessPresent(key) {
      keys.push(key)
      return 'claimed'
    },
    async put() {},
    async has() {
      return false
    },
    async set() {},
    async get() {
      return undefined
    },
    async delete() {},
    async claimAndRead(key) {
      keys.push(key)
      return { outcome: 'claimed', value: '{}' }
    },
    async readUnlessPresent() {
      return { outcome: 'read', value: undefined }
    },
    ready: () => true,
    async close() {},
  }
  await checkReplay(proof({ jti: 'j'.repeat(1_000_000) }), TOKEN_HASH, recording, 60_000)
  await checkReplay(proof({ jti: 'short' }), TOKEN_HASH, recording, 60_000)
  for (const key of keys) assert.match(key, new RegExp(`^dpop:\\{${TOKEN_HASH}\\}:${jktA}:[A-Za-z0-9_-]{43}$`))
  assert.notEqual(keys[0], keys[1])
})

test('a store that cannot answer fails closed with 503, whatever it throws', async (t) => {
  const unavailable = createMemoryReplayStore({ maxEntries: 1, now: () => 0 })
  await unavailable.close()
  await assert.rejects(checkReplay(proof(), TOKEN_HASH, unavailable, 60_000), { code: 'GW_REPLAY_STORE_UNAVAILABLE' })

  const broken: ReplayStore = {
    ...memoryStore(t),
    claimUnlessPresent: async () => {
      throw new TypeError('bug in a store')
    },
  }
  await assert.rejects(checkReplay(proof(), TOKEN_HASH, broken, 60_000), { name: 'GatewayError', code: 'GW_REPLAY_STORE_UNAVAILABLE' })
})

test('a token on the revoked-token list is refused in the same round trip, before its proof is judged a replay', async (t) => {
  const store = memoryStore(t)
  await store.put(revokedTokenKey(TOKEN_HASH), 60_000)
  await assert.rejects(checkReplay(proof(), TOKEN_HASH, store, 60_000), { name: 'GatewayError', code: 'GW_TOKEN_REVOKED' })
  await assert.rejects(checkReplay(proof(), TOKEN_HASH, store, 60_000), { code: 'GW_TOKEN_REVOKED' })
  await checkReplay(proof(), 'Kz8mXK1EalYznwHLC1fBAo4LjpzsPENeOgxUaaaaaaa', store, 60_000)
})

test('replayTtlMs covers the whole iat acceptance window plus skew on both sides', () => {
  // iat may be up to maxAge+skew in the past or maxFuture+skew in the future: one proof stays
  // acceptable for maxAge + maxFuture + 2*skew seconds, plus 1 s for whole-second iat.
  assert.equal(replayTtlMs(60, 10, 5), (60 + 10 + 2 * 5 + 1) * 1000)
  assert.equal(replayTtlMs(300, 0, 0), 301_000)
  assert.throws(() => replayTtlMs(-1, 0, 0), RangeError)
  assert.throws(() => replayTtlMs(60, Number.NaN, 0), RangeError)
})
