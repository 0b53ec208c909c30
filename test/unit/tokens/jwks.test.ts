import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { constants, generateKeyPairSync, sign } from 'node:crypto'
import { createDevPki, type DevPki } from '../../../dev/pki.ts'
import { createRemoteKeySet, type RemoteKeySet, type RemoteKeySetOptions } from '../../../src/tokens/jwks.ts'
import { verifyJwtAccessToken, type JwtIssuerSettings } from '../../../src/tokens/jwt.ts'
import type { Logger } from '../../../src/types.ts'
import { audienceId, createSigningKey, issuerId, signAccessToken, startIssuerServer, type IssuerServer, type SigningKey } from './issuer-server.ts'

const settings: JwtIssuerSettings = { name: 'as', issuer: issuerId, audience: audienceId }
const start = Math.floor(Date.now() / 1000) * 1000

let pki: DevPki
let server: IssuerServer
let ps256: SigningKey
let es256: SigningKey
let sets: RemoteKeySet[] = []

before(async () => {
  pki = await createDevPki()
  ps256 = await createSigningKey('PS256', 'k-ps')
  es256 = await createSigningKey('ES256', 'k-es')
})

after(async () => {
  await Promise.all(sets.map((s) => s.close()))
  sets = []
})

async function freshServer(keys = [ps256.publicJwk]): Promise<IssuerServer> {
  server = await startIssuerServer(pki)
  server.jwks = { keys }
  return server
}

function keySet(options: Partial<RemoteKeySetOptions> & { clock: { t: number } }): RemoteKeySet {
  const set = createRemoteKeySet({ uri: server.jwksUri, caPem: pki.root.certPem, now: () => options.clock.t, ...options })
  sets.push(set)
  return set
}

function capturingLogger(): Logger & { warnings: object[] } {
  const warnings: object[] = []
  return { warnings, info: () => undefined, error: () => undefined, warn: (obj) => void warnings.push(obj) }
}

const rejectsWith = (promise: Promise<unknown>, code: string) => assert.rejects(promise, (error: { code?: string }) => error.code === code)

