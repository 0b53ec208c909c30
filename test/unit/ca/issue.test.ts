// Issuing partner certificates and intermediate CAs, judged by the real openssl binary.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { CaError } from '../../../src/ca/ca-error.ts'
import { initCa } from '../../../src/ca/init.ts'
import { issueCertificate } from '../../../src/ca/issue.ts'
import { revokeCertificate } from '../../../src/ca/revoke.ts'
import { x509 } from '../../../src/ca/x509.ts'
import { fixedNow, openssl, tempDir, type TempDir } from './ca-fixture.ts'

describe('ca issue', () => {
  let tmp: TempDir
  let rootDir: string
  const now = fixedNow()

  before(async () => {
    tmp = tempDir()
    rootDir = tmp.file('root')
    await initCa({ dir: rootDir, subject: 'CN=Issue Test Root, O=Bank', ocspUrl: 'http://127.0.0.1:8888/ocsp', crlUrl: 'http://127.0.0.1:8888/root.crl', now })
  })
  after(() => tmp.remove())

  it('issues a client certificate that openssl verifies, with clientAuth, AIA and CRL DP', async () => {
    const certFile = tmp.file('partner.crt')
    await issueCertificate({ dir: rootDir, subject: 'CN=partner-a, O=Partner', outKeyFile: tmp.file('partner.key'), outFile: certFile, validityDays: 30, now })
    const verify = await openssl('verify', '-CAfile', join(rootDir, 'ca.crt'), '-purpose', 'sslclient', certFile)
    assert.equal(verify.code, 0, verify.output)
    assert.match(verify.stdout, /partner\.crt: OK/)
    const text = (await openssl('x509', '-in', certFile, '-noout', '-text')).stdout
    assert.match(text, /X509v3 Extended Key Usage: *\n\s*TLS Web Client Authentication\n/)
    assert.match(text, /X509v3 Key Usage: critical\n\s*Digital Signature\n/)
    assert.match(text, /X509v3 Basic Constraints: critical\n\s*CA:FALSE/)
    assert.match(text, /Authority Information Access: *\n\s*OCSP - URI:http:\/\/127\.0\.0\.1:8888\/ocsp/)
    assert.match(text, /X509v3 CRL Distribution Points: *\n\s*Full Name:\n\s*URI:http:\/\/127\.0\.0\.1:8888\/root\.crl/)
    assert.match(text, /X509v3 Subject Key Identifier/)
    const root = new X509Certificate(readFileSync(join(rootDir, 'ca.crt')))
    const rootSki = /X509v3 Subject Key Identifier: *\n\s*([0-9A-F:]+)/.exec(
      (await openssl('x509', '-in', join(rootDir, 'ca.crt'), '-noout', '-text')).stdout,
    )![1]
    assert.match(text, new RegExp(`X509v3 Authority Key Identifier: *\\n\\s*(keyid:)?${rootSki}`))
    const leaf = new X509Certificate(readFileSync(certFile))
    assert.ok(leaf.checkIssued(root))
    assert.equal(Math.round((leaf.validToDate.getTime() - now) / 86_400_000), 30)
  })

  it("accepts a CSR made by openssl req (EC and RSA) and keeps the requester's key", async () => {
    for (const [name, newkey] of [
      ['ec', 'ec'],
      ['rsa', 'rsa:2048'],
    ] as const) {
      const keyFile = tmp.file(`${name}-csr.key`)
      const csrFile = tmp.file(`${name}.csr`)
      const args = newkey === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', newkey]
      const req = await openssl('req', '-new', ...args, '-nodes', '-keyout', keyFile, '-subj', `/CN=csr-${name}/O=Partner`, '-out', csrFile)
      assert.equal(req.code, 0, req.output)
      const certFile = tmp.file(`${name}-csr.crt`)
      const issued = await issueCertificate({ dir: rootDir, csrFile, outFile: certFile, now })
      assert.equal(issued.keyPem, undefined)
      assert.equal((await openssl('verify', '-CAfile', join(rootDir, 'ca.crt'), certFile)).code, 0)
      const match = await openssl('x509', '-in', certFile, '-noout', '-checkend', '0')
      assert.equal(match.code, 0)
      const certKey = new X509Certificate(readFileSync(certFile)).publicKey
      const { createPrivateKey, createPublicKey } = await import('node:crypto')
      assert.ok(certKey.equals(createPublicKey(createPrivateKey(readFileSync(keyFile)))), 'the certificate certifies the CSR key')
      assert.match(new X509Certificate(readFileSync(certFile)).subject, new RegExp(`CN=csr-${name}`))
    }
  })

  it('accepts a DER CSR and lets the operator override the subject', async () => {
    const csrPem = tmp.file('override.csr')
    await openssl(
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-384',
      '-nodes',
      '-keyout',
      tmp.file('override.key'),
      '-subj',
      '/CN=requested-name',
      '-out',
      csrPem,
    )
    const csrDer = tmp.file('override.der')
    await openssl('req', '-in', csrPem, '-outform', 'DER', '-out', csrDer)
    const issued = await issueCertificate({ dir: rootDir, csrFile: csrDer, subject: 'CN=assigned-name, O=Partner', now })
    assert.equal(issued.subject, 'CN=assigned-name, O=Partner')
    assert.match(new X509Certificate(issued.certPem).subject, /CN=assigned-name/)
  })

  it('accepts an Ed25519 CSR', async () => {
    const csrFile = tmp.file('ed25519.csr')
    await openssl('req', '-new', '-newkey', 'ed25519', '-nodes', '-keyout', tmp.file('ed25519.key'), '-subj', '/CN=ed25519', '-out', csrFile)
    const certFile = tmp.file('ed25519.crt')
    await issueCertificate({ dir: rootDir, csrFile, outFile: certFile, now })
    assert.equal((await openssl('verify', '-CAfile', join(rootDir, 'ca.crt'), certFile)).code, 0)
  })

  it('refuses a 1024-bit RSA CSR', async () => {
    const csrFile = tmp.file('weak.csr')
    const req = await openssl('req', '-new', '-newkey', 'rsa:1024', '-nodes', '-keyout', tmp.file('weak.key'), '-subj', '/CN=weak', '-out', csrFile)
    assert.equal(req.code, 0, req.output)
    await assert.rejects(
      issueCertificate({ dir: rootDir, csrFile, outFile: tmp.file('weak.crt'), now }),
      (error: Error) => error instanceof CaError && error.message.includes(csrFile) && /RSA key of 1024 bits; at least 2048 required/.test(error.message),
    )
  })

  it('refuses a CSR whose signature does not verify', async () => {
    const csrFile = tmp.file('tampered.csr')
    await openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', tmp.file('tampered.key'), '-subj', '/CN=tampered', '-out', csrFile)
    const csr = new x509.Pkcs10CertificateRequest(readFileSync(csrFile, 'utf8'))
    const der = Buffer.from(csr.rawData)
    der[der.length - 1]! ^= 0x01
    writeFileSync(csrFile, x509.PemConverter.encode(der, 'CERTIFICATE REQUEST'))
    // openssl 3.0 reports the failure but exits 0.
    assert.match((await openssl('req', '-in', csrFile, '-noout', '-verify')).output, /self-signature verify failure/, 'openssl agrees the signature is bad')
    await assert.rejects(
      issueCertificate({ dir: rootDir, csrFile, outFile: tmp.file('tampered.crt'), now }),
      /tampered\.csr: the request's signature is invalid/,
    )
  })

  it('refuses input that is not a CSR, and flag combinations that make no sense', async () => {
    writeFileSync(tmp.file('junk.csr'), 'hello')
    await assert.rejects(issueCertificate({ dir: rootDir, csrFile: tmp.file('junk.csr'), now }), /junk\.csr: not a PKCS#10 certificate request/)
    await assert.rejects(issueCertificate({ dir: rootDir, csrFile: tmp.file('nope.csr'), now }), /nope\.csr: cannot read \(ENOENT\)/)
    await assert.rejects(
      issueCertificate({ dir: rootDir, csrFile: tmp.file('junk.csr'), outKeyFile: tmp.file('k'), now }),
      /--out-key and --key-type apply only without --csr/,
    )
    await assert.rejects(issueCertificate({ dir: rootDir, now }), /--subject is required without --csr/)
  })

  it('refuses a validity that would outlive the CA, or that is not a whole number of days', async () => {
    await assert.rejects(
      issueCertificate({ dir: rootDir, subject: 'CN=long', validityDays: 5000, now }),
      /--validity-days: 5000 days would outlive the CA .*use at most 36\d\d/,
    )
    await assert.rejects(issueCertificate({ dir: rootDir, subject: 'CN=zero', validityDays: 0, now }), /--validity-days: must be a whole number/)
  })

  it("refuses to certify a key reported compromised, or the CA's own key", async () => {
    const csrFile = tmp.file('compromised.csr')
    await openssl(
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      tmp.file('compromised.key'),
      '-subj',
      '/CN=compromised',
      '-out',
      csrFile,
    )
    const first = await issueCertificate({ dir: rootDir, csrFile, now })
    await revokeCertificate({ dir: rootDir, serial: first.serial, reason: 'keyCompromise', now })
    await assert.rejects(issueCertificate({ dir: rootDir, csrFile, now }), /reported compromised/)
    const caCsr = tmp.file('ca-key.csr')
    await openssl('req', '-new', '-key', join(rootDir, 'ca.key'), '-subj', '/CN=sneaky', '-out', caCsr)
    await assert.rejects(issueCertificate({ dir: rootDir, csrFile: caCsr, now }), /the key is the CA's own key/)
  })

  it('issues with each key type', async () => {
    for (const keyType of ['ec-p384', 'rsa-2048'] as const) {
      const issued = await issueCertificate({ dir: rootDir, subject: `CN=${keyType}`, keyType, now })
      const key = new X509Certificate(issued.certPem).publicKey
      if (keyType === 'ec-p384') assert.equal(key.asymmetricKeyDetails?.namedCurve, 'secp384r1')
      else assert.equal(key.asymmetricKeyDetails?.modulusLength, 2048)
    }
  })

  it('creates an intermediate CA under the root; its partner certificates verify through the chain', async () => {
    const interDir = tmp.file('inter')
    const result = await initCa({
      dir: interDir,
      parentDir: rootDir,
      subject: 'CN=Issue Test Partner CA, O=Bank',
      keyType: 'ec-p384',
      validityDays: 365,
      ocspUrl: 'http://127.0.0.1:8889',
      crlUrl: 'http://127.0.0.1:8889/inter.crl',
      now,
    })
    assert.equal(result.parentDir, rootDir)
    const interCrt = join(interDir, 'ca.crt')
    const text = (await openssl('x509', '-in', interCrt, '-noout', '-text')).stdout
    assert.match(text, /CA:TRUE, pathlen:0/)
    assert.match(text, /Certificate Sign, CRL Sign/)
    assert.match(text, /OCSP - URI:http:\/\/127\.0\.0\.1:8888\/ocsp/, "the intermediate is checked at its parent's responder")
    assert.equal((await openssl('verify', '-CAfile', join(rootDir, 'ca.crt'), interCrt)).code, 0)
    const chain = readFileSync(join(interDir, 'chain.crt'), 'utf8')
    assert.equal(chain.match(/BEGIN CERTIFICATE/g)?.length, 2)
    const certFile = tmp.file('via-inter.crt')
    await issueCertificate({ dir: interDir, subject: 'CN=partner-via-inter', outKeyFile: tmp.file('via-inter.key'), outFile: certFile, now })
    const verify = await openssl('verify', '-CAfile', join(rootDir, 'ca.crt'), '-untrusted', interCrt, certFile)
    assert.equal(verify.code, 0, verify.output)
    assert.match((await openssl('x509', '-in', certFile, '-noout', '-text')).stdout, /OCSP - URI:http:\/\/127\.0\.0\.1:8889\n/)
    const parentIndex = JSON.parse(readFileSync(join(rootDir, 'index.json'), 'utf8'))
    assert.ok(parentIndex.certificates.some((record: { kind: string; serial: string }) => record.kind === 'ca' && record.serial === result.serial))
    await assert.rejects(
      initCa({ dir: tmp.file('inter2'), parentDir: interDir, subject: 'CN=Too Deep', now }),
      /pathLenConstraint 0 and cannot issue another CA/,
    )
    await assert.rejects(
      initCa({ dir: tmp.file('inter3'), parentDir: rootDir, subject: 'CN=Too Long', validityDays: 9000, now }),
      /would outlive the parent CA/,
    )
  })
})
