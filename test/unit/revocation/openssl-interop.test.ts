// Interoperability with real OpenSSL: a CA kept by `openssl ca` (index.txt), certificates
// revoked with `openssl ca -revoke`, CRLs from `openssl ca -gencrl`, and the `openssl ocsp`
// responder process answering with a delegated responder certificate.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GatewayError } from '../../../src/errors.ts'
import { createOpensslCa, type OpensslCa, type OpensslIssued, type OpensslOcspResponder } from '../../support/openssl-ca.ts'
import { findFreePort } from '../../support/ports.ts'
import { createHarness, type Harness, type HarnessCa } from '../../support/revocation-harness.ts'

async function outcome(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'accepted',
    (error: unknown) => (error instanceof GatewayError ? error.code : String(error)),
  )
}

describe('OpenSSL interoperability', () => {
  let dir: string
  let ca: OpensslCa
  let responder: OpensslOcspResponder
  let good: OpensslIssued
  let revoked: OpensslIssued
  const harnesses: Harness[] = []

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'openssl-interop-'))
    ca = await createOpensslCa(dir, { name: 'Interop CA', plannedOcspPort: await findFreePort() })
    good = await ca.issue('interop-good', { ocspUrl: ca.ocspUrl })
    revoked = await ca.issue('interop-revoked', { ocspUrl: ca.ocspUrl })
    await ca.revoke(revoked)
    responder = await ca.startOcspResponder({ nextUpdateMinutes: 5 })
  })
  after(async () => {
    await Promise.all(harnesses.map((h) => h.close()))
    await responder.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  function harness(ca_: Partial<HarnessCa>): Harness {
    const h = createHarness({ cas: [{ name: 'interop-ca', certPem: ca.certPem, ...ca_ }] })
    harnesses.push(h)
    return h
  }

  const cert = (h: Harness, issued: OpensslIssued) => h.clientCert(issued.certPem, [ca.certPem])

  for (const [hashAlgorithm, nonce] of [
    ['sha1', false],
    ['sha256', true],
  ] as const) {
    it(`OCSP (${hashAlgorithm} CertID${nonce ? ', nonce' : ''}): good passes, revoked is refused`, async () => {
      const h = harness({ policy: { sources: ['ocsp'] }, ocsp: { hashAlgorithm, nonce } })
      assert.equal(await outcome(h.check(cert(h, good))), 'accepted')
      assert.equal(await outcome(h.check(cert(h, revoked))), 'GW_CLIENT_CERT_REVOKED')
    })
  }

  it('OCSP: a certificate revoked with openssl ca -revoke is refused once the cached answer expires', async () => {
    const later = await ca.issue('interop-later', { ocspUrl: ca.ocspUrl })
    await responder.stop()
    responder = await ca.startOcspResponder()
    const h = harness({ policy: { sources: ['ocsp'] }, ocsp: { maxCacheMs: 60_000 } })
    assert.equal(await outcome(h.check(cert(h, later))), 'accepted')
    await ca.revoke(later, 'superseded')
    await responder.stop()
    responder = await ca.startOcspResponder()
    assert.equal(await outcome(h.check(cert(h, later))), 'accepted', 'still the cached good answer')
    h.clock.now += 61_000
    assert.equal(await outcome(h.check(cert(h, later))), 'GW_CLIENT_CERT_REVOKED')
  })

  it('CRL from openssl ca -gencrl: good passes, revoked is refused, and a new CRL is picked up on refresh', async () => {
    const file = await ca.gencrl({ file: join(dir, 'interop.crl.pem') })
    const h = harness({ policy: { sources: ['crl'] }, crlLocations: [{ kind: 'file', ref: file }] })
    assert.equal(await outcome(h.check(cert(h, good))), 'accepted')
    const error = await h.check(cert(h, revoked)).catch((e: unknown) => e)
    assert.ok(error instanceof GatewayError && error.code === 'GW_CLIENT_CERT_REVOKED')
    assert.match(error.detail ?? '', /crl: revoked at .*keyCompromise/)

    const fresh = await ca.issue('interop-crl-later')
    assert.equal(await outcome(h.check(cert(h, fresh))), 'accepted')
    await ca.revoke(fresh)
    await ca.gencrl({ file })
    await h.checker.refreshCrls()
    assert.equal(await outcome(h.check(cert(h, fresh))), 'GW_CLIENT_CERT_REVOKED')
  })

  it('OCSP first, CRL when the responder does not answer', async () => {
    const file = await ca.gencrl({ file: join(dir, 'fallback.crl.pem') })
    const h = harness({ policy: { sources: ['ocsp', 'crl'] }, ocsp: { url: 'http://127.0.0.1:9/' }, crlLocations: [{ kind: 'file', ref: file }] })
    assert.equal(await outcome(h.check(cert(h, good))), 'accepted')
    assert.equal(await outcome(h.check(cert(h, revoked))), 'GW_CLIENT_CERT_REVOKED')
    assert.equal(await h.metric('fapi_gateway_revocation_lookups_total', { source: 'ocsp', outcome: 'unavailable' }), 2)
    assert.equal(await h.metric('fapi_gateway_revocation_lookups_total', { source: 'crl', outcome: 'good' }), 1)
  })
})
