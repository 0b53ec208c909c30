// Several revocation sources for one CA: the first that answers decides between good and
// unavailable, but a revoked status from any source the gateway holds or asks always refuses
// (as nginx and Apache do), whichever source happened to answer first.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { refusedWith } from '../../support/refused-with.ts'
import { createRevocationPki, x509, type RevocationPki, type TestCert } from '../../support/revocation-pki.ts'
import { startTestOcspResponder, type TestOcspResponder } from '../../support/ocsp-test-responder.ts'
import { createHarness, type Harness, type HarnessCa } from '../../support/revocation-harness.ts'

const HOUR = 3_600_000

describe('revocation sources together', () => {
  let pki: RevocationPki
  let responder: TestOcspResponder
  let crlServer: Server
  let crlUrl: string
  let crlBody: Buffer | 'http-500' = 'http-500'
  let dir: string
  const harnesses: Harness[] = []

  before(async () => {
    pki = await createRevocationPki('Sources Test CA')
    responder = await startTestOcspResponder({ answer: 'good', signer: { key: pki.ca.key, certDer: pki.ca.der, include: false } })
    crlServer = createServer((_req, res) => {
      if (crlBody === 'http-500') res.writeHead(500).end('down')
      else res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(crlBody)
    })
    await new Promise<void>((resolve) => crlServer.listen(0, '127.0.0.1', resolve))
    crlUrl = `http://127.0.0.1:${(crlServer.address() as AddressInfo).port}/ca.crl`
    dir = mkdtempSync(join(tmpdir(), 'sources-test-'))
  })
  after(async () => {
    await Promise.all(harnesses.map((h) => h.close()))
    await responder.close()
    crlServer.closeAllConnections()
    await new Promise<void>((resolve) => crlServer.close(() => resolve()))
    rmSync(dir, { recursive: true, force: true })
  })

  function harness(ca: Partial<HarnessCa>): Harness {
    const h = createHarness({ cas: [{ name: 'sources-ca', certPem: pki.ca.certPem, ...ca }] })
    harnesses.push(h)
    return h
  }

  function crlListing(...leaves: TestCert[]): Promise<Buffer> {
    const thisUpdate = new Date(Date.now() - HOUR)
    return pki.crl(
      leaves.map((leaf) => ({ serial: leaf.serial, reason: x509.X509CrlReason.keyCompromise })),
      { thisUpdate, nextUpdate: new Date(thisUpdate.getTime() + 24 * HOUR) },
    )
  }

  async function crlFile(...leaves: TestCert[]): Promise<string> {
    const file = join(dir, `ca-${Math.random().toString(36).slice(2, 8)}.crl`)
    writeFileSync(file, await crlListing(...leaves))
    return file
  }

  const leaf = (name: string, options: { ocspUrl?: string; crlUrl?: string } = { ocspUrl: responder.url }) =>
    pki.leaf(`${name}-${Math.random().toString(36).slice(2, 8)}`, options)

  it('[ocsp, crl]: refuses a certificate the held CRL lists although the OCSP responder says good', async () => {
    responder.set({ answer: 'good' })
    const revoked = await leaf('crl-revoked')
    const h = harness({ policy: { sources: ['ocsp', 'crl'] }, crlLocations: [{ kind: 'file', ref: await crlFile(revoked) }] })
    await h.checker.refreshCrls()
    const error = await refusedWith(h.check(h.clientCert(revoked.certPem, [pki.ca.certPem])), 'GW_CLIENT_CERT_REVOKED')
    assert.match(error.detail ?? '', /^crl: revoked at .*keyCompromise/)
    assert.equal(await h.metric('fapi_gateway_revocation_lookups_total', { source: 'ocsp', outcome: 'good' }), 1, 'OCSP was asked and said good')
    assert.equal(await h.metric('fapi_gateway_revocation_decisions_total', { outcome: 'revoked' }), 1)
  })

  it('[ocsp, crl]: accepts a certificate OCSP calls good and the held CRL does not list', async () => {
    responder.set({ answer: 'good' })
    const [good, other] = [await leaf('good'), await leaf('other')]
    const h = harness({ policy: { sources: ['ocsp', 'crl'] }, crlLocations: [{ kind: 'file', ref: await crlFile(other) }] })
    await h.checker.refreshCrls()
    await h.check(h.clientCert(good.certPem, [pki.ca.certPem]))
    assert.equal(await h.metric('fapi_gateway_revocation_decisions_total', { outcome: 'good' }), 1)
  })

  it('[ocsp, crl] with the distribution point only: the CRL starts loading behind a good OCSP answer and refuses from then on', async () => {
    responder.set({ answer: 'good' })
    const revoked = await leaf('dp-revoked', { ocspUrl: responder.url, crlUrl })
    crlBody = await crlListing(revoked)
    const h = harness({ policy: { sources: ['ocsp', 'crl'] } })
    const cert = h.clientCert(revoked.certPem, [pki.ca.certPem])
    await h.check(cert) // nothing held yet: OCSP decides, the list is fetched in the background
    await h.checker.refreshCrls()
    await refusedWith(h.check(cert), 'GW_CLIENT_CERT_REVOKED')
  })

  it('[crl, ocsp]: a revoked OCSP answer is not forgotten when a CRL that omits the certificate answers later', async () => {
    const revoked = await leaf('ocsp-revoked', { ocspUrl: responder.url, crlUrl })
    crlBody = 'http-500'
    responder.set({ answer: 'revoked' })
    const h = harness({ policy: { sources: ['crl', 'ocsp'] } })
    const cert = h.clientCert(revoked.certPem, [pki.ca.certPem])
    await refusedWith(h.check(cert), 'GW_CLIENT_CERT_REVOKED') // no CRL yet: OCSP answers revoked
    crlBody = await crlListing()
    await h.checker.refreshCrls()
    const error = await refusedWith(h.check(cert), 'GW_CLIENT_CERT_REVOKED')
    assert.match(error.detail ?? '', /^ocsp: revoked/)
  })

  it('[crl, ocsp]: accepts a certificate the CRL calls good when no source ever called it revoked', async () => {
    const good = await leaf('crl-good', { ocspUrl: responder.url, crlUrl })
    crlBody = await crlListing()
    responder.set({ answer: 'revoked' }) // never asked: the CRL answers first
    const h = harness({ policy: { sources: ['crl', 'ocsp'] } })
    const before = responder.requests
    await h.check(h.clientCert(good.certPem, [pki.ca.certPem]))
    assert.equal(responder.requests, before, 'OCSP not asked once the CRL answered')
  })
})
