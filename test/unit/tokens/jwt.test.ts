import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { SignJWT } from 'jose'
import { createDevPki } from '../../../dev/pki.ts'
import { createRemoteKeySet, type RemoteKeySet } from '../../../src/tokens/jwks.ts'
import { verifyJwtAccessToken, type JwtIssuerSettings } from '../../../src/tokens/jwt.ts'
import {
  audienceId,
  createSigningKey,
  issuerId,
  signAccessToken,
  startIssuerServer,
  type IssuerServer,
  type SigningKey,
  type TokenOptions,
} from './issuer-server.ts'

const settings: JwtIssuerSettings = { name: 'as', issuer: issuerId, audience: audienceId }
const now = Math.floor(Date.now() / 1000) * 1000
const nowSeconds = now / 1000

let server: IssuerServer
let keys: RemoteKeySet
let ps256: SigningKey
let es256: SigningKey
let eddsa: SigningKey
let rs256: SigningKey
let attacker: SigningKey

before(async () => {
  const pki = await createDevPki()
  ;[ps256, es256, eddsa, rs256] = await Promise.all([
    createSigningKey('PS256', 'k-ps'),
    createSigningKey('ES256', 'k-es'),
    createSigningKey('EdDSA', 'k-ed'),
    createSigningKey('RS256', 'k-rs'),
  ])
  attacker = await createSigningKey('ES256', 'k-es')
  server = await startIssuerServer(pki)
  // The RS256 key is published without alg, so only the algorithm allow-list can refuse it.
  const { alg: _ignored, ...rsaWithoutAlg } = rs256.publicJwk
  server.jwks = { keys: [ps256.publicJwk, es256.publicJwk, eddsa.publicJwk, rsaWithoutAlg] }
  keys = createRemoteKeySet({ uri: server.jwksUri, caPem: pki.root.certPem, now: () => now })
  await keys.refresh()
})

after(async () => {
  await keys.close()
  await server.stop()
})

const verify = (token: string, overrides: Partial<JwtIssuerSettings> = {}) => verifyJwtAccessToken(token, { ...settings, ...overrides }, keys.getKey, now)
const sign = (key: SigningKey, options?: TokenOptions) => signAccessToken(key, now, options)

async function refused(token: Promise<string> | string, code: string, detail: RegExp, overrides: Partial<JwtIssuerSettings> = {}) {
  await assert.rejects(verify(await token, overrides), (error: { code?: string; detail?: string }) => {
    assert.equal(error.code, code)
    assert.match(error.detail ?? '', detail)
    return true
  })
}

