// The same acceptance as with OpenSSL, against the gateway's own CA (src/ca): certificates
// issued and revoked with it, its CRLs, and its OCSP responder with the CA key or a delegated
// responder certificate.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initCa } from '../../../src/ca/init.ts'
import { issueCertificate, type IssuedCertificate } from '../../../src/ca/issue.ts'
import { revokeCertificate } from '../../../src/ca/revoke.ts'
import { publishCrl } from '../../../src/ca/crl.ts'
import { startOcspResponder, type RunningOcspResponder } from '../../../src/ca/ocsp-responder.ts'
import { GatewayError } from '../../../src/errors.ts'
import { findFreePort } from '../../support/ports.ts'
import { createHarness, type Harness, type HarnessCa } from '../../support/revocation-harness.ts'

async function outcome(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'accepted',
    (error: unknown) => (error instanceof GatewayError ? error.code : String(error)),
  )
}

describe('built-in CA interoperability', () => {
  let root: string
  let caDir: string
  let caPem: string
  let port: number
  let good: IssuedCertificate
  let revoked: IssuedCertificate
  const responders: RunningOcspResponder[] = []
  const harnesses: Harness[] = []

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'builtin-ca-interop-'))
    caDir = join(root, 'ca')
    port = await findFreePort()
    const now = Date.now()
    caPem = (
      await initCa({
        dir: caDir,
        subject: 'CN=Built-in Interop CA, O=Bank',
        ocspUrl: `http://127.0.0.1:${port}/`,
        crlUrl: 'http://127.0.0.1:9/ca.crl',
        responderCert: true,
        now,
      })
    ).certPem
    good = await issueCertificate({ dir: caDir, subject: 'CN=builtin-good', outKeyFile: join(root, 'good.key'), now })
    revoked = await issueCertificate({ dir: caDir, subject: 'CN=builtin-revoked', outKeyFile: join(root, 'revoked.key'), now })
    await revokeCertificate({ dir: caDir, serial: revoked.serial, reason: 'keyCompromise', now })
  })
  after(async () => {
    await Promise.all(harnesses.map((h) => h.close()))
    await Promise.all(responders.map((r) => r.close()))
    rmSync(root, { recursive: true, force: true })
  })

  function harness(ca: Partial<HarnessCa>): Harness {
    const h = createHarness({ cas: [{ name: 'builtin-ca', certPem: caPem, ...ca }] })
    harnesses.push(h)
    return h
  }
  const cert = (h: Harness, issued: IssuedCertificate) => h.clientCert(issued.certPem, [caPem])

  for (const signer of ['responder', 'ca'] as const) {
    it(`OCSP from its responder (signed by the ${signer === 'ca' ? 'CA key' : 'delegated responder certificate'}): good passes, revoked is refused`, async () => {
      const responder = await startOcspResponder({ dir: caDir, port, host: '127.0.0.1', signer })
      responders.push(responder)
      try {
        const h = harness({ policy: { sources: ['ocsp'] }, ocsp: { nonce: true } })
        assert.equal(await outcome(h.check(cert(h, good))), 'accepted')
        assert.equal(await outcome(h.check(cert(h, revoked))), 'GW_CLIENT_CERT_REVOKED')
      } finally {
        await responder.close()
      }
    })
  }

  it('CRL published with it: good passes, revoked is refused', async () => {
    const file = join(root, 'ca.crl')
    await publishCrl({ dir: caDir, outFile: file, format: 'der', now: Date.now() })
    const h = harness({ policy: { sources: ['crl'] }, crlLocations: [{ kind: 'file', ref: file }] })
    assert.equal(await outcome(h.check(cert(h, good))), 'accepted')
    assert.equal(await outcome(h.check(cert(h, revoked))), 'GW_CLIENT_CERT_REVOKED')
  })
})
