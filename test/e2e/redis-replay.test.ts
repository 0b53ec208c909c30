// Replay detection across replicas and Redis failures, with a real redis-server and real
// gateway processes: the same proof is accepted exactly once, and a Redis that cannot
// answer means 503 and nothing forwarded, never an accepted replay.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import { createProof, generateDpopKey, type DpopKey } from '../../src/client/partner-client.ts'
import { createPartnerClient } from '../../src/client/partner-client.ts'
import { revokeThroughAdmin, spawnGateway, waitForReady } from '../support/gateway-process.ts'
import { certThumbprint, startTestGateway, testPki, type TestGateway } from '../support/gateway.ts'
import { redisCli, startRedisServer, type RedisServer } from '../support/redis.ts'

const PUBLIC_BASE_URL = 'https://api.bank.example'
/** replay.revocationMirror.maxStalenessMs where a test uses the mirror: roomy, for busy test machines. */
const STALENESS_MS = 1500

describe('replay detection in Redis', () => {
  let redis: RedisServer
  let gw: TestGateway
  let key: DpopKey
  let token: string

  before(async () => {
    redis = await startRedisServer()
    gw = await startTestGateway({
      config: {
        listener: { publicBaseUrl: PUBLIC_BASE_URL },
        replay: { store: 'redis', redis: { url: redis.url }, commandTimeoutMs: 300 },
      },
    })
    key = await generateDpopKey('ES256')
    token = await gw.issuer.mint({ jkt: key.jkt })
  })
  after(async () => {
    await gw?.close()
    await redis?.close()
  })

  const proofFor = (jti?: string) => createProof(key, { htm: 'GET', htu: `${PUBLIC_BASE_URL}/accounts/1`, accessToken: token, jti })

  it('accepts the same proof exactly once across two gateway processes sharing one Redis', async () => {
    const [a, b] = await Promise.all([spawnGateway(gw.configFile), spawnGateway(gw.configFile)])
    const pki = await testPki()
    const clients = [a, b].map((g) => createPartnerClient({ baseUrl: `https://127.0.0.1:${g.port}`, caPem: pki.root.certPem }))
    try {
      const before = gw.upstream.received.length
      const proof = await proofFor()
      const responses = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          clients[i % 2]!.send('GET', '/accounts/1', [
            ['authorization', `DPoP ${token}`],
            ['dpop', proof],
          ]),
        ),
      )
      const statuses = responses.map((r) => r.status)
      assert.equal(statuses.filter((s) => s === 200).length, 1, `statuses: ${statuses.join(',')}`)
      assert.equal(responses.filter((r) => r.status === 401 && r.json?.code === 'GW_DPOP_REPLAY').length, 49)
      assert.equal(gw.upstream.received.length - before, 1, 'the upstream saw the request once')
    } finally {
      await Promise.all(clients.map((c) => c.close()))
      await Promise.all([a.stop(), b.stop()])
    }
  })

  it('remembers a jti in Redis for maxAgeSeconds + 3 x maxFutureSeconds + 1 s (replica clocks may be off by maxFutureSeconds)', async () => {
    const response = await gw.client().send('GET', '/accounts/1', [
      ['authorization', `DPoP ${token}`],
      ['dpop', await proofFor('ttl-probe')],
    ])
    assert.equal(response.status, 200, response.body)
    const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url')
    const pttl = Number(await redisCli(redis.port, 'PTTL', `fapigw:dpop:{${sha256(token)}}:${key.jkt}:${sha256('ttl-probe')}`))
    // Defaults: maxAgeSeconds 60, maxFutureSeconds 10. Without the skew the key lived 71 s.
    assert.ok(pttl > 71_000 && pttl <= 91_000, `PTTL ${pttl}`)
  })

  it('refuses with 503 while Redis is down, forwards nothing, and resumes when it returns', async () => {
    const client = gw.client()
    const send = async () =>
      client.send('GET', '/accounts/1', [
        ['authorization', `DPoP ${token}`],
        ['dpop', await proofFor()],
      ])
    assert.equal((await send()).status, 200)

    await redis.stop()
    const before = gw.upstream.received.length
    for (let i = 0; i < 5; i++) {
      const response = await send()
      assert.equal(response.status, 503)
      assert.equal(response.json?.code, 'GW_REPLAY_STORE_UNAVAILABLE')
    }
    assert.equal(gw.upstream.received.length, before, 'nothing reached the upstream while Redis was down')
    await waitForReady(gw.gateway.adminPort, 503)
    assert.ok(
      gw.log
        .events()
        .some((e) => e.event.action === 'dependency.unavailable' && e.event.reason === 'GW_REPLAY_STORE_UNAVAILABLE' && e.fapi?.dependency === 'replay_store'),
    )

    await redis.start()
    await waitForReady(gw.gateway.adminPort, 200)
    assert.equal((await send()).status, 200, 'service resumed without a restart')
  })

  it('refuses with 503 while Redis hangs (redis-cli CLIENT PAUSE), then resumes', async () => {
    const client = gw.client()
    const send = async () =>
      client.send('GET', '/accounts/1', [
        ['authorization', `DPoP ${token}`],
        ['dpop', await proofFor()],
      ])
    assert.equal((await send()).status, 200)
    await redisCli(redis.port, 'client', 'pause', '2500', 'ALL')
    const before = gw.upstream.received.length
    const response = await send()
    assert.equal(response.status, 503)
    assert.equal(response.json?.code, 'GW_REPLAY_STORE_UNAVAILABLE')
    assert.equal(gw.upstream.received.length, before)
    await delay(2600)
    assert.equal((await send()).status, 200)
  })

  it('shares the revoked-token list between replicas through Redis', async () => {
    const adminGateway = await startTestGateway({
      env: { FAPI_GATEWAY_ADMIN_TOKEN: 'admin-secret' },
      config: { listener: { publicBaseUrl: PUBLIC_BASE_URL }, replay: { store: 'redis', redis: { url: redis.url } } },
    })
    try {
      await waitForReady(adminGateway.gateway.adminPort)
      const revoked = await gw.issuer.mint({ jkt: key.jkt })
      assert.equal(await revokeThroughAdmin(adminGateway.gateway.adminPort, revoked), 201)
      const proof = await createProof(key, { htm: 'GET', htu: `${PUBLIC_BASE_URL}/accounts/1`, accessToken: revoked })
      const refused = await gw.client().send('GET', '/accounts/1', [
        ['authorization', `DPoP ${revoked}`],
        ['dpop', proof],
      ])
      assert.equal(refused.status, 401)
      assert.equal(refused.json?.code, 'GW_TOKEN_REVOKED')
    } finally {
      await adminGateway.close()
    }
  })

  it('with replay.revocationMirror, a revocation made on one replica is refused by another within maxStalenessMs, without a Redis lookup per request, and Redis down still means 503', async () => {
    const replay = { store: 'redis', redis: { url: redis.url }, commandTimeoutMs: 300, revocationMirror: { enabled: true, maxStalenessMs: STALENESS_MS } }
    const adminGateway = await startTestGateway({
      env: { FAPI_GATEWAY_ADMIN_TOKEN: 'admin-secret' },
      config: { listener: { publicBaseUrl: PUBLIC_BASE_URL }, replay },
    })
    const mirrored = await startTestGateway({ config: { listener: { publicBaseUrl: PUBLIC_BASE_URL }, replay } })
    const metric = async (pattern: RegExp) =>
      Number(pattern.exec(await (await fetch(`http://127.0.0.1:${mirrored.gateway.adminPort}/metrics`)).text())?.[1] ?? Number.NaN)
    try {
      await Promise.all([waitForReady(adminGateway.gateway.adminPort), waitForReady(mirrored.gateway.adminPort)])
      const pki = await testPki()
      const client = mirrored.client(pki.partnerA)
      const send = (token: string) => client.send('GET', '/accounts/1', [['authorization', `Bearer ${token}`]])
      const kept = await mirrored.issuer.mint({ x5t: certThumbprint(pki.partnerA) })
      const revoked = await mirrored.issuer.mint({ x5t: certThumbprint(pki.partnerA) })
      const deadline = Date.now() + 10_000
      while ((await metric(/fapi_gateway_dependency_up\{dependency="revocation_mirror"\} (\d)/)) !== 1 && Date.now() < deadline) await delay(20)
      assert.equal((await send(revoked)).status, 200)

      assert.equal(await revokeThroughAdmin(adminGateway.gateway.adminPort, revoked), 201)
      await delay(STALENESS_MS) // the bound, not a guess at the speed
      const exists = async () => Number(/cmdstat_exists:calls=(\d+)/.exec(await redisCli(redis.port, 'info', 'commandstats'))?.[1] ?? 0)
      const existsBefore = await exists()
      const refused = await send(revoked)
      assert.equal(refused.status, 401)
      assert.equal(refused.json?.code, 'GW_TOKEN_REVOKED')
      assert.equal((await send(kept)).status, 200)
      assert.equal(await exists(), existsBefore, 'answered from the mirror')
      assert.ok((await metric(/fapi_gateway_cache_lookups_total\{cache="revocation_mirror",result="hit"\} (\d+)/)) >= 2)

      await redis.stop()
      try {
        await delay(STALENESS_MS)
        const unavailable = await send(kept)
        assert.equal(unavailable.status, 503)
        assert.equal(unavailable.json?.code, 'GW_REPLAY_STORE_UNAVAILABLE')
        assert.equal(await metric(/fapi_gateway_dependency_up\{dependency="revocation_mirror"\} (\d)/), 0)
      } finally {
        await redis.start()
      }
    } finally {
      await Promise.all([adminGateway.close(), mirrored.close()])
    }
  })
})
