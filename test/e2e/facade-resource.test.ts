// Resource requests for an issuer behind the authorization-server façade, through a real gateway with a real
// redis-server: the token comes from the development issuer without a binding (as a legacy server issues it), its
// binding record is written into the same Redis with createBindingRegistry, as the token endpoint will write it.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { accessTokenHash, createProof, generateDpopKey, type DpopKey, type PartnerClient } from '../../src/client/partner-client.ts'
import { createRedisReplayStore } from '../../src/replay/redis-store.ts'
import type { ReplayStore } from '../../src/replay/store.ts'
import { createBindingRegistry, type BindingRecord, type BindingRegistry } from '../../src/tokens/binding-registry.ts'
import { createRevokedTokenList } from '../../src/tokens/revoked-tokens.ts'
import type { FacadeValidation } from '../../src/types.ts'
import type { DevIssuer } from '../../dev/issuer.ts'
import { certThumbprint, startTestGateway, type TestGateway } from '../support/gateway.ts'
import { startRedisServer, waitUntil, watchRedisCommands, type RedisServer } from '../support/redis.ts'

const PUBLIC_BASE_URL = 'https://api.bank.example'
const INTROSPECTION_SECRET_ENV = 'FAPIGW_TEST_INTROSPECTION_SECRET'

let redis: RedisServer
let store: ReplayStore
let registry: BindingRegistry

before(async () => {
  redis = await startRedisServer()
  store = createRedisReplayStore({ mode: 'single', url: redis.url, maxReconnectDelayMs: 100 })
  await waitUntil(() => store.ready(), 'the recording store to connect')
  registry = createBindingRegistry(store)
})
after(async () => {
  await store?.close()
  await redis?.close()
})

/** The dev issuer as a legacy server behind the façade, named 'dev' like the issuer the policies accept. */
function facadeGateway(validate: FacadeValidation): Promise<TestGateway> {
  return startTestGateway({
    env: { [INTROSPECTION_SECRET_ENV]: 'dev-introspection-secret' },
    config: (issuer: DevIssuer) => ({
      listener: { publicBaseUrl: PUBLIC_BASE_URL },
      replay: { store: 'redis', redis: { url: redis.url } },
      issuers: [
        {
          name: 'dev',
          issuer: issuer.issuer,
          audience: PUBLIC_BASE_URL,
          caFile: 'client-ca.crt',
          // A legacy server's JWTs need not be RFC 9068 ones.
          requireTyp: false,
          ...(validate === 'jwks' && { jwksUri: issuer.jwksUri }),
          ...(validate === 'introspection' && {
            introspection: {
              endpoint: issuer.introspectionUri,
              clientId: 'fapi-gateway',
              auth: { method: 'client_secret_basic', secretEnv: INTROSPECTION_SECRET_ENV },
            },
          }),
          facade: { validate },
        },
      ],
    }),
  })
}

function record(binding: { jkt?: string; x5t?: string }, overrides: Partial<BindingRecord> = {}): BindingRecord {
  const now = Math.floor(Date.now() / 1000)
  return {
    kind: 'access_token',
    issuerName: 'dev',
    clientId: 'partner-a',
    legacyClientId: 'legacy-shared',
    ...binding,
    scope: 'accounts:read',
    issuedAt: now,
    expiresAt: now + 300,
    ...overrides,
  }
}

async function dpopRequest(client: PartnerClient, key: DpopKey, token: string) {
  const proof = await createProof(key, { htm: 'GET', htu: `${PUBLIC_BASE_URL}/accounts/1`, accessToken: token })
  return client.send('GET', '/accounts/1', [
    ['authorization', `DPoP ${token}`],
    ['dpop', proof],
  ])
}

function bearerRequest(client: PartnerClient, token: string) {
  return client.send('GET', '/accounts/1', [['authorization', `Bearer ${token}`]])
}

