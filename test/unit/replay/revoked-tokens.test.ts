import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { createMemoryReplayStore } from '../../../src/replay/memory-store.ts'
import { createRevokedTokenList } from '../../../src/tokens/revoked-tokens.ts'

const tokenHash = (token: string): string => createHash('sha256').update(token).digest('base64url')

test('a revoked token is reported revoked; others are not', async (t) => {
  const store = createMemoryReplayStore({ maxEntries: 10, now: () => 1_000 })
  t.after(() => store.close())
  const list = createRevokedTokenList(store)
  await list.revoke(tokenHash('revoked token'), 60_000)
  await list.revoke(tokenHash('revoked token'), 60_000)
  assert.equal(await list.isRevoked(tokenHash('revoked token')), true)
  assert.equal(await list.isRevoked(tokenHash('good token')), false)
  assert.equal(await store.has(`revoked:{${tokenHash('revoked token')}}`), true)
})

test('a revocation lasts for its TTL', async (t) => {
  let now = 1_000
  const store = createMemoryReplayStore({ maxEntries: 10, now: () => now })
  t.after(() => store.close())
  const list = createRevokedTokenList(store)
  await list.revoke(tokenHash('t'), 5_000)
  now += 4_999
  assert.equal(await list.isRevoked(tokenHash('t')), true)
  now += 1
  assert.equal(await list.isRevoked(tokenHash('t')), false)
})

test('revocation keys and DPoP replay keys do not collide', async (t) => {
  const store = createMemoryReplayStore({ maxEntries: 10, now: () => 1_000 })
  t.after(() => store.close())
  const hash = tokenHash('t')
  await store.put(`dpop:x:${hash}`, 60_000)
  assert.equal(await createRevokedTokenList(store).isRevoked(hash), false)
})

test('an unreadable list fails closed', async () => {
  const store = createMemoryReplayStore({ maxEntries: 10, now: () => 1_000 })
  await store.close()
  await assert.rejects(createRevokedTokenList(store).isRevoked(tokenHash('t')), { code: 'GW_REPLAY_STORE_UNAVAILABLE' })
})

test('only base64url SHA-256 hashes are accepted, never raw tokens', async (t) => {
  const store = createMemoryReplayStore({ maxEntries: 10, now: () => 1_000 })
  t.after(() => store.close())
  const list = createRevokedTokenList(store)
  await assert.rejects(list.revoke('eyJhbGciOi.raw.token', 60_000), { code: 'GW_INTERNAL' })
  await assert.rejects(list.isRevoked('x'.repeat(10_000)), { code: 'GW_INTERNAL' })
})
