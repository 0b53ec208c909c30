import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { ConfigError, type LoadedConfig } from '../../../../src/config/load.ts'
import { gatewayConfigSchema, type GatewayKeyConfig } from '../../../../src/config/schema.ts'
import { loadGatewayKeys } from '../../../../src/authorization-server/keys/load-keys.ts'

const pem = (type: string, options: object = {}): string =>
  (generateKeyPairSync as unknown as (t: string, o: object) => { privateKey: KeyObject })(type, options).privateKey.export({
    format: 'pem',
    type: 'pkcs8',
  }) as string

const FILES: Record<string, string> = {
  'rsa.pem': pem('rsa', { modulusLength: 2048 }),
  'rsa1024.pem': pem('rsa', { modulusLength: 1024 }),
  'p256.pem': pem('ec', { namedCurve: 'P-256' }),
  'p384.pem': pem('ec', { namedCurve: 'P-384' }),
  'ed25519.pem': pem('ed25519'),
  'garbage.pem': 'not a key',
}

function loadedWith(keys: Partial<GatewayKeyConfig>[]): LoadedConfig {
  return {
    file: '/etc/gateway.yaml',
    readFile: (path: string) => {
      if (!(path in FILES)) throw Object.assign(new Error('no such file'), { code: 'ENOENT' })
      return FILES[path]!
    },
    config: { authorizationServer: { keys } },
  } as unknown as LoadedConfig
}

function problems(keys: Partial<GatewayKeyConfig>[], env: NodeJS.ProcessEnv = {}): readonly string[] {
  try {
    loadGatewayKeys(loadedWith(keys), env)
  } catch (error) {
    assert.ok(error instanceof ConfigError)
    return error.problems
  }
  return []
}

test('keys of the right type for their alg load, from a file or the environment (PEM or JWK)', () => {
  const jwk = JSON.stringify(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }))
  const keys = loadGatewayKeys(
    loadedWith([
      { kid: 'rsa-sig', use: 'sig', alg: 'PS256', privateKeyFile: 'rsa.pem' },
      { kid: 'ec-sig', use: 'sig', alg: 'ES256', privateKeyEnv: 'EC_JWK' },
      { kid: 'ed-sig', use: 'sig', alg: 'EdDSA', privateKeyEnv: 'ED_PEM' },
      { kid: 'rsa-enc', use: 'enc', alg: 'RSA-OAEP-256', privateKeyFile: 'rsa.pem' },
      { kid: 'ec-enc', use: 'enc', alg: 'ECDH-ES', privateKeyFile: 'p384.pem' },
    ]),
    { EC_JWK: jwk, ED_PEM: FILES['ed25519.pem'] },
  )
  assert.deepEqual(
    keys.map((k) => [k.kid, k.publicJwk.kty, k.publicJwk.alg, k.publicJwk.use]),
    [
      ['rsa-sig', 'RSA', 'PS256', 'sig'],
      ['ec-sig', 'EC', 'ES256', 'sig'],
      ['ed-sig', 'OKP', 'EdDSA', 'sig'],
      ['rsa-enc', 'RSA', 'RSA-OAEP-256', 'enc'],
      ['ec-enc', 'EC', 'ECDH-ES', 'enc'],
    ],
  )
  for (const key of keys) for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi']) assert.equal(member in key.publicJwk, false)
})

