import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { createTokenCache } from '../../../src/tokens/token-cache.ts'
import { createLru } from '../../../src/util/lru.ts'
import type { AccessToken } from '../../../src/types.ts'

const now = 1_700_000_000_000

function accessToken(exp: number | undefined): AccessToken {
  return {
    format: 'jwt',
    issuerName: 'as',
    iss: 'https://as',
    sub: 's',
    clientId: 'c',
    scopes: new Set(),
    audiences: ['a'],
    exp,
    jti: 'j',
    binding: {},
    tokenType: undefined,
  }
}

describe('LRU', () => {
  test('evicts the least recently used entry', () => {
    const lru = createLru<string, number>(2)
    lru.set('a', 1)
    lru.set('b', 2)
    assert.equal(lru.get('a'), 1)
    lru.set('c', 3)
    assert.equal(lru.get('b'), undefined)
    assert.equal(lru.get('a'), 1)
    assert.equal(lru.get('c'), 3)
    assert.equal(lru.size, 2)
  })

  test('refuses a size that is not a positive integer', () => {
    assert.throws(() => createLru(0), TypeError)
  })
})

describe('verified-token cache', () => {
  test('returns a token until its exp, never at or after it, and counts hits and misses', () => {
    const cache = createTokenCache({ maxEntries: 10 })
    const token = accessToken(now / 1000 + 30)
    cache.set('h1', token, now)
    assert.equal(cache.get('h1', now), token)
    assert.equal(cache.get('h1', now + 29_999), token)
    assert.equal(cache.get('h1', now + 30_000), undefined)
    assert.equal(cache.get('h1', now), undefined, 'an expired entry is dropped')
    assert.deepEqual(cache.stats(), { hits: 2, misses: 2, size: 0 })
  })

  test('an optional TTL shortens the stay; tokens without exp or already expired are not kept', () => {
    const cache = createTokenCache({ maxEntries: 10 })
    cache.set('ttl', accessToken(now / 1000 + 300), now, 5_000)
    assert.ok(cache.get('ttl', now + 4_999))
    assert.equal(cache.get('ttl', now + 5_000), undefined)
    cache.set('no-exp', accessToken(undefined), now)
    cache.set('expired', accessToken(now / 1000 - 1), now)
    assert.equal(cache.stats().size, 0)
  })

  test('is bounded', () => {
    const cache = createTokenCache({ maxEntries: 2 })
    for (const hash of ['a', 'b', 'c']) cache.set(hash, accessToken(now / 1000 + 60), now)
    assert.equal(cache.stats().size, 2)
    assert.equal(cache.get('a', now), undefined)
  })
})
