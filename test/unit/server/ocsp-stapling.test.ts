// The OCSP stapler against the built-in responder of a partner CA (src/ca).
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { AsnConvert } from '@peculiar/asn1-schema'
import { OCSPResponse, OCSPResponseStatus } from '@peculiar/asn1-ocsp'
import { initCa } from '../../../src/ca/init.ts'
import { startOcspResponder, type RunningOcspResponder } from '../../../src/ca/ocsp-responder.ts'
import { revokeCertificate } from '../../../src/ca/revoke.ts'
import { freePort } from '../../../dev/ports.ts'
import { createOcspStapler } from '../../../src/server/ocsp-stapling.ts'
import { issueServerCertificateFromCaStore } from '../../support/server-certificates.ts'
import { tempDir, type TempDir } from '../ca/ca-fixture.ts'

const quiet = { info() {}, warn() {}, error() {} }
let tmp: TempDir
let caDir: string
let caCert: X509Certificate
let responder: RunningOcspResponder
let ocspUrl: string

before(async () => {
  tmp = tempDir('fapi-stapler-')
  caDir = tmp.file('ca')
  const port = await freePort()
  ocspUrl = `http://127.0.0.1:${port}`
  await initCa({ dir: caDir, subject: 'CN=Stapler Test CA', ocspUrl, now: Date.now() })
  caCert = new X509Certificate(readFileSync(join(caDir, 'ca.crt')))
  responder = await startOcspResponder({ dir: caDir, port, nextUpdateSeconds: 600 })
})
after(async () => {
  await responder.close()
  tmp.remove()
})

test('fetches, verifies and holds a good response for the certificate, and staples it only for that certificate while fresh', async () => {
  const issued = await issueServerCertificateFromCaStore(caDir)
  let now = Date.now()
  const stapler = createOcspStapler({ now: () => now, logger: quiet })
  try {
    stapler.configure([issued.cert, caCert], { enabled: true, timeoutMs: 2_000 })
    await stapler.refresh()
    const der = stapler.staple(issued.cert.raw)
    assert.ok(der, JSON.stringify(stapler.status()))
    assert.equal(AsnConvert.parse(der, OCSPResponse).responseStatus, OCSPResponseStatus.successful)
    assert.equal(stapler.status().url, ocspUrl, 'the AIA responder')
    const freshUntil = stapler.status().freshUntil!
    // The responder's nextUpdate is 600 s after it answered, which may be a second or more after `now` on a busy machine.
    assert.ok(freshUntil > now + 500_000 && freshUntil <= Date.now() + 600_000)
    const other = await issueServerCertificateFromCaStore(caDir)
    assert.equal(stapler.staple(other.cert.raw), undefined, 'never the response of another certificate')
    now = freshUntil
    assert.equal(stapler.staple(issued.cert.raw), undefined, 'never a stale response')
  } finally {
    await stapler.close()
  }
})

test('a new certificate drops the held response; a revoked or unknown status and an unreachable responder staple nothing', async () => {
  const good = await issueServerCertificateFromCaStore(caDir)
  const revoked = await issueServerCertificateFromCaStore(caDir)
  await revokeCertificate({ dir: caDir, serial: revoked.serial, reason: 'keyCompromise', now: Date.now() })
  const errors: string[] = []
  const warnings: string[] = []
  const stapler = createOcspStapler({
    now: Date.now,
    logger: { ...quiet, error: (_o, m) => void errors.push(m ?? ''), warn: (o, m) => void warnings.push(`${m} ${JSON.stringify(o)}`) },
    retryMinMs: 60_000,
  })
  try {
    stapler.configure([good.cert, caCert], { enabled: true, timeoutMs: 2_000 })
    await stapler.refresh()
    assert.ok(stapler.staple(good.cert.raw))
    stapler.configure([revoked.cert, caCert], { enabled: true, timeoutMs: 2_000 })
    assert.equal(stapler.staple(good.cert.raw), undefined)
    await stapler.refresh()
    assert.equal(stapler.staple(revoked.cert.raw), undefined)
    assert.match(errors.join('\n'), /REVOKED/)
    assert.equal(stapler.status().lastProblem, 'the server certificate is revoked')

    const closedPort = await freePort()
    stapler.configure([good.cert, caCert], { enabled: true, url: `http://127.0.0.1:${closedPort}`, timeoutMs: 2_000 })
    await stapler.refresh()
    assert.equal(stapler.staple(good.cert.raw), undefined)
    assert.match(stapler.status().lastProblem ?? '', /ECONNREFUSED/)
    assert.ok(warnings.some((w) => w.includes('no usable response')))
  } finally {
    await stapler.close()
  }
})

test('stapling off, no responder named, or no issuer in the chain: nothing is fetched', async () => {
  const issued = await issueServerCertificateFromCaStore(caDir)
  const withoutAia = await issueServerCertificateFromCaStore(caDir, { ocspUrl: undefined })
  const stapler = createOcspStapler({ now: Date.now, logger: quiet })
  try {
    stapler.configure([issued.cert, caCert], { enabled: false, timeoutMs: 2_000 })
    assert.equal(stapler.status().url, undefined)
    stapler.configure([issued.cert], { enabled: true, timeoutMs: 2_000 })
    assert.match(stapler.status().lastProblem ?? '', /issuer of the server certificate is not in listener.tls.certFile/)
    await stapler.refresh()
    assert.equal(stapler.staple(issued.cert.raw), undefined)
    stapler.configure([withoutAia.cert, caCert], { enabled: true, timeoutMs: 2_000 })
    assert.equal(stapler.status().url, undefined)
  } finally {
    await stapler.close()
  }
})
