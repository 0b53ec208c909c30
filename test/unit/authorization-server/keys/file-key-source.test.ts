import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { CompactEncrypt, compactVerify, decodeProtectedHeader, importJWK, type JWK } from 'jose'
import { createFileKeySource, keysAddedSince } from '../../../../src/authorization-server/keys/file-key-source.ts'
import type { LoadedGatewayKey } from '../../../../src/authorization-server/keys/load-keys.ts'

const HOUR = 3_600_000
const T0 = Date.parse('2027-01-01T00:00:00Z')
const rotation = { publishAheadSeconds: 3600, retiredKeptSeconds: 3600 }

function key(kid: string, use: 'sig' | 'enc', times: { activeFrom?: number; retireAt?: number } = {}): LoadedGatewayKey {
  const privateKey: KeyObject = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
  const alg = use === 'sig' ? 'ES256' : 'ECDH-ES'
  const { kty, crv, x, y } = createPublicKey(privateKey).export({ format: 'jwk' }) as JWK
  return { kid, use, alg, privateKey, publicJwk: { kty, crv, x, y, kid, use, alg }, activeFrom: times.activeFrom, retireAt: times.retireAt }
}

const kids = (jwks: { keys: readonly JWK[] }) => jwks.keys.map((k) => k.kid)

test('a signing key rotation: before publication, published but not signing, signing, overlap, retired', async () => {
  const old = key('old', 'sig', { retireAt: T0 + 3 * HOUR })
  const next = key('next', 'sig', { activeFrom: T0 + 2 * HOUR })
  const source = createFileKeySource([old, next], rotation)

  // Before publication (next is published an hour before activeFrom).
  assert.deepEqual(kids(source.publicJwks(T0)), ['old'])
  assert.equal(source.signer(T0).kid, 'old')
  // Published, not yet signing.
  assert.deepEqual(kids(source.publicJwks(T0 + HOUR)), ['old', 'next'])
  assert.equal(source.signer(T0 + HOUR).kid, 'old')
  assert.equal(source.signer(T0 + 2 * HOUR - 1).kid, 'old')
  // Signing; the old key still published (and able to sign until retireAt, though no longer chosen).
  assert.equal(source.signer(T0 + 2 * HOUR).kid, 'next')
  assert.deepEqual(kids(source.publicJwks(T0 + 2 * HOUR)), ['old', 'next'])
  // Retired: still published for retiredKeptSeconds so that what it signed verifies, then gone.
  assert.deepEqual(kids(source.publicJwks(T0 + 4 * HOUR - 1)), ['old', 'next'])
  assert.deepEqual(kids(source.publicJwks(T0 + 4 * HOUR)), ['next'])
  assert.deepEqual(source.expiries(), [{ kid: 'old', use: 'sig', notAfter: T0 + 3 * HOUR }])

  // What the signer signs verifies with the published key, and the header names it.
  const jws = await source.signer(T0 + 2 * HOUR).sign({ iss: 'https://gw.example', code: 'c' }, 'oauth-authz-resp+jwt')
  assert.deepEqual(decodeProtectedHeader(jws), { alg: 'ES256', kid: 'next', typ: 'oauth-authz-resp+jwt' })
  const published = source.publicJwks(T0 + 2 * HOUR).keys.find((k) => k.kid === 'next')!
  const { payload } = await compactVerify(jws, await importJWK(published, 'ES256'))
  assert.deepEqual(JSON.parse(new TextDecoder().decode(payload)), { iss: 'https://gw.example', code: 'c' })
})

test('no key active: signer throws rather than sign with a retired or unpublished key', () => {
  const source = createFileKeySource([key('retired', 'sig', { retireAt: T0 }), key('future', 'sig', { activeFrom: T0 + 5 * HOUR })], rotation)
  assert.throws(() => source.signer(T0 + HOUR), /no signing key is active/)
  assert.equal(source.signer(T0 - 1).kid, 'retired')
  assert.equal(source.signer(T0 + 5 * HOUR).kid, 'future')
})

test('a key added on a reload is published from then and signs no sooner than publishAheadSeconds later', () => {
  const first = key('first', 'sig')
  const before = createFileKeySource([first], rotation)
  const late = key('late', 'sig', { activeFrom: T0 + 10 * 60_000 })
  const addedAt = keysAddedSince(before, [first, late], T0)
  assert.deepEqual([...addedAt], [['late', T0]])
  const after = createFileKeySource([first, late], { ...rotation, addedAt })
  assert.deepEqual(kids(after.publicJwks(T0)), ['first', 'late'])
  assert.equal(after.signer(T0 + 10 * 60_000).kid, 'first')
  assert.equal(after.signer(T0 + HOUR).kid, 'late')
  // A further reload carries the time over; at start-up (no previous source) every key is configured from the start.
  assert.deepEqual([...keysAddedSince(after, [first, late], T0 + 5 * 60_000)], [['late', T0]])
  assert.deepEqual([...keysAddedSince(undefined, [first, late], T0)], [])
})

test('decryption keys: accepted once published, offered until retireAt, accepted retiredKeptSeconds longer', async () => {
  const old = key('enc-old', 'enc', { retireAt: T0 + 3 * HOUR })
  const next = key('enc-next', 'enc', { activeFrom: T0 + 2 * HOUR })
  const source = createFileKeySource([old, next], rotation)
  assert.deepEqual(kids({ keys: source.decrypters(T0).map((d) => ({ kid: d.kid })) }), ['enc-old'])
  assert.deepEqual(
    source.decrypters(T0 + HOUR).map((d) => d.kid),
    ['enc-old', 'enc-next'],
  )
  assert.deepEqual(kids(source.publicJwks(T0 + 3 * HOUR)), ['enc-next'])
  assert.deepEqual(
    source.decrypters(T0 + 3 * HOUR).map((d) => d.kid),
    ['enc-old', 'enc-next'],
  )
  assert.deepEqual(
    source.decrypters(T0 + 4 * HOUR).map((d) => d.kid),
    ['enc-next'],
  )

  const published = source.publicJwks(T0 + HOUR).keys.find((k) => k.kid === 'enc-next')!
  const jwe = await new CompactEncrypt(new TextEncoder().encode('request object'))
    .setProtectedHeader({ alg: 'ECDH-ES', enc: 'A256GCM', kid: 'enc-next' })
    .encrypt(await importJWK(published, 'ECDH-ES'))
  const [forOld, forNext] = source.decrypters(T0 + HOUR)
  assert.equal(new TextDecoder().decode(await forNext!.decrypt(jwe)), 'request object')
  await assert.rejects(forOld!.decrypt(jwe), /kid/)
  const other = await new CompactEncrypt(new TextEncoder().encode('x'))
    .setProtectedHeader({ alg: 'ECDH-ES', enc: 'A256GCM' })
    .encrypt(await importJWK(published, 'ECDH-ES'))
  await assert.rejects(forOld!.decrypt(other))
})

test('the published JWKS never holds a private member', () => {
  const source = createFileKeySource([key('s', 'sig'), key('e', 'enc')], rotation)
  for (const jwk of source.publicJwks(T0).keys) {
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']) assert.equal(member in jwk, false, `${jwk.kid}: ${member}`)
  }
})
