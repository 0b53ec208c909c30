// `workers: 2`: both workers serve the partner port, the primary aggregates metrics and
// readiness, replay detection holds across workers, and a dead worker is replaced.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { setTimeout as delay } from 'node:timers/promises'
import { createPartnerClient, createProof, generateDpopKey, type PartnerClient } from '../../src/client/partner-client.ts'
import { MAIN, revokeThroughAdmin, spawnGateway, waitForReady, type GatewayProcess } from '../support/gateway-process.ts'
import { certThumbprint, startTestGateway, testPki, type TestGateway } from '../support/gateway.ts'
import { startRedisServer, type RedisServer } from '../support/redis.ts'

const PUBLIC_BASE_URL = 'https://api.bank.example'

function workerPids(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
}

describe('several workers (node:cluster)', () => {
  let redis: RedisServer
  let env: TestGateway
  let gateway: GatewayProcess
  let client: PartnerClient

  before(async () => {
    redis = await startRedisServer()
    env = await startTestGateway({ config: { listener: { publicBaseUrl: PUBLIC_BASE_URL }, replay: { store: 'redis', redis: { url: redis.url } } } })
    gateway = await spawnGateway(env.configFile, { FAPI_GATEWAY__WORKERS: '2' })
    client = createPartnerClient({ baseUrl: `https://127.0.0.1:${gateway.port}`, caPem: (await testPki()).root.certPem })
  })
  after(async () => {
    await client?.close()
    await gateway?.stop()
    await env?.close()
    await redis?.close()
  })

  it('runs two workers and reports readiness for both', async () => {
    assert.equal(workerPids(gateway.child.pid!).length, 2)
    const ready = await fetch(`http://127.0.0.1:${gateway.adminPort}/readyz`)
    const body = (await ready.json()) as { checks: Record<string, boolean> }
    assert.equal(ready.status, 200)
    assert.deepEqual(body.checks, { workers: true, replay_store: true, issuer_keys: true, 'upstream:data-api': true })
  })

  it('accepts a proof exactly once across workers, and the metrics count every worker', async () => {
    const key = await generateDpopKey('ES256')
    const token = await env.issuer.mint({ jkt: key.jkt })
    const proof = await createProof(key, { htm: 'GET', htu: `${PUBLIC_BASE_URL}/accounts/1`, accessToken: token })
    const clients = Array.from({ length: 8 }, () => createPartnerClient({ baseUrl: `https://127.0.0.1:${gateway.port}`, caPem: env.pki.root.certPem }))
    try {
      const responses = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          clients[i % clients.length]!.send('GET', '/accounts/1', [
            ['authorization', `DPoP ${token}`],
            ['dpop', proof],
          ]),
        ),
      )
      assert.equal(responses.filter((r) => r.status === 200).length, 1)
      assert.equal(responses.filter((r) => r.json?.code === 'GW_DPOP_REPLAY').length, 39)
    } finally {
      await Promise.all(clients.map((c) => c.close()))
    }
    const metrics = await (await fetch(`http://127.0.0.1:${gateway.adminPort}/metrics`)).text()
    const refused = /fapi_gateway_refusals_total\{route="accounts-read",reason="GW_DPOP_REPLAY"\} (\d+)/.exec(metrics)
    assert.equal(Number(refused?.[1]), 39, 'refusals summed over both workers')
  })

  it('replaces a worker that dies, and keeps serving', async () => {
    const [victim] = workerPids(gateway.child.pid!)
    process.kill(victim!, 'SIGKILL')
    // A connection the primary hands to a worker in the instant it dies is lost (node:cluster);
    // partners retry. Wait until the primary has noticed, then check service never stopped.
    const deadline = Date.now() + 10_000
    while (workerPids(gateway.child.pid!).includes(victim!)) {
      assert.ok(Date.now() < deadline, 'the primary noticed the dead worker')
      await delay(20)
    }
    const fresh = createPartnerClient({ baseUrl: `https://127.0.0.1:${gateway.port}`, caPem: env.pki.root.certPem })
    try {
      const key = await generateDpopKey('ES256')
      const token = await env.issuer.mint({ jkt: key.jkt })
      for (let i = 0; i < 5; i++) {
        const proof = await createProof(key, { htm: 'GET', htu: `${PUBLIC_BASE_URL}/accounts/1`, accessToken: token })
        assert.equal(
          (
            await fresh.send('GET', '/accounts/1', [
              ['authorization', `DPoP ${token}`],
              ['dpop', proof],
            ])
          ).status,
          200,
        )
      }
    } finally {
      await fresh.close()
    }
    while (workerPids(gateway.child.pid!).length !== 2) {
      assert.ok(Date.now() < deadline, 'a new worker was started')
      await delay(100)
    }
    await waitForReady(gateway.adminPort)
  })

  it("with replay.revocationMirror, a revocation made through the primary reaches every worker's mirror", async () => {
    const mirrored = await spawnGateway(env.configFile, {
      FAPI_GATEWAY__WORKERS: '2',
      FAPI_GATEWAY__REPLAY__REVOCATION_MIRROR__ENABLED: 'true',
      FAPI_GATEWAY__REPLAY__REVOCATION_MIRROR__MAX_STALENESS_MS: '1500',
      FAPI_GATEWAY_ADMIN_TOKEN: 'admin-secret',
    })
    const pki = await testPki()
    const identity = { certPem: pki.partnerA.certPem.trimEnd() + '\n' + pki.intermediate.certPem, keyPem: pki.partnerA.keyPem }
    // Several connections, so that both workers get some of them.
    const clients = Array.from({ length: 8 }, () => createPartnerClient({ baseUrl: `https://127.0.0.1:${mirrored.port}`, caPem: pki.root.certPem, identity }))
    const metric = async (pattern: RegExp) =>
      Number(pattern.exec(await (await fetch(`http://127.0.0.1:${mirrored.adminPort}/metrics`)).text())?.[1] ?? Number.NaN)
    try {
      const deadline = Date.now() + 10_000
      while ((await metric(/fapi_gateway_dependency_up\{dependency="revocation_mirror"\} (\d+)/)) !== 2) {
        assert.ok(Date.now() < deadline, "both workers' mirrors became current")
        await delay(20)
      }
      const revoked = await env.issuer.mint({ x5t: certThumbprint(pki.partnerA) })
      const kept = await env.issuer.mint({ x5t: certThumbprint(pki.partnerA) })
      assert.equal(await revokeThroughAdmin(mirrored.adminPort, revoked), 201)
      await delay(1500) // replay.revocationMirror.maxStalenessMs: the bound, not a guess at the speed
      const refused = await Promise.all(clients.map((c) => c.send('GET', '/accounts/1', [['authorization', `Bearer ${revoked}`]])))
      assert.deepEqual(
        refused.map((r) => r.json?.code),
        clients.map(() => 'GW_TOKEN_REVOKED'),
      )
      const passed = await Promise.all(clients.map((c) => c.send('GET', '/accounts/1', [['authorization', `Bearer ${kept}`]])))
      assert.deepEqual(
        passed.map((r) => r.status),
        clients.map(() => 200),
      )
      assert.ok((await metric(/fapi_gateway_cache_lookups_total\{cache="revocation_mirror",result="hit"\} (\d+)/)) >= 16)
    } finally {
      await Promise.all(clients.map((c) => c.close()))
      await mirrored.stop()
    }
  })

  it('refuses at start-up to share the in-memory replay store between workers', () => {
    const result = spawnSync(process.execPath, [MAIN, 'check-config', '--config', env.configFile], {
      env: { ...process.env, FAPI_GATEWAY__WORKERS: '2', FAPI_GATEWAY__REPLAY__STORE: 'memory' },
      encoding: 'utf8',
    })
    assert.equal(result.status, 1)
    assert.match(result.stderr, /replay\.store: "memory" cannot be shared by 2 workers/)
  })
})