test('an unreadable key, a missing variable, a key that is not one, RSA < 2048 bits, ES256 off P-256, a type mismatch: one line each', () => {
  const found = problems(
    [
      { kid: 'a', use: 'sig', alg: 'PS256', privateKeyFile: 'missing.pem' },
      { kid: 'b', use: 'sig', alg: 'PS256', privateKeyEnv: 'UNSET' },
      { kid: 'c', use: 'sig', alg: 'PS256', privateKeyFile: 'garbage.pem' },
      { kid: 'd', use: 'sig', alg: 'PS256', privateKeyFile: 'rsa1024.pem' },
      { kid: 'e', use: 'sig', alg: 'ES256', privateKeyFile: 'p384.pem' },
      { kid: 'f', use: 'sig', alg: 'EdDSA', privateKeyFile: 'p256.pem' },
      { kid: 'g', use: 'enc', alg: 'RSA-OAEP-256', privateKeyFile: 'p256.pem' },
      { kid: 'h', use: 'sig', alg: 'ES256', privateKeyEnv: 'PUBLIC_JWK' },
    ],
    { PUBLIC_JWK: JSON.stringify(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' })) },
  )
  assert.deepEqual(found, [
    '/etc/gateway.yaml: authorizationServer.keys.0.privateKeyFile: file "missing.pem" cannot be read (ENOENT)',
    '/etc/gateway.yaml: authorizationServer.keys.1.privateKeyEnv: environment variable UNSET is not set',
    '/etc/gateway.yaml: authorizationServer.keys.2.privateKeyFile: not a private key (PEM PKCS#8 or a private JWK) for kid c',
    '/etc/gateway.yaml: authorizationServer.keys.3.alg: RSA key of 1024 bits, at least 2048 needed (kid d)',
    '/etc/gateway.yaml: authorizationServer.keys.4.alg: ES256 needs an EC P-256 key, this is on secp384r1 (kid e)',
    '/etc/gateway.yaml: authorizationServer.keys.5.alg: EdDSA needs an Ed25519 key, this is ec (kid f)',
    '/etc/gateway.yaml: authorizationServer.keys.6.alg: RSA-OAEP-256 needs an RSA key, this is ec (kid g)',
    '/etc/gateway.yaml: authorizationServer.keys.7.privateKeyEnv: not a private key (PEM PKCS#8 or a private JWK) for kid h',
  ])
  for (const line of found) assert.doesNotMatch(line, /BEGIN|MII/)
})

function configWithKeys(keys: unknown[]): unknown {
  return {
    listener: { publicBaseUrl: 'https://api.bank.example', tls: { certFile: 'a', keyFile: 'b', clientCaFile: 'c' } },
    issuers: [{ name: 'legacy', issuer: 'https://as.bank.example', jwksUri: 'https://as.bank.example/jwks', audience: 'x', facade: { validate: 'jwks' } }],
    upstreams: { 'data-api': { url: 'http://127.0.0.1:9000' } },
    authorizationServer: { resourceIssuer: 'legacy', legacy: { tokenEndpoint: 'https://as.bank.example/token' }, keys },
  }
}

function schemaMessages(keys: unknown[]): string[] {
  const parsed = gatewayConfigSchema.safeParse(configWithKeys(keys))
  return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`)
}

test('the schema refuses two keys with one kid, an alg of the other use, both or neither source, retireAt before activeFrom', () => {
  assert.deepEqual(schemaMessages([{ kid: 'k', use: 'sig', alg: 'ES256', privateKeyFile: 'k.pem' }]), [])
  assert.deepEqual(
    schemaMessages([
      { kid: 'k', use: 'sig', alg: 'ES256', privateKeyFile: 'k.pem' },
      { kid: 'k', use: 'sig', alg: 'ES256', privateKeyFile: 'k2.pem' },
    ]),
    ['authorizationServer.keys: two keys with one kid'],
  )
  assert.deepEqual(schemaMessages([{ kid: 'k', use: 'sig', alg: 'RSA-OAEP-256', privateKeyFile: 'k.pem' }]), [
    'authorizationServer.keys.0.alg: use sig takes PS256, ES256 or EdDSA; use enc takes RSA-OAEP-256 or ECDH-ES',
  ])
  assert.deepEqual(schemaMessages([{ kid: 'k', use: 'sig', alg: 'ES256', privateKeyFile: 'k.pem', privateKeyEnv: 'K' }]), [
    'authorizationServer.keys.0.privateKeyFile: needs exactly one of privateKeyFile or privateKeyEnv',
  ])
  assert.deepEqual(
    schemaMessages([{ kid: 'k', use: 'sig', alg: 'ES256', privateKeyFile: 'k.pem', activeFrom: '2027-01-02T00:00:00Z', retireAt: '2027-01-01T00:00:00Z' }]),
    ['authorizationServer.keys.0.retireAt: must be after activeFrom'],
  )
  // No inline secret: a key in the file itself is not a key of the schema.
  assert.equal(schemaMessages([{ kid: 'k', use: 'sig', alg: 'ES256', privateKey: '-----BEGIN PRIVATE KEY-----' }]).length > 0, true)
})