describe('JWT access tokens (RFC 9068 §4)', () => {
  test('PS256, ES256 and EdDSA tokens pass and map to an AccessToken', async () => {
    for (const key of [ps256, es256, eddsa]) {
      const token = await verify(await sign(key))
      assert.equal(token.format, 'jwt')
      assert.equal(token.issuerName, 'as')
      assert.equal(token.iss, issuerId)
      assert.equal(token.sub, 'user-1')
      assert.equal(token.clientId, 'client-1')
      assert.deepEqual([...token.scopes], ['accounts', 'payments'])
      assert.deepEqual(token.audiences, [audienceId])
      assert.equal(token.exp, nowSeconds + 300)
      assert.deepEqual(token.binding, { jkt: 'thumbprint-1' })
      assert.equal(token.tokenType, undefined)
    }
  })

  test('scp array, aud array and cnf x5t#S256 are mapped', async () => {
    const token = await verify(
      await sign(es256, { claims: { scope: undefined, scp: ['a', 'b'], aud: ['other', audienceId], cnf: { 'x5t#S256': 'cert-thumb' } } }),
    )
    assert.deepEqual([...token.scopes], ['a', 'b'])
    assert.deepEqual(token.audiences, ['other', audienceId])
    assert.deepEqual(token.binding, { x5t: 'cert-thumb' })
  })

  test('typ application/at+jwt passes', async () => {
    await verify(await sign(es256, { header: { typ: 'application/at+jwt' } }))
  })

  test('typ JWT is refused (R7)', async () => {
    await refused(sign(es256, { header: { typ: 'JWT' } }), 'GW_TOKEN_INVALID', /typ/)
  })

  test('missing typ is refused, and accepted when requireTyp is false', async () => {
    const token = await sign(es256, { header: { typ: undefined } })
    await refused(token, 'GW_TOKEN_INVALID', /typ/)
    assert.equal((await verify(token, { requireTyp: false })).sub, 'user-1')
    await refused(sign(es256, { header: { typ: 'dpop+jwt' } }), 'GW_TOKEN_INVALID', /typ/, { requireTyp: false })
  })

  test('RS256 is refused although the key is published (R8)', async () => {
    await refused(sign(rs256), 'GW_TOKEN_INVALID', /alg/)
  })

  test('HS256 is refused', async () => {
    const token = await new SignJWT({ iss: issuerId, aud: audienceId, exp: nowSeconds + 300 })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: 'k-es' })
      .sign(new TextEncoder().encode('a-shared-secret-of-at-least-32-bytes!'))
    await refused(token, 'GW_TOKEN_INVALID', /alg/)
  })

  test('alg none is refused', async () => {
    const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')
    const token = `${encode({ alg: 'none', typ: 'at+jwt' })}.${encode({ iss: issuerId, aud: audienceId, exp: nowSeconds + 300 })}.`
    await refused(token, 'GW_TOKEN_INVALID', /alg/)
  })

  test('adding RS256 to the configured algorithms still does not accept it', async () => {
    await refused(sign(rs256), 'GW_TOKEN_INVALID', /alg/, { algorithms: ['RS256', 'ES256'] })
  })

  test('a token signed by an attacker key with a valid kid is refused (R9)', async () => {
    await refused(sign(attacker), 'GW_TOKEN_INVALID', /signature/)
  })

  test('header jwk / jku / x5u are never used as the key source', async () => {
    const header = { jwk: attacker.publicJwk, jku: `${server.origin}/attacker-jwks`, x5u: `${server.origin}/attacker.pem` }
    await refused(sign(attacker, { header }), 'GW_TOKEN_INVALID', /signature/)
    await refused(sign(attacker, { header: { ...header, kid: undefined } }), 'GW_TOKEN_INVALID', /signature/)
  })

  test('iss with a trailing slash is refused (R11)', async () => {
    await refused(sign(es256, { claims: { iss: `${issuerId}/` } }), 'GW_TOKEN_INVALID', /iss/)
  })

  test('an aud for another API is GW_TOKEN_AUDIENCE (R12)', async () => {
    await refused(sign(es256, { claims: { aud: 'https://other-api.example.test' } }), 'GW_TOKEN_AUDIENCE', /aud/)
  })

  test('an expired token is GW_TOKEN_EXPIRED (R13), a token without exp is refused', async () => {
    await refused(sign(es256, { claims: { exp: nowSeconds - 300 } }), 'GW_TOKEN_EXPIRED', /exp/)
    await refused(sign(es256, { claims: { exp: undefined } }), 'GW_TOKEN_INVALID', /exp/)
  })

  test('exp within the clock tolerance still passes', async () => {
    await verify(await sign(es256, { claims: { exp: nowSeconds - 5 } }))
  })

  test('nbf 8 s ahead passes, 120 s ahead is refused (R14)', async () => {
    await verify(await sign(es256, { claims: { nbf: nowSeconds + 8 } }))
    await refused(sign(es256, { claims: { nbf: nowSeconds + 120 } }), 'GW_TOKEN_INVALID', /nbf/)
  })

  test('iat 8 s ahead passes, 120 s ahead is refused', async () => {
    await verify(await sign(es256, { claims: { iat: nowSeconds + 8 } }))
    await refused(sign(es256, { claims: { iat: nowSeconds + 120 } }), 'GW_TOKEN_INVALID', /iat/)
  })

  test('nbf and iat never more than 60 s ahead, even with a large tolerance', async () => {
    await refused(sign(es256, { claims: { nbf: nowSeconds + 90 } }), 'GW_TOKEN_INVALID', /nbf/, { clockToleranceSeconds: 300 })
    await refused(sign(es256, { claims: { iat: nowSeconds + 90 } }), 'GW_TOKEN_INVALID', /iat/, { clockToleranceSeconds: 300 })
  })

  test('malformed tokens and claims of the wrong type are refused', async () => {
    await refused('not.a.jwt', 'GW_TOKEN_INVALID', /malformed/)
    await refused(sign(es256, { claims: { scope: ['a'] } }), 'GW_TOKEN_INVALID', /scope/)
    await refused(sign(es256, { claims: { cnf: 'x' } }), 'GW_TOKEN_INVALID', /cnf/)
    await refused(sign(es256, { claims: { client_id: 7 } }), 'GW_TOKEN_INVALID', /client_id/)
  })

  test('a tampered payload fails the signature check', async () => {
    const [header, , signature] = (await sign(es256)).split('.')
    const payload = Buffer.from(JSON.stringify({ iss: issuerId, aud: audienceId, exp: nowSeconds + 300, scope: 'admin' })).toString('base64url')
    await refused(`${header}.${payload}.${signature}`, 'GW_TOKEN_INVALID', /signature/)
  })
})
