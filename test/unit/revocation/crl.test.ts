// CRLs (RFC 5280 §5, §6.3): from files and distribution points over real HTTP, signature and
// issuer checks, expiry, background refresh that keeps the last good list, independence of
// CAs, and a list of 100,000 entries.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AsnConvert } from '@peculiar/asn1-schema'
import { DistributionPointName, GeneralName, id_ce_deltaCRLIndicator, id_ce_issuingDistributionPoint, IssuingDistributionPoint } from '@peculiar/asn1-x509'
import { refusedWith } from '../../support/refused-with.ts'
import { createRevocationPki, x509, type RevocationPki, type TestCert } from '../../support/revocation-pki.ts'
import { createHarness, type Harness, type HarnessCa } from '../../support/revocation-harness.ts'
import { createOpensslCa } from '../../support/openssl-ca.ts'

const HOUR = 3_600_000

interface CrlServer {
  readonly url: string
  body: Buffer | 'http-500' | 'html'
  requests: number
  close(): Promise<void>
}

async function startCrlServer(): Promise<CrlServer> {
  const state = { body: Buffer.alloc(0) as CrlServer['body'], requests: 0 }
  const server: Server = createServer((_req, res) => {
    state.requests++
    if (state.body === 'http-500') res.writeHead(500).end('down')
    else if (state.body === 'html') res.writeHead(200, { 'content-type': 'text/html' }).end('<html>maintenance</html>')
    else res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(state.body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/ca.crl`,
    get body() {
      return state.body
    },
    set body(value) {
      state.body = value
    },
    get requests() {
      return state.requests
    },
    set requests(value) {
      state.requests = value
    },
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

describe('CRL', () => {
  let pki: RevocationPki
  let dir: string
  let server: CrlServer
  let good: TestCert
  let revoked: TestCert
  const harnesses: Harness[] = []

  before(async () => {
    pki = await createRevocationPki('CRL Test CA')
    dir = mkdtempSync(join(tmpdir(), 'crl-test-'))
    server = await startCrlServer()
    good = await pki.leaf('crl-good', { crlUrl: server.url })
    revoked = await pki.leaf('crl-revoked', { crlUrl: server.url })
  })
  after(async () => {
    await Promise.all(harnesses.map((h) => h.close()))
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  })

  function harness(ca: Partial<HarnessCa> = {}, extra: HarnessCa[] = []): Harness {
    const h = createHarness({ cas: [{ name: 'crl-ca', certPem: pki.ca.certPem, policy: { sources: ['crl'] }, ...ca }, ...extra] })
    harnesses.push(h)
    return h
  }

  const cert = (h: Harness, leaf: TestCert) => h.clientCert(leaf.certPem, [pki.ca.certPem])

  async function currentCrl(options: { thisUpdate?: Date; nextUpdate?: Date; serials?: string[] } = {}): Promise<Buffer> {
    const thisUpdate = options.thisUpdate ?? new Date(Date.now() - HOUR)
    return pki.crl(
      (options.serials ?? [revoked.serial]).map((serial) => ({ serial, reason: x509.X509CrlReason.keyCompromise })),
      { thisUpdate, nextUpdate: options.nextUpdate ?? new Date(thisUpdate.getTime() + 24 * HOUR) },
    )
  }

  function writeCrl(name: string, der: Buffer): string {
    const file = join(dir, name)
    writeFileSync(file, der)
    return file
  }

  it('refuses a revoked serial and passes the others (configured CRL file, PEM or DER)', async () => {
    const der = await currentCrl()
    for (const file of [writeCrl('der.crl', der), join(dir, 'pem.crl')]) {
      writeFileSync(join(dir, 'pem.crl'), `-----BEGIN X509 CRL-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END X509 CRL-----\n`)
      const h = harness({ crlLocations: [{ kind: 'file', ref: file }] })
      await h.check(cert(h, good))
      const error = await refusedWith(h.check(cert(h, revoked)), 'GW_CLIENT_CERT_REVOKED')
      assert.match(error.detail ?? '', /crl: revoked at .* \(keyCompromise\); serial/)
      assert.ok((await h.metric('fapi_gateway_crl_age_seconds', { ca: 'crl-ca' })) > 0)
    }
  })

  it('fetches the certificate distribution point over HTTP when no CRL is configured', async () => {
    server.body = await currentCrl()
    const h = harness()
    const before = server.requests
    await h.check(cert(h, good))
    await refusedWith(h.check(cert(h, revoked)), 'GW_CLIENT_CERT_REVOKED')
    await h.check(cert(h, good))
    assert.equal(server.requests, before + 1, 'the list is fetched once and looked up in memory')
  })

  it('treats an expired CRL as unavailable, never as "nothing revoked"', async () => {
    const file = writeCrl('expired.crl', await currentCrl({ thisUpdate: new Date(Date.now() - 48 * HOUR), nextUpdate: new Date(Date.now() - 24 * HOUR) }))
    const h = harness({ crlLocations: [{ kind: 'file', ref: file }] })
    const error = await refusedWith(h.check(cert(h, good)), 'GW_REVOCATION_UNAVAILABLE')
    assert.match(error.detail ?? '', /CRL expired at/)
  })

  it('refuses a CRL signed by another key or naming another issuer', async () => {
    const other = await createRevocationPki('Impostor CA')
    const forged = await other.crl([], {
      thisUpdate: new Date(Date.now() - HOUR),
      nextUpdate: new Date(Date.now() + HOUR),
      signer: { key: other.caKeys.privateKey, issuer: pki.ca.node.subject.split('\n').join(', ') },
    })
    const renamed = await other.crl([], { thisUpdate: new Date(Date.now() - HOUR), nextUpdate: new Date(Date.now() + HOUR) })
    for (const [name, der, why] of [
      ['forged.crl', forged, /signature does not verify|issuer is not/],
      ['renamed.crl', renamed, /issuer is not/],
    ] as const) {
      const h = harness({ crlLocations: [{ kind: 'file', ref: writeCrl(name, der) }] })
      const error = await refusedWith(h.check(cert(h, good)), 'GW_REVOCATION_UNAVAILABLE')
      assert.match(error.detail ?? '', why)
    }
  })

  it('refuses delta CRLs as complete lists and partitioned CRLs for other distribution points', async () => {
    const caKey = (pki as Awaited<ReturnType<typeof createRevocationPki>>).caKeys.privateKey
    const subject = pki.ca.node.subject.split('\n').join(', ')
    const delta = await x509.X509CrlGenerator.create({
      issuer: subject,
      thisUpdate: new Date(Date.now() - HOUR),
      nextUpdate: new Date(Date.now() + HOUR),
      signingKey: caKey,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new x509.Extension(id_ce_deltaCRLIndicator, true, new Uint8Array([0x02, 0x01, 0x01]))],
    })
    const idp = new IssuingDistributionPoint({
      distributionPoint: new DistributionPointName({ fullName: [new GeneralName({ uniformResourceIdentifier: 'http://127.0.0.1:1/other-partition.crl' })] }),
    })
    const partitioned = await x509.X509CrlGenerator.create({
      issuer: subject,
      thisUpdate: new Date(Date.now() - HOUR),
      nextUpdate: new Date(Date.now() + HOUR),
      signingKey: caKey,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new x509.Extension(id_ce_issuingDistributionPoint, true, AsnConvert.serialize(idp))],
    })
    const deltaHarness = harness({ crlLocations: [{ kind: 'file', ref: writeCrl('delta.crl', Buffer.from(delta.rawData)) }] })
    assert.match((await refusedWith(deltaHarness.check(cert(deltaHarness, good)), 'GW_REVOCATION_UNAVAILABLE')).detail ?? '', /delta CRLs are not supported/)
    const partHarness = harness({ crlLocations: [{ kind: 'file', ref: writeCrl('partition.crl', Buffer.from(partitioned.rawData)) }] })
    assert.match((await refusedWith(partHarness.check(cert(partHarness, good)), 'GW_REVOCATION_UNAVAILABLE')).detail ?? '', /no CRL covers the certificate/)
  })

  describe('background refresh', () => {
    it('keeps the last good CRL when a refresh fails, says so in a metric and an event, and picks up the next good one', async () => {
      server.body = await currentCrl({ serials: [] })
      const h = harness({ crlLocations: [{ kind: 'url', ref: server.url }] })
      await h.check(cert(h, revoked))
      for (const failure of ['http-500', 'html'] as const) {
        server.body = failure
        await h.checker.refreshCrls()
      }
      assert.equal(await h.metric('fapi_gateway_crl_loads_total', { ca: 'crl-ca', outcome: 'failed' }), 2)
      const events = h.events.filter((e) => e.reason === 'crl.refresh_failed')
      assert.equal(events.length, 2)
      assert.equal(events[0]!.event, 'dependency.unavailable')
      assert.match(events[0]!.detail ?? '', /HTTP 500 .*keeping the CRL of/)
      await h.check(cert(h, revoked))
      // A newer list that revokes the certificate is taken on the next refresh.
      server.body = await currentCrl({ thisUpdate: new Date(Date.now() - HOUR / 2) })
      await h.checker.refreshCrls()
      await refusedWith(h.check(cert(h, revoked)), 'GW_CLIENT_CERT_REVOKED')
      await h.check(cert(h, good))
    })

    it('never goes back to an older CRL (a replayed list would un-revoke)', async () => {
      server.body = await currentCrl({ thisUpdate: new Date(Date.now() - HOUR / 4) })
      const h = harness({ crlLocations: [{ kind: 'url', ref: server.url }] })
      await refusedWith(h.check(cert(h, revoked)), 'GW_CLIENT_CERT_REVOKED')
      server.body = await currentCrl({ thisUpdate: new Date(Date.now() - 2 * HOUR), serials: [] })
      await h.checker.refreshCrls()
      assert.ok(h.events.some((e) => /older than the one already held/.test(e.detail ?? '')))
      await refusedWith(h.check(cert(h, revoked)), 'GW_CLIENT_CERT_REVOKED')
    })

    it('once the kept CRL expires: hard-fail refuses, soft-fail accepts within the staleness bound, revoked stays revoked', async () => {
      const thisUpdate = new Date(Date.now() - HOUR)
      server.body = await currentCrl({ thisUpdate, nextUpdate: new Date(thisUpdate.getTime() + 2 * HOUR) })
      const h = harness({
        crlLocations: [{ kind: 'url', ref: server.url }],
        policy: { sources: ['crl'], onUnavailable: 'hard-fail', maxStalenessSeconds: 4 * 3600 },
      })
      await h.check(cert(h, good))
      server.body = 'http-500'
      h.clock.now += 2 * HOUR
      await refusedWith(h.check(cert(h, good)), 'GW_REVOCATION_UNAVAILABLE')
      await h.check(cert(h, good), { override: { onUnavailable: 'soft-fail' } })
      await refusedWith(h.check(cert(h, revoked), { override: { onUnavailable: 'soft-fail' } }), 'GW_CLIENT_CERT_REVOKED')
      h.clock.now += 3 * HOUR
      await refusedWith(h.check(cert(h, good), { override: { onUnavailable: 'soft-fail' } }), 'GW_REVOCATION_UNAVAILABLE')
    })
  })

  it("one CA's missing CRL never breaks another CA", async () => {
    const other = await createRevocationPki('Second CRL CA')
    const otherLeaf = await other.leaf('other-partner')
    const h = harness({ crlLocations: [{ kind: 'file', ref: join(dir, 'does-not-exist.crl') }] }, [
      {
        name: 'second-ca',
        certPem: other.ca.certPem,
        policy: { sources: ['crl'] },
        crlLocations: [
          {
            kind: 'file',
            ref: writeCrl('second.crl', await other.crl([], { thisUpdate: new Date(Date.now() - HOUR), nextUpdate: new Date(Date.now() + HOUR) })),
          },
        ],
      },
    ])
    await h.check(h.clientCert(otherLeaf.certPem, [other.ca.certPem]))
    const error = await refusedWith(h.check(cert(h, good)), 'GW_REVOCATION_UNAVAILABLE')
    assert.match(error.detail ?? '', /does-not-exist\.crl: ENOENT/)
    await h.check(h.clientCert(otherLeaf.certPem, [other.ca.certPem]))
  })

  it('indexes a CRL of 100,000 entries from openssl ca -gencrl (parsed off the event loop, looked up by serial, not parsed again when unchanged)', async () => {
    const caDir = join(dir, 'big-ca')
    const ca = await createOpensslCa(caDir, { name: 'Big CRL CA' })
    const target = await ca.issue('big-target')
    const fine = await ca.issue('big-fine')
    await ca.revoke(target)
    const lines: string[] = []
    for (let i = 0; i < 100_000; i++)
      lines.push(`R\t301231000000Z\t240101000000Z,keyCompromise\t${(0x500000 + i).toString(16).toUpperCase()}\tunknown\t/CN=revoked-${i}`)
    appendFileSync(join(caDir, 'index.txt'), `${lines.join('\n')}\n`)
    const file = await ca.gencrl()
    const h = harness({ name: 'big-ca', certPem: ca.certPem, crlLocations: [{ kind: 'file', ref: file }] })
    await h.check(h.clientCert(fine.certPem, [ca.certPem]))
    await refusedWith(h.check(h.clientCert(target.certPem, [ca.certPem])), 'GW_CLIENT_CERT_REVOKED')
    for (let i = 0; i < 1000; i++) await h.check(h.clientCert(fine.certPem, [ca.certPem]))
    assert.equal(await h.metric('fapi_gateway_crl_entries', { ca: 'big-ca' }), 100_001)
    // An unchanged list is not parsed again on refresh.
    await h.checker.refreshCrls()
    assert.equal(await h.metric('fapi_gateway_crl_loads_total', { ca: 'big-ca', outcome: 'loaded' }), 2)
    await refusedWith(h.check(h.clientCert(target.certPem, [ca.certPem])), 'GW_CLIENT_CERT_REVOKED')
  })
})
