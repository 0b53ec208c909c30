import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { calculateJwkThumbprint } from 'jose'
import { canonicalJwk, createProofKeyCache, jwkThumbprint } from '../../../../src/checks/dpop/proof-key-cache.ts'
import { generateTestKey } from './proof-factory.ts'

// V1: RFC 7638 §3.1 (also RFC 9449 §10's dpop_jkt).
const rfc7638Key = {
  kty: 'RSA',
  n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
  e: 'AQAB',
  alg: 'RS256',
  kid: '2011-04-29',
}
// V2: RFC 9449 example key.
const rfc9449Key = { kty: 'EC', x: 'l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs', y: '9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA', crv: 'P-256' }

describe('jwkThumbprint (RFC 7638)', () => {
  test('V1: the RFC 7638 §3.1 RSA key', () => {
    assert.equal(jwkThumbprint(rfc7638Key), 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs')
    assert.equal(canonicalJwk(rfc7638Key), `{"e":"AQAB","kty":"RSA","n":"${rfc7638Key.n}"}`)
  })

  test('V2: the RFC 9449 example P-256 key', () => {
    assert.equal(jwkThumbprint(rfc9449Key), '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I')
  })

  test('agrees with jose for generated ES256, PS256 and Ed25519 keys, whatever the extra members', async () => {
    for (const alg of ['ES256', 'PS256', 'EdDSA'] as const) {
      const { publicJwk } = await generateTestKey(alg)
      const expected = await calculateJwkThumbprint(publicJwk, 'sha256')
      assert.equal(jwkThumbprint(publicJwk), expected, alg)
      assert.equal(jwkThumbprint({ ...publicJwk, kid: 'k1', use: 'sig', alg, ext: true }), expected, alg)
    }
  })

  test('OKP uses crv, kty, x', () => {
    assert.equal(canonicalJwk({ x: 'eA', kty: 'OKP', crv: 'Ed25519', d: 'secret' }), '{"crv":"Ed25519","kty":"OKP","x":"eA"}')
  })

  test('throws TypeError for keys without the required members', () => {
    for (const jwk of [
      {},
      { kty: 'EC', crv: 'P-256', x: 'eA' },
      { kty: 'RSA', n: 'AQAB' },
      { kty: 'oct', k: 'AQAB' },
      { kty: 'EC', crv: 'P-256', x: 1, y: 'eA' },
      { kty: 'RSA', e: '', n: 'AQAB' },
    ]) {
      assert.throws(() => jwkThumbprint(jwk), TypeError, JSON.stringify(jwk))
    }
  })
})

describe('createProofKeyCache', () => {
  test('imports once, then hits; a key with extra members maps to the same entry', async () => {
    const cache = createProofKeyCache({ maxEntries: 4 })
    const { publicJwk } = await generateTestKey('ES256')
    const first = cache.resolve(publicJwk)
    assert.ok(first)
    assert.equal(first.key.type, 'public')
    assert.equal(first.jkt, await calculateJwkThumbprint(publicJwk))
    assert.deepEqual([cache.hits, cache.misses, cache.size], [0, 1, 1])
    const again = cache.resolve({ kid: 'other', use: 'sig', alg: 'ES256', ...publicJwk })
    assert.equal(again, first)
    assert.deepEqual([cache.hits, cache.misses, cache.size], [1, 1, 1])
  })

  test('resolves V2 to its RFC 9449 thumbprint', () => {
    const cache = createProofKeyCache({ maxEntries: 1 })
    assert.equal(cache.resolve(rfc9449Key)?.jkt, '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I')
    assert.equal(cache.resolve(rfc7638Key)?.jkt, 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs')
  })

  test('evicts the least recently used entry beyond maxEntries', async () => {
    const cache = createProofKeyCache({ maxEntries: 2 })
    const [a, b, c] = await Promise.all([generateTestKey('ES256'), generateTestKey('EdDSA'), generateTestKey('ES256')])
    cache.resolve(a.publicJwk)
    cache.resolve(b.publicJwk)
    cache.resolve(a.publicJwk) // a is now the most recent
    cache.resolve(c.publicJwk) // evicts b
    assert.equal(cache.size, 2)
    assert.deepEqual([cache.hits, cache.misses], [1, 3])
    cache.resolve(a.publicJwk)
    assert.deepEqual([cache.hits, cache.misses], [2, 3], 'a survived')
    cache.resolve(b.publicJwk)
    assert.deepEqual([cache.hits, cache.misses], [2, 4], 'b was evicted')
    assert.equal(cache.size, 2)
  })

  test('refuses JWKs that are not valid P-256, Ed25519 or RSA public keys, and caches none of them', async () => {
    const cache = createProofKeyCache({ maxEntries: 16 })
    const ec = (await generateTestKey('ES256')).publicJwk
    const ed = (await generateTestKey('EdDSA')).publicJwk
    const p384 = (await generateTestKey('ES384')).publicJwk
    const bytes = (value: unknown) => Buffer.from(value as string, 'base64url')
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    // 32 bytes take 43 characters; the last one carries 2 spare bits, so flipping its low bit
    // spells the same bytes differently.
    const respelled = (value: unknown) => {
      const text = value as string
      return text.slice(0, -1) + alphabet[alphabet.indexOf(text.at(-1)!) ^ 1]
    }
    const bad: Record<string, unknown>[] = [
      { kty: 'EC', crv: 'P-256', x: ec.x }, // no y
      { ...ec, y: Buffer.alloc(32, 1).toString('base64url') }, // off the curve
      { ...ec, x: bytes(ec.x).subarray(1).toString('base64url') }, // short coordinate
      { ...ec, x: Buffer.concat([Buffer.alloc(1), bytes(ec.x)]).toString('base64url') }, // long coordinate
      { ...ec, x: `${ec.x}=` }, // padding
      { ...ec, x: (ec.x as string).replace(/[-_]/g, '+') + 'A' }, // base64, not base64url
      { ...ec, crv: 'P-384' },
      p384,
      { ...ed, crv: 'X25519' },
      { ...ed, crv: 'Ed448' },
      { ...ed, x: bytes(ed.x).subarray(2).toString('base64url') },
      { kty: 'RSA', n: 'AQAB' },
      { kty: 'RSA', n: '', e: 'AQAB' },
      { kty: 'oct', k: 'c2VjcmV0' },
      { kty: 'AKP', alg: 'ML-DSA-44', pub: 'AQAB' },
      {},
    ]
    const respelledY = respelled(ec.y)
    assert.ok(bytes(respelledY).equals(bytes(ec.y)))
    bad.push({ ...ec, y: respelledY })
    for (const jwk of bad) assert.equal(cache.resolve(jwk), undefined, JSON.stringify(jwk))
    assert.equal(cache.size, 0)
  })

  test('refuses a non-positive maxEntries', () => {
    assert.throws(() => createProofKeyCache({ maxEntries: 0 }), RangeError)
    assert.throws(() => createProofKeyCache({ maxEntries: 1.5 }), RangeError)
  })
})
