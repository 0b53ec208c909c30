// The built-in OCSP responder against the real `openssl ocsp` client.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { AsnConvert } from '@peculiar/asn1-schema'
import { OCSPResponse, OCSPResponseStatus } from '@peculiar/asn1-ocsp'
import { initCa } from '../../../src/ca/init.ts'
import { issueCertificate } from '../../../src/ca/issue.ts'
import { startOcspResponder, type OcspLogEntry, type RunningOcspResponder } from '../../../src/ca/ocsp-responder.ts'
import { createResponderCert } from '../../../src/ca/responder-cert.ts'
import { revokeCertificate } from '../../../src/ca/revoke.ts'
import { fixedNow, openssl, tempDir, type TempDir } from './ca-fixture.ts'

const DAY = 86_400_000

describe('ca ocsp-responder', () => {
  let tmp: TempDir
  let caDir: string
  let caCrt: string
  let otherCaCrt: string
  const now = fixedNow()
  const certs = { good: '', revoked: '', later: '', other: '' }
  const serials = { good: '', revoked: '', later: '' }
  const responders: RunningOcspResponder[] = []

  async function start(options: Partial<Parameters<typeof startOcspResponder>[0]> = {}): Promise<RunningOcspResponder> {
    const responder = await startOcspResponder({ dir: caDir, port: 0, ...options })
    responders.push(responder)
    return responder
  }

  function ask(responder: RunningOcspResponder, ...certFiles: string[]) {
    return openssl('ocsp', '-issuer', caCrt, ...certFiles.flatMap((file) => ['-cert', file]), '-url', responder.url, '-resp_text', '-CAfile', caCrt)
  }

  before(async () => {
    tmp = tempDir()
    caDir = tmp.file('ca')
    caCrt = join(caDir, 'ca.crt')
    await initCa({ dir: caDir, subject: 'CN=OCSP Test Root, O=Bank', ocspUrl: 'http://127.0.0.1:1/ocsp', now })
    for (const name of ['good', 'revoked', 'later'] as const) {
      certs[name] = tmp.file(`${name}.crt`)
      serials[name] = (await issueCertificate({ dir: caDir, subject: `CN=${name}`, outFile: certs[name], now })).serial
    }
    await revokeCertificate({ dir: caDir, serial: serials.revoked, reason: 'keyCompromise', now })
    const otherDir = tmp.file('other')
    await initCa({ dir: otherDir, subject: 'CN=Some Other CA', now })
    otherCaCrt = join(otherDir, 'ca.crt')
    certs.other = tmp.file('other.crt')
    await issueCertificate({ dir: otherDir, subject: 'CN=other', outFile: certs.other, now })
  })
  after(async () => {
    await Promise.all(responders.map((responder) => responder.close()))
    tmp.remove()
  })

  it('answers good and revoked (time, reason) in a response openssl verifies, echoing the nonce', async () => {
    const log: OcspLogEntry[] = []
    const responder = await start({ log: (entry) => log.push(entry), nextUpdateSeconds: 300 })
    assert.equal(responder.signer, 'ca')
    const answer = await ask(responder, certs.good, certs.revoked)
    assert.equal(answer.code, 0, answer.output)
    assert.match(answer.stderr, /Response verify OK/)
    assert.match(answer.stdout, /good\.crt: good\n/)
    assert.match(answer.stdout, /revoked\.crt: revoked\n\s*This Update: .*\n\s*Next Update: .*\n\s*Reason: keyCompromise\n\s*Revocation Time: /)
    assert.match(answer.stdout, /OCSP Nonce/)
    assert.doesNotMatch(answer.output, /WARNING/)
    const update = /This Update: (.*)\n\s*Next Update: (.*)\n/.exec(answer.stdout)!
    assert.equal(Date.parse(update[2]!) - Date.parse(update[1]!), 300_000)
    assert.deepEqual(log.at(-1)?.outcome, {
      responseStatus: 'successful',
      answers: [
        { serial: serials.good, status: 'good' },
        { serial: serials.revoked, status: 'revoked' },
      ],
    })
  })

  it('sees a revocation made while it runs, without a restart', async () => {
    const responder = await start()
    assert.match((await ask(responder, certs.later)).stdout, /later\.crt: good\n/)
    await revokeCertificate({ dir: caDir, serial: serials.later, reason: 'superseded', now })
    const answer = await ask(responder, certs.later)
    assert.match(answer.stderr, /Response verify OK/)
    assert.match(answer.stdout, /later\.crt: revoked\n[\s\S]*Reason: superseded/)
  })

  it('answers unknown for a serial this CA never issued', async () => {
    const responder = await start()
    const answer = await openssl('ocsp', '-issuer', caCrt, '-serial', '0x1234', '-url', responder.url, '-CAfile', caCrt)
    assert.match(answer.stderr, /Response verify OK/)
    assert.match(answer.stdout, /0x1234: unknown/)
  })

  it('answers unauthorized for a certificate of another CA', async () => {
    const responder = await start()
    const answer = await openssl('ocsp', '-issuer', otherCaCrt, '-cert', certs.other, '-url', responder.url, '-CAfile', otherCaCrt)
    assert.match(answer.output, /Responder Error: unauthorized \(6\)/)
  })

  it('answers malformedRequest to bytes that are not an OCSP request, and 405 to other methods', async () => {
    const responder = await start()
    for (const request of [
      fetch(responder.url, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' }, body: 'not der' }),
      fetch(`${responder.url}/not-base64!`),
      fetch(`${responder.url}/${encodeURIComponent(Buffer.from('garbage').toString('base64'))}`),
    ]) {
      const response = await request
      assert.equal(response.status, 200)
      assert.equal(response.headers.get('content-type'), 'application/ocsp-response')
      const parsed = AsnConvert.parse(await response.arrayBuffer(), OCSPResponse)
      assert.equal(parsed.responseStatus, OCSPResponseStatus.malformedRequest)
      assert.equal(parsed.responseBytes, undefined)
    }
    assert.equal((await fetch(responder.url, { method: 'PUT', body: 'x' })).status, 405)
    assert.equal((await fetch(responder.url, { method: 'POST', body: Buffer.alloc(20_000) })).status, 413)
  })

  it('answers GET requests (RFC 6960 A.1) with an HTTP cache lifetime', async () => {
    const responder = await start({ nextUpdateSeconds: 120 })
    const requestFile = tmp.file('get.req')
    const made = await openssl('ocsp', '-issuer', caCrt, '-cert', certs.good, '-no_nonce', '-reqout', requestFile)
    assert.equal(made.code, 0, made.output)
    const encoded = encodeURIComponent(readFileSync(requestFile).toString('base64'))
    // The CA's OCSP URL has the path /ocsp; requests under it and at the root are both understood.
    for (const url of [`${responder.url}/ocsp/${encoded}`, `${responder.url}/${encoded}`]) {
      const response = await fetch(url)
      assert.equal(response.status, 200)
      assert.match(response.headers.get('cache-control') ?? '', /^max-age=1[12]\d, public, no-transform, must-revalidate$/)
      const responseFile = tmp.file('get.resp')
      writeFileSync(responseFile, Buffer.from(await response.arrayBuffer()))
      const check = await openssl('ocsp', '-respin', responseFile, '-issuer', caCrt, '-cert', certs.good, '-CAfile', caCrt, '-no_nonce')
      assert.match(check.stderr, /Response verify OK/)
      assert.match(check.stdout, /good\.crt: good/)
    }
  })

  it('signs with a delegated responder certificate (id-kp-OCSPSigning) that openssl accepts', async () => {
    const created = await createResponderCert({ dir: caDir, now })
    const text = (await openssl('x509', '-in', created.certFile, '-noout', '-text')).stdout
    assert.match(text, /X509v3 Extended Key Usage: critical\n\s*OCSP Signing/)
    assert.match(text, /OCSP No Check/)
    const keyMode = (await import('node:fs')).statSync(created.keyFile).mode & 0o777
    assert.equal(keyMode, 0o600)
    const responder = await start()
    assert.equal(responder.signer, 'responder')
    const answer = await ask(responder, certs.good, certs.revoked)
    assert.equal(answer.code, 0, answer.output)
    assert.match(answer.stderr, /Response verify OK/)
    assert.match(answer.stdout, /good\.crt: good\n/)
    assert.match(answer.stdout, /revoked\.crt: revoked\n/)
    assert.match(
      answer.stdout,
      /Certificate:\n\s*Data:[\s\S]*Subject: CN ?= ?OCSP Test Root OCSP Responder/,
      'the responder certificate travels in the response',
    )
    const caSigned = await start({ signer: 'ca' })
    assert.match((await ask(caSigned, certs.good)).stderr, /Response verify OK/)
  })

  it('stops signing with a delegated certificate once it has expired (internalError, never a stale signer)', async () => {
    const dir = tmp.file('short')
    await initCa({ dir, subject: 'CN=Short Responder CA', now })
    const leaf = tmp.file('short-leaf.crt')
    await issueCertificate({ dir, subject: 'CN=leaf', outFile: leaf, now })
    await createResponderCert({ dir, validityDays: 1, now })
    let clock = now
    const responder = await start({ dir, clock: () => clock })
    const shortCa = join(dir, 'ca.crt')
    assert.match((await openssl('ocsp', '-issuer', shortCa, '-cert', leaf, '-url', responder.url, '-CAfile', shortCa)).stdout, /short-leaf\.crt: good/)
    clock = now + 2 * DAY
    assert.match(
      (await openssl('ocsp', '-issuer', shortCa, '-cert', leaf, '-url', responder.url, '-CAfile', shortCa)).output,
      /Responder Error: internalerror \(2\)/,
    )
    await assert.rejects(startOcspResponder({ dir, port: 0, clock: () => now + 2 * DAY }), /responder\.crt: not valid now/)
  })

  it('stops signing with a revoked delegated certificate, and runs from a copy without the CA key', async () => {
    const dir = tmp.file('delegated-only')
    await initCa({ dir, subject: 'CN=Delegated Only CA', now })
    const leaf = tmp.file('delegated-leaf.crt')
    await issueCertificate({ dir, subject: 'CN=leaf', outFile: leaf, now })
    const created = await createResponderCert({ dir, now })
    rmSync(join(dir, 'ca.key'))
    const responder = await start({ dir })
    assert.equal(responder.signer, 'responder')
    const ca = join(dir, 'ca.crt')
    const good = await openssl('ocsp', '-issuer', ca, '-cert', leaf, '-url', responder.url, '-CAfile', ca)
    assert.match(good.stderr, /Response verify OK/)
    assert.match(good.stdout, /delegated-leaf\.crt: good/)
    await revokeCertificate({ dir, serial: created.serial, reason: 'keyCompromise', now })
    assert.match((await openssl('ocsp', '-issuer', ca, '-cert', leaf, '-url', responder.url, '-CAfile', ca)).output, /Responder Error: internalerror \(2\)/)
  })

  it('answers internalError rather than a stale status when the index cannot be read', async () => {
    const dir = tmp.file('corrupt')
    await initCa({ dir, subject: 'CN=Corrupt Index CA', now })
    const leaf = tmp.file('corrupt-leaf.crt')
    await issueCertificate({ dir, subject: 'CN=leaf', outFile: leaf, now })
    const responder = await start({ dir })
    const ca = join(dir, 'ca.crt')
    assert.match((await openssl('ocsp', '-issuer', ca, '-cert', leaf, '-url', responder.url, '-CAfile', ca)).stdout, /corrupt-leaf\.crt: good/)
    const indexPath = join(dir, 'index.json')
    const saved = readFileSync(indexPath, 'utf8')
    writeFileSync(indexPath, '{"version": 1, "certificates": "oops"}')
    assert.match((await openssl('ocsp', '-issuer', ca, '-cert', leaf, '-url', responder.url, '-CAfile', ca)).output, /Responder Error: internalerror \(2\)/)
    writeFileSync(indexPath, saved)
    assert.match((await openssl('ocsp', '-issuer', ca, '-cert', leaf, '-url', responder.url, '-CAfile', ca)).stdout, /corrupt-leaf\.crt: good/)
  })

  it('refuses to start with a signing key that group or others can read', async () => {
    const dir = tmp.file('loose')
    await initCa({ dir, subject: 'CN=Loose Key CA', now })
    chmodSync(join(dir, 'ca.key'), 0o644)
    await assert.rejects(startOcspResponder({ dir, port: 0 }), /ca\.key: private key is accessible by group or others \(mode 0644\)/)
  })
})
