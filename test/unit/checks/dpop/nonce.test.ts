import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createNonceIssuer } from '../../../../src/checks/dpop/nonce.ts'

const secret = Buffer.alloc(32, 7)
const slotSeconds = 30
const slotStart = 1_760_000_010_000 // a multiple of 30 s
const NQCHAR = /^[\x21\x23-\x5b\x5d-\x7e]+$/ // RFC 9449 §8.1

describe('createNonceIssuer', () => {
  test('nonces are base64url, NQCHAR-safe and 43 characters long', () => {
    const issuer = createNonceIssuer({ secret, slotSeconds })
    for (let i = 0; i < 50; i++) {
      const nonce = createNonceIssuer({ secret: randomBytes(32), slotSeconds }).current(slotStart + i * 1000)
      assert.match(nonce, NQCHAR)
      assert.match(nonce, /^[A-Za-z0-9_-]{43}$/)
    }
    assert.match(issuer.current(slotStart), /^[A-Za-z0-9_-]{43}$/)
  })

  test('the same nonce for the whole slot, a new one in the next', () => {
    const issuer = createNonceIssuer({ secret, slotSeconds })
    const nonce = issuer.current(slotStart)
    assert.equal(issuer.current(slotStart + 29_999), nonce)
    assert.notEqual(issuer.current(slotStart + 30_000), nonce)
    assert.notEqual(issuer.current(slotStart - 1), nonce)
  })

  test('replicas sharing the secret agree; another secret does not', () => {
    const a = createNonceIssuer({ secret, slotSeconds })
    const b = createNonceIssuer({ secret: Buffer.from(secret), slotSeconds })
    const other = createNonceIssuer({ secret: Buffer.alloc(32, 8), slotSeconds })
    const nonce = a.current(slotStart + 5_000)
    assert.equal(b.current(slotStart + 12_000), nonce)
    assert.equal(b.isValid(nonce, slotStart + 20_000), true)
    assert.equal(other.isValid(nonce, slotStart + 20_000), false)
  })

  test('accepts the current and the previous slot only', () => {
    const issuer = createNonceIssuer({ secret, slotSeconds })
    const nonce = issuer.current(slotStart)
    assert.equal(issuer.isValid(nonce, slotStart), true)
    assert.equal(issuer.isValid(nonce, slotStart + 29_999), true)
    assert.equal(issuer.isValid(nonce, slotStart + 30_000), true, 'previous slot')
    assert.equal(issuer.isValid(nonce, slotStart + 59_999), true, 'previous slot')
    assert.equal(issuer.isValid(nonce, slotStart + 60_000), false, 'two slots old')
    assert.equal(issuer.isValid(nonce, slotStart - 1), false, 'a nonce from the future')
  })

  test('refuses nonces it did not issue', () => {
    const issuer = createNonceIssuer({ secret, slotSeconds })
    const nonce = issuer.current(slotStart)
    const flipped = `${nonce.slice(0, 10)}${nonce[10] === 'A' ? 'B' : 'A'}${nonce.slice(11)}`
    for (const candidate of ['', 'x', flipped, `${nonce}A`, nonce.slice(1), 'eyJ7S_zG.eyJH0-Z.HX4w-7v', nonce.replace(/./, 'Ł')]) {
      assert.equal(issuer.isValid(candidate, slotStart), false, candidate)
    }
    assert.equal(issuer.isValid(42 as unknown as string, slotStart), false)
    assert.equal(issuer.isValid(undefined as unknown as string, slotStart), false)
  })

  test('the secret is copied: mutating the caller buffer changes nothing', () => {
    const mine = Buffer.alloc(32, 9)
    const issuer = createNonceIssuer({ secret: mine, slotSeconds })
    const nonce = issuer.current(slotStart)
    mine.fill(0)
    assert.equal(issuer.current(slotStart), nonce)
  })

  test('refuses weak configuration', () => {
    assert.throws(() => createNonceIssuer({ secret: Buffer.alloc(31), slotSeconds }), RangeError)
    assert.throws(() => createNonceIssuer({ secret: 'x'.repeat(40) as unknown as Buffer, slotSeconds }), RangeError)
    assert.throws(() => createNonceIssuer({ secret, slotSeconds: 0 }), RangeError)
    assert.throws(() => createNonceIssuer({ secret, slotSeconds: 1.5 }), RangeError)
    assert.throws(() => createNonceIssuer({ secret, slotSeconds: -30 }), RangeError)
  })
})
