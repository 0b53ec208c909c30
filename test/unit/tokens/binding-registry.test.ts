import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { createMemoryReplayStore } from '../../../src/replay/memory-store.ts'
import { bindingKey, createBindingRegistry, parseBindingRecord, type BindingRecord } from '../../../src/tokens/binding-registry.ts'

const TOKEN_HASH = createHash('sha256').update('a legacy access token').digest('base64url')
const JKT = createHash('sha256').update('a key').digest('base64url')

const record: BindingRecord = {
  kind: 'access_token',
  issuerName: 'legacy',
  clientId: 'partner-a',
  legacyClientId: 'legacy-shared',
  jkt: JKT,
  scope: 'accounts payments',
  sub: 'user-1',
  issuedAt: 1_700_000_000,
  expiresAt: 1_700_000_600,
}

function registryAt(t: { after(fn: () => unknown): void }, now = () => 1_700_000_000_000) {
  const store = createMemoryReplayStore({ maxEntries: 100, now })
  t.after(() => store.close())
  return { store, registry: createBindingRegistry(store) }
}

test('record, lookup and remove a binding under bind:{hash}, as JSON, for its TTL', async (t) => {
  let now = 1_700_000_000_000
  const { store, registry } = registryAt(t, () => now)
  assert.equal(await registry.lookup(TOKEN_HASH), undefined)
  await registry.record(TOKEN_HASH, record, 60_000)
  assert.equal(bindingKey(TOKEN_HASH), `bind:{${TOKEN_HASH}}`)
  assert.deepEqual(JSON.parse((await store.get(bindingKey(TOKEN_HASH)))!), record)
  assert.deepEqual(await registry.lookup(TOKEN_HASH), record)
  now += 60_000
  assert.equal(await registry.lookup(TOKEN_HASH), undefined, 'expired with its TTL')
  await registry.record(TOKEN_HASH, record, 60_000)
  await registry.remove(TOKEN_HASH)
  assert.equal(await registry.lookup(TOKEN_HASH), undefined)
})

test('a corrupt or foreign value under the key is no record', async (t) => {
  const { store, registry } = registryAt(t)
  const corrupt = [
    'not json',
    '1',
    'null',
    '[]',
    JSON.stringify({ ...record, kind: 'id_token' }),
    JSON.stringify({ ...record, jkt: 'short' }),
    JSON.stringify({ ...record, x5t: 42 }),
    JSON.stringify({ ...record, expiresAt: 'tomorrow' }),
    JSON.stringify({ ...record, clientId: '' }),
    JSON.stringify({ ...record, jkt: undefined }),
    JSON.stringify({ ...record, scope: undefined }),
  ]
  for (const value of corrupt) {
    await store.set(bindingKey(TOKEN_HASH), value, 60_000)
    assert.equal(await registry.lookup(TOKEN_HASH), undefined, value)
    assert.equal(parseBindingRecord(value), undefined, value)
  }
  assert.equal(parseBindingRecord(undefined), undefined)
})

test('a certificate-bound record and a refresh token bound to its client alone are records', async (t) => {
  const { registry } = registryAt(t)
  const certBound: BindingRecord = { ...record, jkt: undefined, x5t: JKT }
  delete (certBound as { jkt?: string }).jkt
  await registry.record(TOKEN_HASH, certBound, 60_000)
  assert.deepEqual(await registry.lookup(TOKEN_HASH), certBound)
  const refresh: BindingRecord = {
    kind: 'refresh_token',
    issuerName: 'legacy',
    clientId: 'partner-a',
    legacyClientId: 'l',
    scope: '',
    issuedAt: 1,
    expiresAt: 2,
  }
  await registry.record(TOKEN_HASH, refresh, 60_000)
  assert.deepEqual(await registry.lookup(TOKEN_HASH), refresh)
})

test('wiring bugs are refused, not stored: a token that is not a hash, an access-token record bound to nothing', async (t) => {
  const { registry } = registryAt(t)
  await assert.rejects(registry.record('raw-token', record, 60_000), { code: 'GW_INTERNAL' })
  await assert.rejects(registry.lookup('raw-token'), { code: 'GW_INTERNAL' })
  const unbound = { ...record } as { jkt?: string }
  delete unbound.jkt
  await assert.rejects(registry.record(TOKEN_HASH, unbound as BindingRecord, 60_000), { code: 'GW_INTERNAL' })
  assert.equal(await registry.lookup(TOKEN_HASH), undefined)
})

test('a store that cannot answer fails closed', async (t) => {
  const { store, registry } = registryAt(t)
  await store.close()
  await assert.rejects(registry.lookup(TOKEN_HASH), { code: 'GW_REPLAY_STORE_UNAVAILABLE' })
  await assert.rejects(registry.record(TOKEN_HASH, record, 60_000), { code: 'GW_REPLAY_STORE_UNAVAILABLE' })
})
