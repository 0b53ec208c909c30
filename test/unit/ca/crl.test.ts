// Revoking, listing and publishing CRLs, judged by the real openssl binary.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { publishCrl } from '../../../src/ca/crl.ts'
import { initCa } from '../../../src/ca/init.ts'
import { issueCertificate } from '../../../src/ca/issue.ts'
import { formatListing, listCertificates } from '../../../src/ca/list.ts'
import { revokeCertificate } from '../../../src/ca/revoke.ts'
import { fixedNow, openssl, tempDir, type TempDir } from './ca-fixture.ts'

const DAY = 86_400_000

describe('ca revoke, ca list and ca crl', () => {
  let tmp: TempDir
  let caDir: string
  let caCrt: string
  const now = fixedNow()
  const serials: Record<'good' | 'compromised' | 'retired' | 'plain', string> = { good: '', compromised: '', retired: '', plain: '' }

  before(async () => {
    tmp = tempDir()
    caDir = tmp.file('ca')
    caCrt = join(caDir, 'ca.crt')
    await initCa({ dir: caDir, subject: 'CN=CRL Test Root', keyType: 'rsa-2048', crlUrl: 'http://127.0.0.1:1/ca.crl', now })
    for (const name of Object.keys(serials) as (keyof typeof serials)[]) {
      const issued = await issueCertificate({
        dir: caDir,
        subject: `CN=${name}`,
        outFile: tmp.file(`${name}.crt`),
        validityDays: name === 'good' ? 10 : 365,
        now,
      })
      serials[name] = issued.serial
    }
  })
  after(() => tmp.remove())

  it('revokes with a reason and refuses unknown or already revoked serials', async () => {
    const record = await revokeCertificate({ dir: caDir, serial: serials.compromised.toUpperCase(), reason: 'keyCompromise', now })
    assert.equal(record.status, 'revoked')
    assert.equal(record.reason, 'keyCompromise')
    assert.equal(record.revokedAt, new Date(now).toISOString())
    await revokeCertificate({ dir: caDir, serial: serials.retired, reason: 'cessationOfOperation', now })
    await revokeCertificate({ dir: caDir, serial: serials.plain, now })
    await assert.rejects(revokeCertificate({ dir: caDir, serial: serials.compromised, now }), /already revoked at .* \(keyCompromise\)/)
    await assert.rejects(revokeCertificate({ dir: caDir, serial: 'abcdef', now }), /--serial abcdef: no certificate with this serial/)
  })

  it('lists every certificate with its expiry, days left and status', () => {
    const rows = listCertificates({ dir: caDir, now })
    const good = rows.find((row) => row.serial === serials.good)!
    assert.equal(good.status, 'valid')
    assert.equal(good.daysLeft, 10)
    assert.equal(listCertificates({ dir: caDir, now: now + 1000 }).find((row) => row.serial === serials.good)?.daysLeft, 9, 'whole days left')
    assert.equal(good.notAfter, new Date(now + 10 * DAY).toISOString())
    assert.equal(rows.find((row) => row.serial === serials.compromised)?.status, 'revoked')
    const later = listCertificates({ dir: caDir, now: now + 11 * DAY }).find((row) => row.serial === serials.good)!
    assert.equal(later.status, 'expired')
    assert.ok(later.daysLeft < 0)
    const table = formatListing(rows)
    assert.match(table, /^serial +subject +kind +notAfter +days left +status/)
    assert.match(table, new RegExp(`${serials.good} +CN=good +partner +\\S+ +10 +valid`))
    assert.match(table, new RegExp(`${serials.compromised} .*revoked \\S+ \\(keyCompromise\\)`))
  })

  it('publishes a CRL that openssl verifies against the CA, with reason codes and an AKI', async () => {
    const out = tmp.file('ca.crl.pem')
    const crl = await publishCrl({ dir: caDir, outFile: out, nextUpdateHours: 12, now })
    assert.equal(crl.revokedCount, 3)
    const verify = await openssl('crl', '-in', out, '-CAfile', caCrt, '-noout')
    assert.equal(verify.code, 0, verify.output)
    assert.match(verify.stderr, /verify OK/)
    const text = (await openssl('crl', '-in', out, '-noout', '-text')).stdout
    assert.match(text, /X509v3 CRL Number: *\n\s*1\n/)
    assert.match(text, /X509v3 Authority Key Identifier/)
    assert.match(
      text,
      new RegExp(`Serial Number: ${serials.compromised.toUpperCase()}\\n.*\\n\\s*CRL entry extensions:\\n\\s*X509v3 CRL Reason Code: *\\n\\s*Key Compromise`),
    )
    assert.match(
      text,
      new RegExp(
        `Serial Number: ${serials.retired.toUpperCase()}\\n.*\\n\\s*CRL entry extensions:\\n\\s*X509v3 CRL Reason Code: *\\n\\s*Cessation Of Operation`,
      ),
    )
    assert.match(
      text,
      new RegExp(`Serial Number: ${serials.plain.toUpperCase()}\\n\\s*Revocation Date: [^\\n]*\\n(?!\\s*CRL entry extensions)`),
      'unspecified is left out (RFC 5280 §5.3.1)',
    )
    assert.doesNotMatch(text, new RegExp(serials.good.toUpperCase()))
    assert.equal(readFileSync(join(caDir, 'crl.pem'), 'utf8'), readFileSync(out, 'utf8'), 'the store keeps the last CRL')
    assert.equal(crl.nextUpdate.getTime() - crl.thisUpdate.getTime(), 12 * 3_600_000)
  })

  it('makes openssl verify -crl_check report the revoked certificate as revoked and the good one OK', async () => {
    const crlFile = tmp.file('check.crl.pem')
    await publishCrl({ dir: caDir, outFile: crlFile, now })
    const good = await openssl('verify', '-crl_check', '-CAfile', caCrt, '-CRLfile', crlFile, tmp.file('good.crt'))
    assert.equal(good.code, 0, good.output)
    assert.match(good.stdout, /good\.crt: OK/)
    const revoked = await openssl('verify', '-crl_check', '-CAfile', caCrt, '-CRLfile', crlFile, tmp.file('compromised.crt'))
    assert.notEqual(revoked.code, 0)
    assert.match(revoked.output, /certificate revoked/)
  })

  it('numbers CRLs in increasing order and writes DER on request', async () => {
    const first = await publishCrl({ dir: caDir, now })
    const second = await publishCrl({ dir: caDir, outFile: tmp.file('ca.crl'), format: 'der', now })
    assert.equal(second.crlNumber, first.crlNumber + 1)
    const der = await openssl('crl', '-inform', 'DER', '-in', tmp.file('ca.crl'), '-CAfile', caCrt, '-noout', '-crlnumber')
    assert.equal(der.code, 0, der.output)
    assert.match(der.stdout, new RegExp(`crlNumber=0x0*${second.crlNumber.toString(16).toUpperCase()}\\n`))
    await assert.rejects(publishCrl({ dir: caDir, nextUpdateHours: 0, now }), /--next-update-hours: must be more than 0/)
  })
})
