import { after, before, beforeEach, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { jwtVerify } from 'jose'
import { createDevPki, type DevPki } from '../../../dev/pki.ts'
import {
  createIntrospectionClient,
  type IntrospectionClient,
  type IntrospectionObserver,
  type IntrospectionSettings,
} from '../../../src/tokens/introspection.ts'
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

function client(overrides: Partial<IntrospectionSettings> = {}, observer?: IntrospectionObserver): IntrospectionClient {
  const created = createIntrospectionClient(
    issuer,
    {
      endpoint: server.introspectionEndpoint,
      clientId: 'gateway',
      auth: { method: 'client_secret_basic', secret: 's3cret:with/odd chars' },
      cacheTtlSeconds: 60,
      caPem: pki.root.certPem,
      ...overrides,
    },
    observer,
  )
  clients.push(created)
  return created
}

const rejectsWith = (promise: Promise<unknown>, code: string) => assert.rejects(promise, (error: { code?: string }) => error.code === code)

/** The endpoint holds every call until released; `arrived(n)` resolves once n calls have come in. */
function holdCalls(answer: unknown = activeAnswer) {
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  const waiters: { count: number; resolve: () => void }[] = []
  server.introspect = async () => {
    for (const waiter of waiters) if (server.introspectionCalls.length >= waiter.count) waiter.resolve()
    await released
    return { body: answer }
  }
  const arrived = (count: number) =>
    new Promise<void>((resolve) => {
      if (server.introspectionCalls.length >= count) resolve()
      else waiters.push({ count, resolve })
    })
  return { release, arrived }
}

function recordingObserver() {
  const seen: string[] = []
  const observer: IntrospectionObserver = {
    called: (name, outcome) => seen.push(`${name} called ${outcome}`),
    cacheHit: (name, answer) => seen.push(`${name} hit ${answer}`),
    refused: (name, reason) => seen.push(`${name} refused ${reason}`),
  }
  return { seen, observer }
}

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
      if (call.form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer')
        return { status: 401, body: { error: 'invalid_client' } }
      try {
        await jwtVerify(call.form.get('client_assertion') ?? '', clientKeys.publicKey, {
          issuer: 'gateway',
          subject: 'gateway',
          audience: issuerId,
          algorithms: ['ES256'],
          requiredClaims: ['jti', 'exp'],
        })
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
    await rejectsWith(
      client({ auth: { method: 'private_key_jwt', privateKeyPem: otherKey, alg: 'ES256' } }).introspect('opaque-pkjwt', {}, start),
      'GW_ISSUER_UNAVAILABLE',
    )
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

  test('an inactive answer is reused by token hash for inactiveCacheTtlSeconds, then asked again; 0 never reuses it', async () => {
    server.introspect = () => ({ body: { active: false } })
    const { seen, observer } = recordingObserver()
    const introspection = client({ inactiveCacheTtlSeconds: 10 }, observer)
    await rejectsWith(introspection.introspect('opaque-gone', {}, start), 'GW_TOKEN_INACTIVE')
    await rejectsWith(introspection.introspect('opaque-gone', {}, start + 9_000), 'GW_TOKEN_INACTIVE')
    assert.equal(server.introspectionCalls.length, 1)
    await rejectsWith(introspection.introspect('opaque-gone', {}, start + 10_000), 'GW_TOKEN_INACTIVE')
    assert.equal(server.introspectionCalls.length, 2)
    assert.deepEqual(seen, ['as called inactive', 'as hit inactive', 'as called inactive'])

    const uncached = client({ inactiveCacheTtlSeconds: 0 })
    await rejectsWith(uncached.introspect('opaque-gone', {}, start), 'GW_TOKEN_INACTIVE')
    await rejectsWith(uncached.introspect('opaque-gone', {}, start), 'GW_TOKEN_INACTIVE')
    assert.equal(server.introspectionCalls.length, 4)
  })

  test('the default caches an inactive answer too, and an active answer is not evicted by a flood of inactive ones', async () => {
    const introspection = client({ cacheSize: 2 })
    await introspection.introspect('opaque-kept', {}, start)
    server.introspect = () => ({ body: { active: false } })
    for (let i = 0; i < 5; i++) await rejectsWith(introspection.introspect(`opaque-flood-${i}`, {}, start), 'GW_TOKEN_INACTIVE')
    await rejectsWith(introspection.introspect('opaque-flood-4', {}, start + 1_000), 'GW_TOKEN_INACTIVE')
    assert.equal(server.introspectionCalls.length, 6)
    const kept = await introspection.introspect('opaque-kept', {}, start + 1_000)
    assert.equal(kept.sub, 'user-1')
    assert.equal(server.introspectionCalls.length, 6)
  })

  test('connections: that many calls reach the endpoint at once', async () => {
    const { release, arrived } = holdCalls()
    const introspection = client({ connections: 6, timeoutMs: 2_000 })
    const calls = Array.from({ length: 6 }, (_, i) => introspection.introspect(`opaque-pool-${i}`, {}, start))
    // Without the setting only the old fixed pool of 4 connections ever reaches the endpoint; the rest time out.
    await Promise.race([arrived(6), Promise.allSettled(calls)])
    assert.equal(server.introspectionCalls.length, 6)
    release()
    await Promise.all(calls)
  })

  test('one client address gets at most maxPendingPerClient calls; its next string is refused without a call, others proceed', async () => {
    const { release, arrived } = holdCalls({ active: false })
    const { seen, observer } = recordingObserver()
    const introspection = client({ maxPendingPerClient: 2, connections: 4 }, observer)
    const flooder = { clientAddress: '198.51.100.7' }
    const held = [introspection.introspect('opaque-flood-a', flooder, start), introspection.introspect('opaque-flood-b', flooder, start)]
    await arrived(2)
    await rejectsWith(introspection.introspect('opaque-flood-c', flooder, start), 'GW_INTROSPECTION_THROTTLED')
    // The same string again joins the call in flight instead of taking another slot.
    const joined = introspection.introspect('opaque-flood-a', flooder, start)
    const other = introspection.introspect('opaque-partner', { clientAddress: '192.0.2.10' }, start)
    await arrived(3)
    release()
    const settled = await Promise.allSettled([...held, joined, other])
    assert.deepEqual(
      settled.map((result) => result.status === 'rejected' && (result.reason as { code?: string }).code),
      Array(4).fill('GW_TOKEN_INACTIVE'),
    )
    assert.equal(server.introspectionCalls.length, 3)
    assert.deepEqual(
      server.introspectionCalls.map((call) => call.form.get('token')),
      ['opaque-flood-a', 'opaque-flood-b', 'opaque-partner'],
    )
    assert.ok(seen.includes('as refused client_limit'))
  })

  test('when every connection is busy and the queue is full, a call is refused at once with GW_INTROSPECTION_BUSY', async () => {
    const { release, arrived } = holdCalls()
    const introspection = client({ connections: 1, maxQueued: 1 })
    const first = introspection.introspect('opaque-busy-1', {}, start)
    await arrived(1)
    const queued = introspection.introspect('opaque-busy-2', {}, start)
    await rejectsWith(introspection.introspect('opaque-busy-3', {}, start), 'GW_INTROSPECTION_BUSY')
    release()
    await Promise.all([first, queued])
    assert.equal(server.introspectionCalls.length, 2)
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
