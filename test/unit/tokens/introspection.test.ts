import { after, before, beforeEach, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { jwtVerify } from 'jose'
import { createDevPki, type DevPki } from '../../../src/dev/pki.ts'
import { createIntrospectionClient, type IntrospectionClient, type IntrospectionSettings } from '../../../src/tokens/introspection.ts'
import { audienceId, issuerId, startIssuerServer, type IntrospectionCall, type IssuerServer } from './issuer-server.ts'

const start = Math.floor(Date.now() / 1000) * 1000
const startSeconds = start / 1000
const issuer = { name: 'as', issuer: issuerId }
const clientKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' })

let pki: DevPki
let server: IssuerServer
let clients: IntrospectionClient[] = []

const activeAnswer = {
  active: true,
  iss: issuerId,
  aud: audienceId,
  sub: 'user-1',
  client_id: 'client-1',
  scope: 'accounts payments',
  exp: startSeconds + 300,
  token_type: 'DPoP',
  cnf: { jkt: 'thumbprint-1' },
}

before(async () => {
  pki = await createDevPki()
  server = await startIssuerServer(pki)
})

beforeEach(() => {
  server.introspectionCalls.length = 0
  server.introspect = () => ({ body: activeAnswer })
})

after(async () => {
  await Promise.all(clients.map((c) => c.close()))
  await server.stop()
})

function client(overrides: Partial<IntrospectionSettings> = {}): IntrospectionClient {
  const created = createIntrospectionClient(issuer, {
    endpoint: server.introspectionEndpoint,
    clientId: 'gateway',
    auth: { method: 'client_secret_basic', secret: 's3cret:with/odd chars' },
    cacheTtlSeconds: 60,
    caPem: pki.root.certPem,
    ...overrides,
  })
  clients.push(created)
  return created
}

const rejectsWith = (promise: Promise<unknown>, code: string) => assert.rejects(promise, (error: { code?: string }) => error.code === code)

describe('token introspection (RFC 7662)', () => {
  test('active:true maps scope, aud, cnf and token_type; the request is an authenticated form POST', async () => {
    const token = await client().introspect('opaque-token-1', { audience: audienceId }, start)
    assert.equal(token.format, 'opaque')
    assert.equal(token.issuerName, 'as')
    assert.equal(token.iss, issuerId)
    assert.equal(token.tokenType, 'DPoP')
    assert.deepEqual(token.binding, { jkt: 'thumbprint-1' })
    assert.deepEqual([...token.scopes], ['accounts', 'payments'])
    assert.equal(token.exp, startSeconds + 300)
    const [call] = server.introspectionCalls as [IntrospectionCall]
    assert.equal(call.form.get('token'), 'opaque-token-1')
    assert.equal(call.form.get('token_type_hint'), 'access_token')
    assert.match(String(call.headers.accept), /application\/json/)
    assert.match(String(call.headers['content-type']), /application\/x-www-form-urlencoded/)
  })

  test('client_secret_basic: the server sees form-encoded credentials (RFC 6749 §2.3.1)', async () => {
    await client().introspect('opaque-basic', {}, start)
    const [call] = server.introspectionCalls as [IntrospectionCall]
    const decoded = Buffer.from(String(call.headers.authorization).replace(/^Basic /, ''), 'base64').toString()
    const [id, secret] = decoded.split(':').map((part) => decodeURIComponent(part.replaceAll('+', ' ')))
    assert.equal(id, 'gateway')
    assert.equal(secret, 's3cret:with/odd chars')
  })

  test('private_key_jwt: the server verifies the client assertion (aud = issuer)', async () => {
    server.introspect = async (call) => {
      if (call.form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') return { status: 401, body: { error: 'invalid_client' } }
      try {
        await jwtVerify(call.form.get('client_assertion') ?? '', clientKeys.publicKey, { issuer: 'gateway', subject: 'gateway', audience: issuerId, algorithms: ['ES256'], requiredClaims: ['jti', 'exp'] })
      } catch {
        return { status: 401, body: { error: 'invalid_client' } }
      }
      return { body: activeAnswer }
    }
    const privateKeyPem = clientKeys.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
    const token = await client({ auth: { method: 'private_key_jwt', privateKeyPem, alg: 'ES256' } }).introspect('opaque-pkjwt', {}, start)
    assert.equal(token.sub, 'user-1')
    assert.equal(server.introspectionCalls[0]?.headers.authorization, undefined)

    const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
    await rejectsWith(client({ auth: { method: 'private_key_jwt', privateKeyPem: otherKey, alg: 'ES256' } }).introspect('opaque-pkjwt', {}, start), 'GW_ISSUER_UNAVAILABLE')
  })

  test('active:false is GW_TOKEN_INACTIVE', async () => {
    server.introspect = () => ({ body: { active: false } })
    await rejectsWith(client().introspect('opaque-inactive', {}, start), 'GW_TOKEN_INACTIVE')
  })

  test('wrong iss is refused, wrong or missing aud is GW_TOKEN_AUDIENCE, exp in the past is GW_TOKEN_EXPIRED', async () => {
    server.introspect = () => ({ body: { ...activeAnswer, iss: `${issuerId}/` } })
    await rejectsWith(client().introspect('opaque-iss', {}, start), 'GW_TOKEN_INVALID')
    server.introspect = () => ({ body: { ...activeAnswer, aud: 'https://other.example.test' } })
    await rejectsWith(client().introspect('opaque-aud', { audience: audienceId }, start), 'GW_TOKEN_AUDIENCE')
    server.introspect = () => ({ body: { ...activeAnswer, aud: undefined } })
    await rejectsWith(client().introspect('opaque-no-aud', { audience: audienceId }, start), 'GW_TOKEN_AUDIENCE')
    server.introspect = () => ({ body: { ...activeAnswer, exp: startSeconds - 300 } })
    await rejectsWith(client().introspect('opaque-exp', {}, start), 'GW_TOKEN_EXPIRED')
  })

  test('answers are cached until exp, and never past it', async () => {
    server.introspect = () => ({ body: { ...activeAnswer, exp: startSeconds + 30 } })
    const introspection = client()
    await introspection.introspect('opaque-cached', {}, start)
    await introspection.introspect('opaque-cached', {}, start + 20_000)
    assert.equal(server.introspectionCalls.length, 1)
    server.introspect = () => ({ body: { active: false } })
    await rejectsWith(introspection.introspect('opaque-cached', {}, start + 30_000), 'GW_TOKEN_INACTIVE')
    assert.equal(server.introspectionCalls.length, 2)
  })

  test('answers are cached no longer than the TTL (a shorter TTL per call, e.g. for JWT revocation checks)', async () => {
    const introspection = client()
    await introspection.introspect('opaque-ttl', {}, start)
    await introspection.introspect('opaque-ttl', {}, start + 59_000)
    assert.equal(server.introspectionCalls.length, 1)
    await introspection.introspect('opaque-ttl', {}, start + 61_000)
    assert.equal(server.introspectionCalls.length, 2)
    await introspection.introspect('opaque-ttl', { cacheTtlSeconds: 5 }, start + 67_000)
    assert.equal(server.introspectionCalls.length, 3)
    assert.deepEqual(introspection.stats(), { hits: 1, misses: 3, requests: 3 })
  })

  test('concurrent lookups of the same token share one request', async () => {
    const introspection = client()
    const results = await Promise.all(Array.from({ length: 5 }, () => introspection.introspect('opaque-concurrent', {}, start)))
    assert.equal(server.introspectionCalls.length, 1)
    assert.equal(new Set(results).size, 1)
  })

  test('500, a non-JSON answer and garbage are GW_ISSUER_UNAVAILABLE', async () => {
    server.introspect = () => ({ status: 500, body: { error: 'server_error' } })
    await rejectsWith(client().introspect('opaque-500', {}, start), 'GW_ISSUER_UNAVAILABLE')
    server.introspect = () => ({ contentType: 'text/html', body: '<html></html>' })
    await rejectsWith(client().introspect('opaque-html', {}, start), 'GW_ISSUER_UNAVAILABLE')
    server.introspect = () => ({ body: '{"active": tru' })
    await rejectsWith(client().introspect('opaque-garbage', {}, start), 'GW_ISSUER_UNAVAILABLE')
    server.introspect = () => ({ body: { active: 'yes' } })
    await rejectsWith(client().introspect('opaque-not-boolean', {}, start), 'GW_ISSUER_UNAVAILABLE')
  })

  test('an untrusted server certificate or an unreachable endpoint is GW_ISSUER_UNAVAILABLE', async () => {
    await rejectsWith(client({ caPem: pki.untrustedRoot.certPem }).introspect('opaque-untrusted', {}, start), 'GW_ISSUER_UNAVAILABLE')
    assert.equal(server.introspectionCalls.length, 0)
    await rejectsWith(client({ endpoint: 'https://127.0.0.1:1/introspect' }).introspect('opaque-down', {}, start), 'GW_ISSUER_UNAVAILABLE')
  })

  test('configuration mistakes are refused at creation', () => {
    assert.throws(() => client({ endpoint: 'http://127.0.0.1/introspect' }), /https/)
    assert.throws(() => client({ auth: { method: 'private_key_jwt', privateKeyPem: 'x', alg: 'HS256' } }), /not supported/)
  })
})