describe('façade issuer validated by its JWKS (legacy JWTs without cnf)', () => {
  let gw: TestGateway
  let key: DpopKey
  before(async () => {
    gw = await facadeGateway('jwks')
    key = await generateDpopKey('ES256')
  })
  after(() => gw?.close())

  const legacyJwt = () => gw.issuer.mint({ typ: 'JWT' })

  it('a DPoP-bound record and a proof by its key: 200, reaching the upstream', async () => {
    const token = await legacyJwt()
    await registry.record(accessTokenHash(token), record({ jkt: key.jkt }), 60_000)
    const before = gw.upstream.received.length
    const response = await dpopRequest(gw.client(), key, token)
    assert.equal(response.status, 200, response.body)
    assert.equal(gw.upstream.received.length - before, 1)
  })

  it('a proof by another key: 401 GW_DPOP_BINDING_MISMATCH; Bearer use: 401 GW_TOKEN_DOWNGRADE; the upstream sees nothing', async () => {
    const token = await legacyJwt()
    await registry.record(accessTokenHash(token), record({ jkt: key.jkt }), 60_000)
    const before = gw.upstream.received.length
    const other = await dpopRequest(gw.client(), await generateDpopKey('ES256'), token)
    assert.equal(other.status, 401)
    assert.deepEqual([other.json?.error, other.json?.code], ['invalid_token', 'GW_DPOP_BINDING_MISMATCH'])
    const bearer = await bearerRequest(gw.client(), token)
    assert.equal(bearer.status, 401)
    assert.equal(bearer.json?.code, 'GW_TOKEN_DOWNGRADE')
    assert.equal(gw.upstream.received.length, before)
  })

  it('a token the legacy server issued directly (it verifies against the JWKS, but has no record): 401 invalid_token, the upstream sees nothing', async () => {
    const token = await legacyJwt()
    const before = gw.upstream.received.length
    for (const response of [await dpopRequest(gw.client(), key, token), await bearerRequest(gw.client(gw.pki.partnerA), token)]) {
      assert.equal(response.status, 401)
      assert.deepEqual([response.json?.error, response.json?.code], ['invalid_token', 'GW_TOKEN_UNREGISTERED'])
      assert.match(String(response.headers['www-authenticate']), /error="invalid_token"/)
    }
    assert.equal(gw.upstream.received.length, before)
  })

  it('a certificate-bound record: its certificate passes, another is 401 GW_CERT_BINDING_MISMATCH', async () => {
    const token = await legacyJwt()
    await registry.record(accessTokenHash(token), record({ x5t: certThumbprint(gw.pki.partnerA) }), 60_000)
    const before = gw.upstream.received.length
    const right = await bearerRequest(gw.client(gw.pki.partnerA), token)
    assert.equal(right.status, 200, right.body)
    const other = await bearerRequest(gw.client(gw.pki.partnerB), token)
    assert.equal(other.status, 401)
    assert.equal(other.json?.code, 'GW_CERT_BINDING_MISMATCH')
    assert.equal(gw.upstream.received.length - before, 1)
  })

  it('a revoked token is refused at once, on both paths', async () => {
    const dpopToken = await legacyJwt()
    const certToken = await legacyJwt()
    await registry.record(accessTokenHash(dpopToken), record({ jkt: key.jkt }), 60_000)
    await registry.record(accessTokenHash(certToken), record({ x5t: certThumbprint(gw.pki.partnerA) }), 60_000)
    assert.equal((await dpopRequest(gw.client(), key, dpopToken)).status, 200)
    const revoked = createRevokedTokenList(store)
    await revoked.revoke(accessTokenHash(dpopToken), 60_000)
    await revoked.revoke(accessTokenHash(certToken), 60_000)
    const dpop = await dpopRequest(gw.client(), key, dpopToken)
    assert.deepEqual([dpop.status, dpop.json?.code], [401, 'GW_TOKEN_REVOKED'])
    const cert = await bearerRequest(gw.client(gw.pki.partnerA), certToken)
    assert.deepEqual([cert.status, cert.json?.code], [401, 'GW_TOKEN_REVOKED'])
  })

  it('a DPoP request on a registry-bound token costs one command to Redis', async () => {
    const token = await legacyJwt()
    await registry.record(accessTokenHash(token), record({ jkt: key.jkt }), 60_000)
    const client = gw.client()
    // The first request loads the script (EVALSHA, NOSCRIPT, EVAL) if no earlier one did.
    assert.equal((await dpopRequest(client, key, token)).status, 200)
    const watch = await watchRedisCommands(redis.url)
    try {
      await watch.take()
      const response = await dpopRequest(client, key, token)
      assert.equal(response.status, 200, response.body)
      const commands = await watch.take()
      assert.deepEqual(
        commands.map((args) => args[0]?.toLowerCase()),
        ['evalsha'],
        JSON.stringify(commands.map((args) => args.slice(0, 1))),
      )
      assert.equal(commands[0]![2], '3', 'three keys: revoked, record, jti claim')
      assert.ok(
        commands[0]!.slice(3, 6).every((k) => k.includes(`{${accessTokenHash(token)}}`)),
        'one hash tag',
      )
    } finally {
      await watch.stop()
    }
  })
})

