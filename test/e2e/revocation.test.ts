// Client-certificate revocation through the real gateway over TLS: a CA kept with the
// OpenSSL command line and its `openssl ocsp` responder process, a revoked certificate
// refused with GW_CLIENT_CERT_REVOKED, the responder stopped under hard- and soft-fail,
// the operator deny list reloaded while running, and load-balancer mode.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { stringify } from 'yaml'
import { challengeError, createPartnerClient, createProof, generateDpopKey, type PartnerClient, type PartnerResponse } from '../../src/client/partner-client.ts'
import { startTestGateway, testPki, type TestGateway } from '../support/gateway.ts'
import { createOpensslCa, type OpensslCa, type OpensslIssued, type OpensslOcspResponder } from '../support/openssl-ca.ts'
import { findFreePort } from '../support/ports.ts'

const HOUR = 3_600_000

function thumbprint(issued: OpensslIssued): string {
  const der = Buffer.from(issued.certPem.replace(/-----[^-]+-----|\s+/g, ''), 'base64')
  return createHash('sha256').update(der).digest('base64url')
}

/** A counting HTTP proxy in front of the OCSP responder, holding each answer back a little so requests overlap. */
async function startCountingProxy(target: () => string): Promise<{ url: string; count: number; server: Server }> {
  const state = { count: 0 }
  const server = createServer((req, res) => {
    state.count++
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      void (async () => {
        await delay(300)
        try {
          const answer = await fetch(target(), { method: 'POST', body: Buffer.concat(chunks), headers: { 'content-type': 'application/ocsp-request' } })
          res.writeHead(answer.status, { 'content-type': 'application/ocsp-response' }).end(Buffer.from(await answer.arrayBuffer()))
        } catch {
          res.writeHead(502).end()
        }
      })()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    get count() {
      return state.count
    },
    server,
  }
}

function writePolicies(dir: string): string {
  const policies = join(dir, 'policies')
  mkdirSync(policies, { recursive: true })
  writeFileSync(
    join(policies, 'routes.yaml'),
    stringify({
      routes: [
        { name: 'accounts-read', path: '/accounts/**', methods: ['GET'], upstream: 'data-api', scopes: ['accounts:read'], binding: 'dpop-or-mtls' },
        // Same CA policy, but this route keeps serving on a recent good status while the responder is down.
        {
          name: 'accounts-soft',
          path: '/soft/**',
          methods: ['GET'],
          upstream: 'data-api',
          scopes: ['accounts:read'],
          binding: 'mtls',
          revocation: { onUnavailable: 'soft-fail', maxStalenessSeconds: 3600 },
        },
      ],
    }),
  )
  return policies
}

describe('client-certificate revocation end to end', () => {
  let dir: string
  let ca: OpensslCa
  let responder: OpensslOcspResponder | undefined
  let good: OpensslIssued
  let revoked: OpensslIssued
  let neverSeen: OpensslIssued
  let burst: OpensslIssued
  let proxy: Awaited<ReturnType<typeof startCountingProxy>>
  let gw: TestGateway
  const clock = { offset: 0 }
  const clients: PartnerClient[] = []

  before(async () => {
    const pki = await testPki()
    dir = mkdtempSync(join(tmpdir(), 'revocation-e2e-'))
    ca = await createOpensslCa(join(dir, 'openssl-ca'), { name: 'E2E Partner CA', plannedOcspPort: await findFreePort() })
    good = await ca.issue('partner-good', { ocspUrl: ca.ocspUrl })
    revoked = await ca.issue('partner-revoked', { ocspUrl: ca.ocspUrl })
    neverSeen = await ca.issue('partner-never-seen', { ocspUrl: ca.ocspUrl })
    burst = await ca.issue('partner-burst', { ocspUrl: ca.ocspUrl })
    await ca.revoke(revoked)
    responder = await ca.startOcspResponder({ nextUpdateMinutes: 5 })
    proxy = await startCountingProxy(() => ca.ocspUrl)
    // The client CA bundle: the development root and the OpenSSL CA.
    writeFileSync(join(dir, 'partner-roots.pem'), pki.root.certPem.trim() + '\n' + ca.certPem)
    writeFileSync(join(dir, 'deny-list.yaml'), 'thumbprints: []\n')
    gw = await startTestGateway({
      dir,
      policiesDir: writePolicies(dir),
      gateway: { clock: () => Date.now() + clock.offset },
      config: {
        listener: {
          tls: {
            certFile: 'server-chain.crt',
            keyFile: 'server.key',
            clientCaFile: 'partner-roots.pem',
            clientIntermediatesFile: 'client-intermediates.crt',
            clientCertificate: 'request',
          },
        },
        revocation: {
          default: { sources: [] },
          // Through the counting proxy (the certificates' AIA names the responder itself).
          cas: [{ name: 'e2e-partner-ca', caFile: 'openssl-ca/ca.crt', sources: ['ocsp'], onUnavailable: 'hard-fail', ocsp: { url: proxy.url } }],
          denyListFile: 'deny-list.yaml',
          denyListPollSeconds: 1,
        },
      },
    })
  })
  after(async () => {
    await Promise.allSettled(clients.map((c) => c.close()))
    await gw?.close()
    await responder?.stop()
    proxy?.server.closeAllConnections()
    await new Promise((resolve) => proxy?.server.close(resolve))
    rmSync(dir, { recursive: true, force: true })
  })

  async function client(issued: OpensslIssued): Promise<PartnerClient> {
    const c = createPartnerClient({ baseUrl: gw.baseUrl, caPem: (await testPki()).root.certPem, identity: { certPem: issued.certPem, keyPem: issued.keyPem } })
    clients.push(c)
    return c
  }

  async function call(issued: OpensslIssued, path = '/accounts/1'): Promise<PartnerResponse> {
    // Bound to the certificate, valid long enough for the clock jumps below.
    const token = await gw.issuer.mint({ x5t: thumbprint(issued), expiresInSeconds: 6 * 3600 })
    return (await client(issued)).send('GET', path, [['authorization', `Bearer ${token}`]])
  }

  it('passes a good certificate checked at the openssl ocsp responder', async () => {
    const response = await call(good)
    assert.equal(response.status, 200, response.body)
  })

  it('refuses a certificate revoked with openssl ca -revoke: 401 GW_CLIENT_CERT_REVOKED and a cert.revoked event', async () => {
    const before = gw.upstream.received.length
    const response = await call(revoked)
    assert.equal(response.status, 401)
    assert.equal(response.json?.code, 'GW_CLIENT_CERT_REVOKED')
    assert.equal(challengeError(response, 'Bearer'), 'invalid_token')
    assert.equal(gw.upstream.received.length, before)
    const event = gw.log.events().find((e) => e.event.action === 'cert.revoked')
    assert.ok(event, 'cert.revoked event')
    assert.equal(event.event.reason, 'GW_CLIENT_CERT_REVOKED')
    assert.match(event.message, new RegExp(`serial ${revoked.serial.toLowerCase().replace(/^0+/, '')}`))
  })

  it('asks the responder once for 12 concurrent requests with a fresh certificate', async () => {
    const token = await gw.issuer.mint({ x5t: thumbprint(burst), expiresInSeconds: 6 * 3600 })
    const partner = await client(burst)
    const before = proxy.count
    const answers = await Promise.all(Array.from({ length: 12 }, () => partner.send('GET', '/accounts/1', [['authorization', `Bearer ${token}`]])))
    assert.deepEqual(
      answers.map((a) => a.status),
      Array(12).fill(200),
    )
    assert.equal(proxy.count, before + 1)
  })

  it('counts look-ups, cache hits and responder latency in the metrics', async () => {
    await call(good)
    const text = await gw.gateway.metrics.registry.metrics()
    assert.match(text, /fapi_gateway_revocation_lookups_total\{source="ocsp",outcome="good"\} [1-9]/)
    assert.match(text, /fapi_gateway_revocation_lookups_total\{source="ocsp",outcome="revoked"\} [1-9]/)
    assert.match(text, /fapi_gateway_revocation_ocsp_cache_total\{result="hit"\} [1-9]/)
    assert.match(text, /fapi_gateway_ocsp_responder_duration_seconds_count\{outcome="good"\} [1-9]/)
  })

  it('refuses a certificate put on the deny list while running, and passes it again once removed', async () => {
    assert.equal((await call(good)).status, 200)
    writeFileSync(join(dir, 'deny-list.yaml'), `thumbprints:\n  - thumbprint: ${thumbprint(good)}\n    comment: e2e test\n`)
    let response = await call(good)
    for (let i = 0; i < 100 && response.status === 200; i++) {
      await delay(100)
      response = await call(good)
    }
    assert.equal(response.status, 401)
    assert.equal(response.json?.code, 'GW_CLIENT_CERT_REVOKED')
    writeFileSync(join(dir, 'deny-list.yaml'), 'thumbprints: []\n')
    for (let i = 0; i < 100 && response.status !== 200; i++) {
      await delay(100)
      response = await call(good)
    }
    assert.equal(response.status, 200)
  })

  describe('with the OCSP responder stopped', () => {
    before(async () => {
      await responder?.stop()
      responder = undefined
      // Past the responder's nextUpdate (5 min): only the last good status is left.
      clock.offset = 10 * 60_000
    })

    it('hard-fail refuses with 503 GW_REVOCATION_UNAVAILABLE', async () => {
      const response = await call(good)
      assert.equal(response.status, 503)
      assert.equal(response.json?.code, 'GW_REVOCATION_UNAVAILABLE')
      assert.equal(response.headers['www-authenticate'], undefined)
      assert.ok(gw.log.events().some((e) => e.event.action === 'dependency.unavailable' && e.fapi?.dependency === 'revocation'))
    })

    it('soft-fail accepts within maxStalenessSeconds of the last good status (with an event)', async () => {
      const response = await call(good, '/soft/1')
      assert.equal(response.status, 200, response.body)
      assert.ok(gw.log.events().some((e) => e.event.reason === 'revocation.soft_fail'))
    })

    it('soft-fail still refuses a certificate it never saw good, and one known revoked', async () => {
      const unseen = await call(neverSeen, '/soft/1')
      assert.equal(unseen.status, 503)
      assert.equal(unseen.json?.code, 'GW_REVOCATION_UNAVAILABLE')
      const known = await call(revoked, '/soft/1')
      assert.equal(known.status, 401)
      assert.equal(known.json?.code, 'GW_CLIENT_CERT_REVOKED')
    })

    it('soft-fail refuses once the last good status is older than the bound', async () => {
      clock.offset = 2 * HOUR
      const response = await call(good, '/soft/1')
      assert.equal(response.status, 503)
      assert.equal(response.json?.code, 'GW_REVOCATION_UNAVAILABLE')
    })
  })
})

describe('client certificates from a trusted load balancer', () => {
  let dir: string
  let ca: OpensslCa
  let responder: OpensslOcspResponder
  let good: OpensslIssued
  let revoked: OpensslIssued
  const gateways: TestGateway[] = []

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'revocation-lb-'))
    ca = await createOpensslCa(join(dir, 'openssl-ca'), { name: 'LB Partner CA', plannedOcspPort: await findFreePort() })
    good = await ca.issue('lb-good', { ocspUrl: ca.ocspUrl })
    revoked = await ca.issue('lb-revoked', { ocspUrl: ca.ocspUrl })
    await ca.revoke(revoked)
    responder = await ca.startOcspResponder()
  })
  after(async () => {
    await Promise.allSettled(gateways.map((g) => g.close()))
    await responder.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  async function start(name: string, header: { name: string; trustedProxies: string[] }): Promise<TestGateway> {
    const pki = await testPki()
    const gwDir = join(dir, name)
    mkdirSync(gwDir, { recursive: true })
    writeFileSync(join(gwDir, 'partner-roots.pem'), pki.root.certPem.trim() + '\n' + ca.certPem)
    const gw = await startTestGateway({
      dir: gwDir,
      config: {
        listener: {
          // The load balancer terminates TLS: the gateway does not ask for client certificates itself.
          tls: { certFile: 'server-chain.crt', keyFile: 'server.key', clientCaFile: 'partner-roots.pem', clientCertificate: 'off' },
          clientCertificateHeader: header,
        },
        revocation: { default: { sources: [] }, cas: [{ name: 'lb-partner-ca', caFile: join(dir, 'openssl-ca', 'ca.crt'), sources: ['ocsp'] }] },
      },
    })
    gateways.push(gw)
    return gw
  }

  const encoded = (issued: OpensslIssued) => encodeURIComponent(issued.certPem)

  it('from a trusted proxy: validates the forwarded certificate like a handshake one, revocation and binding included', async () => {
    const gw = await start('trusted', { name: 'x-client-cert', trustedProxies: ['127.0.0.1', '::1'] })
    const lb = gw.client()
    const token = await gw.issuer.mint({ x5t: thumbprint(good) })
    const read = await lb.send('GET', '/accounts/1', [
      ['authorization', `Bearer ${token}`],
      ['x-client-cert', encoded(good)],
    ])
    assert.equal(read.status, 200, read.body)
    const seen = gw.upstream.received.at(-1)!
    assert.equal(seen.headers['x-fapi-gateway-cert-thumbprint'], thumbprint(good))
    assert.equal(seen.headers['x-client-cert'], undefined, 'the certificate header is not passed on')

    const revokedToken = await gw.issuer.mint({ x5t: thumbprint(revoked) })
    const refused = await lb.send('GET', '/accounts/1', [
      ['authorization', `Bearer ${revokedToken}`],
      ['x-client-cert', encoded(revoked)],
    ])
    assert.equal(refused.json?.code, 'GW_CLIENT_CERT_REVOKED')

    const pki = await testPki()
    const untrusted = await lb.send('GET', '/accounts/1', [
      ['authorization', `Bearer ${token}`],
      ['x-client-cert', encodeURIComponent(pki.untrusted.certPem)],
    ])
    assert.equal(untrusted.json?.code, 'GW_CLIENT_CERT_INVALID')

    const without = await lb.send('GET', '/accounts/1', [['authorization', `Bearer ${token}`]])
    assert.equal(without.json?.code, 'GW_CERT_BINDING_MISMATCH')
  })

  it('from anyone else: ignores the header and strips it before forwarding', async () => {
    const gw = await start('untrusted', { name: 'ssl-client-cert', trustedProxies: ['192.0.2.10'] })
    const client = gw.client()
    const token = await gw.issuer.mint({ x5t: thumbprint(good) })
    const forged = await client.send('GET', '/accounts/1', [
      ['authorization', `Bearer ${token}`],
      ['ssl-client-cert', encoded(good)],
    ])
    assert.equal(forged.status, 401)
    assert.equal(forged.json?.code, 'GW_CERT_BINDING_MISMATCH', 'no certificate counted')

    const key = await generateDpopKey('ES256')
    const dpopToken = await gw.issuer.mint({ jkt: key.jkt })
    const proof = await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: dpopToken })
    const passed = await client.send('GET', '/accounts/1', [
      ['authorization', `DPoP ${dpopToken}`],
      ['dpop', proof],
      ['ssl-client-cert', encoded(good)],
    ])
    assert.equal(passed.status, 200, passed.body)
    const seen = gw.upstream.received.at(-1)!
    assert.equal(seen.headers['ssl-client-cert'], undefined, 'stripped upstream')
    assert.equal(seen.headers['x-fapi-gateway-cert-thumbprint'], undefined)
  })
})