describe('remote key set', () => {
  test('a valid token verifies with the fetched key, fetched once', async () => {
    await freshServer()
    const clock = { t: start }
    const keys = keySet({ clock })
    await keys.refresh()
    assert.equal(keys.ready(), true)
    const token = await verifyJwtAccessToken(await signAccessToken(ps256, clock.t), settings, keys.getKey, clock.t)
    assert.equal(token.sub, 'user-1')
    await verifyJwtAccessToken(await signAccessToken(ps256, clock.t), settings, keys.getKey, clock.t)
    assert.equal(server.jwksRequests, 1)
    await server.stop()
  })

  test('key rotation: an unknown kid refetches exactly once, then the new key works', async () => {
    await freshServer()
    const clock = { t: start }
    const keys = keySet({ clock })
    await keys.refresh()
    assert.equal(server.jwksRequests, 1)
    server.jwks = { keys: [ps256.publicJwk, es256.publicJwk] }
    clock.t += 31_000
    const tokens = await Promise.all([1, 2, 3].map(() => signAccessToken(es256, clock.t)))
    await Promise.all(tokens.map((t) => verifyJwtAccessToken(t, settings, keys.getKey, clock.t)))
    assert.equal(server.jwksRequests, 2, 'concurrent unknown kids share one fetch')
    await verifyJwtAccessToken(tokens[0] as string, settings, keys.getKey, clock.t)
    assert.equal(server.jwksRequests, 2)
    await server.stop()
  })

  test('an unknown kid within the cool-down does not refetch and is refused', async () => {
    await freshServer()
    const clock = { t: start }
    const keys = keySet({ clock })
    await keys.refresh()
    server.jwks = { keys: [ps256.publicJwk, es256.publicJwk] }
    clock.t += 5_000
    const token = await signAccessToken(es256, clock.t)
    await rejectsWith(verifyJwtAccessToken(token, settings, keys.getKey, clock.t), 'GW_TOKEN_INVALID')
    await rejectsWith(verifyJwtAccessToken(token, settings, keys.getKey, clock.t), 'GW_TOKEN_INVALID')
    assert.equal(server.jwksRequests, 1)
    await server.stop()
  })

  test('a kid still unknown after a refetch is refused without refetching for a while', async () => {
    await freshServer()
    const clock = { t: start }
    const keys = keySet({ clock, cooldownMs: 1_000, unknownKidTtlMs: 60_000 })
    await keys.refresh()
    clock.t += 2_000
    const token = await signAccessToken(es256, clock.t)
    await rejectsWith(verifyJwtAccessToken(token, settings, keys.getKey, clock.t), 'GW_TOKEN_INVALID')
    assert.equal(server.jwksRequests, 2)
    clock.t += 2_000
    await rejectsWith(verifyJwtAccessToken(token, settings, keys.getKey, clock.t), 'GW_TOKEN_INVALID')
    assert.equal(server.jwksRequests, 2)
    await server.stop()
  })

  test('issuer down after a good fetch: known keys keep working, unknown kids get GW_ISSUER_UNAVAILABLE', async () => {
    await freshServer()
    const clock = { t: start }
    const keys = keySet({ clock })
    await keys.refresh()
    await server.stop()
    clock.t += 31_000
    await rejectsWith(keys.refresh(), 'GW_ISSUER_UNAVAILABLE')
    const token = await verifyJwtAccessToken(await signAccessToken(ps256, clock.t), settings, keys.getKey, clock.t)
    assert.equal(token.issuerName, 'as')
    assert.equal(keys.ready(), true)
    await rejectsWith(verifyJwtAccessToken(await signAccessToken(es256, clock.t), settings, keys.getKey, clock.t), 'GW_ISSUER_UNAVAILABLE')
  })

  test('a failing JWKS answer (500) keeps the last good set', async () => {
    await freshServer()
    const clock = { t: start }
    const keys = keySet({ clock })
    await keys.refresh()
    server.jwksStatus = 500
    await rejectsWith(keys.refresh(), 'GW_ISSUER_UNAVAILABLE')
    await verifyJwtAccessToken(await signAccessToken(ps256, clock.t), settings, keys.getKey, clock.t)
    await server.stop()
  })

  test('issuer down with nothing cached: GW_ISSUER_UNAVAILABLE', async () => {
    await freshServer()
    await server.stop()
    const clock = { t: start }
    const keys = keySet({ clock })
    await rejectsWith(verifyJwtAccessToken(await signAccessToken(ps256, clock.t), settings, keys.getKey, clock.t), 'GW_ISSUER_UNAVAILABLE')
    assert.equal(keys.ready(), false)
  })

  test('JWKS served with a certificate the CA bundle does not trust: GW_ISSUER_UNAVAILABLE (fail closed)', async () => {
    await freshServer()
    const clock = { t: start }
    const logger = capturingLogger()
    const keys = keySet({ clock, caPem: pki.untrustedRoot.certPem, logger })
    await rejectsWith(verifyJwtAccessToken(await signAccessToken(ps256, clock.t), settings, keys.getKey, clock.t), 'GW_ISSUER_UNAVAILABLE')
    assert.equal(server.jwksRequests, 0)
    assert.equal(keys.ready(), false)
    assert.match(JSON.stringify(logger.warnings), /CERT|certificate/i)
    await server.stop()
  })

  test('a plain http:// jwksUri is refused at creation', () => {
    assert.throws(() => createRemoteKeySet({ uri: 'http://127.0.0.1:1/jwks', now: () => start }), /https/)
  })

  test('an RSA-1024 key in the JWKS is not used', async () => {
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 })
    await freshServer([{ ...weak.publicKey.export({ format: 'jwk' }), kid: 'weak' }, ps256.publicJwk])
    const clock = { t: start }
    const logger = capturingLogger()
    const keys = keySet({ clock, logger })
    await keys.refresh()
    assert.match(JSON.stringify(logger.warnings), /weak: RSA key below 2048 bits/)
    const now = Math.floor(clock.t / 1000)
    const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')
    const input = `${encode({ alg: 'PS256', kid: 'weak', typ: 'at+jwt' })}.${encode({ iss: issuerId, aud: audienceId, iat: now, exp: now + 300 })}`
    const signature = sign('sha256', Buffer.from(input), { key: weak.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
    await rejectsWith(verifyJwtAccessToken(`${input}.${signature.toString('base64url')}`, settings, keys.getKey, clock.t), 'GW_TOKEN_INVALID')
    await server.stop()
  })

  test('a key whose use is enc is not used, and a set without usable keys is not ready', async () => {
    await freshServer([{ ...ps256.publicJwk, use: 'enc' }])
    const clock = { t: start }
    const keys = keySet({ clock })
    await keys.refresh()
    assert.equal(keys.ready(), false)
    await rejectsWith(verifyJwtAccessToken(await signAccessToken(ps256, clock.t), settings, keys.getKey, clock.t), 'GW_TOKEN_INVALID')
    await server.stop()
  })

  test('duplicate kid (RSA + EC): kty/alg/crv pick the right key (SP 5.4.3)', async () => {
    const rsa = await createSigningKey('PS256', 'dup')
    const ec = await createSigningKey('ES256', 'dup')
    await freshServer([rsa.publicJwk, ec.publicJwk])
    const clock = { t: start }
    const keys = keySet({ clock })
    await keys.refresh()
    assert.equal((await verifyJwtAccessToken(await signAccessToken(ec, clock.t), settings, keys.getKey, clock.t)).sub, 'user-1')
    assert.equal((await verifyJwtAccessToken(await signAccessToken(rsa, clock.t), settings, keys.getKey, clock.t)).sub, 'user-1')
    await server.stop()
  })

  test('two different keys for the same kid and alg are refused as ambiguous', async () => {
    const one = await createSigningKey('ES256', 'twin')
    const two = await createSigningKey('ES256', 'twin')
    await freshServer([one.publicJwk, two.publicJwk])
    const clock = { t: start }
    const keys = keySet({ clock })
    await keys.refresh()
    await rejectsWith(verifyJwtAccessToken(await signAccessToken(one, clock.t), settings, keys.getKey, clock.t), 'GW_TOKEN_INVALID')
    await server.stop()
  })

  test('maxAge: an old set is refetched in the background on use', async () => {
    await freshServer()
    const clock = { t: start }
    const keys = keySet({ clock, maxAgeMs: 60_000 })
    await keys.refresh()
    clock.t += 61_000
    await verifyJwtAccessToken(await signAccessToken(ps256, clock.t), settings, keys.getKey, clock.t)
    for (let i = 0; i < 1_000 && server.jwksRequests < 2; i++) await new Promise((resolve) => setTimeout(resolve, 5))
    assert.equal(server.jwksRequests, 2)
    await server.stop()
  })
})