describe('façade issuer validated by introspection', () => {
  let gw: TestGateway
  let key: DpopKey
  before(async () => {
    gw = await facadeGateway('introspection')
    key = await generateDpopKey('ES256')
  })
  after(() => gw?.close())

  function activeOpaque(): string {
    const token = randomBytes(32).toString('base64url')
    const now = Math.floor(Date.now() / 1000)
    gw.issuer.registerOpaque(token, { active: true, iss: gw.issuer.issuer, aud: PUBLIC_BASE_URL, scope: 'accounts:read', exp: now + 300, token_type: 'Bearer' })
    return token
  }

  it('an active token with a DPoP-bound record: 200', async () => {
    const token = activeOpaque()
    await registry.record(accessTokenHash(token), record({ jkt: key.jkt }), 60_000)
    const response = await dpopRequest(gw.client(), key, token)
    assert.equal(response.status, 200, response.body)
  })

  it('a token the legacy server calls active but the gateway never recorded: 401 GW_TOKEN_UNREGISTERED', async () => {
    const before = gw.upstream.received.length
    const response = await dpopRequest(gw.client(), key, activeOpaque())
    assert.deepEqual([response.status, response.json?.code], [401, 'GW_TOKEN_UNREGISTERED'])
    assert.equal(gw.upstream.received.length, before)
  })

  it('a recorded token the legacy server no longer calls active: 401', async () => {
    const token = randomBytes(32).toString('base64url')
    await registry.record(accessTokenHash(token), record({ jkt: key.jkt }), 60_000)
    const response = await dpopRequest(gw.client(), key, token)
    assert.equal(response.status, 401)
    assert.equal(response.json?.error, 'invalid_token')
  })
})

describe('façade issuer validated by the record alone', () => {
  let gw: TestGateway
  let key: DpopKey
  before(async () => {
    gw = await facadeGateway('registry')
    key = await generateDpopKey('ES256')
  })
  after(() => gw?.close())

  it('an opaque random token and its record: 200 with DPoP and with the recorded certificate; without a record: 401', async () => {
    const dpopToken = randomBytes(32).toString('base64url')
    const certToken = randomBytes(32).toString('base64url')
    await registry.record(accessTokenHash(dpopToken), record({ jkt: key.jkt }), 60_000)
    await registry.record(accessTokenHash(certToken), record({ x5t: certThumbprint(gw.pki.partnerA) }), 60_000)
    const dpop = await dpopRequest(gw.client(), key, dpopToken)
    assert.equal(dpop.status, 200, dpop.body)
    const cert = await bearerRequest(gw.client(gw.pki.partnerA), certToken)
    assert.equal(cert.status, 200, cert.body)
    const before = gw.upstream.received.length
    const unknown = await dpopRequest(gw.client(), key, randomBytes(32).toString('base64url'))
    assert.deepEqual([unknown.status, unknown.json?.code], [401, 'GW_TOKEN_UNREGISTERED'])
    assert.equal(gw.upstream.received.length, before)
  })

  it("the record's scope decides: a record without accounts:read is 403 insufficient_scope; an expired record is 401", async () => {
    const narrow = randomBytes(32).toString('base64url')
    await registry.record(accessTokenHash(narrow), record({ jkt: key.jkt }, { scope: 'payments:write' }), 60_000)
    const refused = await dpopRequest(gw.client(), key, narrow)
    assert.deepEqual([refused.status, refused.json?.error], [403, 'insufficient_scope'])
    const expired = randomBytes(32).toString('base64url')
    const past = Math.floor(Date.now() / 1000) - 5
    await registry.record(accessTokenHash(expired), record({ jkt: key.jkt }, { issuedAt: past - 300, expiresAt: past }), 60_000)
    const response = await dpopRequest(gw.client(), key, expired)
    assert.deepEqual([response.status, response.json?.code], [401, 'GW_TOKEN_EXPIRED'])
  })
})
