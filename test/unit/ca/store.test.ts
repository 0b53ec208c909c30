// The file-based CA store: layout, key file permissions, atomic writes, clear errors.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { CaError } from '../../../src/ca/ca-error.ts'
import { writeFileAtomic, withStoreLock } from '../../../src/ca/files.ts'
import { initCa } from '../../../src/ca/init.ts'
import { issueCertificate } from '../../../src/ca/issue.ts'
import { readPrivateKeyFile } from '../../../src/ca/keys.ts'
import { normaliseSerial, openCaStore, readIndex } from '../../../src/ca/store.ts'
import { fixedNow, tempDir, type TempDir } from './ca-fixture.ts'

const mode = (path: string) => statSync(path).mode & 0o777

describe('CA store', () => {
  let tmp: TempDir
  let caDir: string
  const now = fixedNow()

  before(async () => {
    tmp = tempDir()
    caDir = tmp.file('root')
    await initCa({ dir: caDir, subject: 'CN=Store Test Root, O=Bank', ocspUrl: 'http://127.0.0.1:1/ocsp', crlUrl: 'http://127.0.0.1:1/ca.crl', now })
  })
  after(() => tmp.remove())

  it('creates the documented layout, with the key readable by the owner only', () => {
    assert.deepEqual(readdirSync(caDir).sort(), ['ca.crt', 'ca.json', 'ca.key', 'chain.crt', 'index.json', 'issued'])
    assert.equal(mode(join(caDir, 'ca.key')), 0o600)
    assert.equal(mode(caDir), 0o700)
    const settings = JSON.parse(readFileSync(join(caDir, 'ca.json'), 'utf8'))
    assert.equal(settings.version, 1)
    assert.equal(settings.keyType, 'ec-p256')
    assert.equal(settings.ocspUrl, 'http://127.0.0.1:1/ocsp')
    assert.equal(settings.crlUrl, 'http://127.0.0.1:1/ca.crl')
    assert.deepEqual(readIndex(openCaStore(caDir)), { version: 1, crlNumber: 0, certificates: [] })
  })

  it('writes a generated partner key with mode 0600 and records the certificate', async () => {
    const keyFile = tmp.file('partner.key')
    const issued = await issueCertificate({ dir: caDir, subject: 'CN=partner-a', outKeyFile: keyFile, outFile: tmp.file('partner.crt'), now })
    assert.equal(mode(keyFile), 0o600)
    assert.ok(existsSync(join(caDir, 'issued', `${issued.serial}.crt`)))
    const record = readIndex(openCaStore(caDir)).certificates.find((entry) => entry.serial === issued.serial)
    assert.equal(record?.status, 'good')
    assert.equal(record?.kind, 'partner')
    assert.equal(record?.subject, 'CN=partner-a')
  })

  it('never overwrites an existing key file', async () => {
    const keyFile = tmp.file('existing.key')
    writeFileSync(keyFile, 'precious', { mode: 0o600 })
    await assert.rejects(
      issueCertificate({ dir: caDir, subject: 'CN=x', outKeyFile: keyFile, outFile: tmp.file('x.crt'), now }),
      /existing\.key: already exists/,
    )
    assert.equal(readFileSync(keyFile, 'utf8'), 'precious')
  })

  it('refuses a CA key that group or others can read, naming the file and the fix', async () => {
    const dir = tmp.file('loose')
    await initCa({ dir, subject: 'CN=Loose Root', now })
    const keyPath = join(dir, 'ca.key')
    chmodSync(keyPath, 0o644)
    await assert.rejects(
      issueCertificate({ dir, subject: 'CN=partner', outKeyFile: tmp.file('loose-partner.key'), outFile: tmp.file('loose-partner.crt'), now }),
      (error: Error) => error instanceof CaError && error.message.includes(keyPath) && /mode 0644/.test(error.message) && /chmod 600/.test(error.message),
    )
    assert.equal(existsSync(tmp.file('loose-partner.key')), false, 'the generated key is removed when issuing fails')
    chmodSync(keyPath, 0o640)
    assert.throws(() => readPrivateKeyFile(keyPath), /group or others/)
    chmodSync(keyPath, 0o600)
    assert.ok(readPrivateKeyFile(keyPath))
  })

  it('refuses to create a CA in a directory that already holds one or is not empty', async () => {
    await assert.rejects(initCa({ dir: caDir, subject: 'CN=Again', now }), /already holds a CA/)
    const busy = tmp.file('busy')
    mkdirSync(busy)
    writeFileSync(join(busy, 'notes.txt'), 'x')
    await assert.rejects(initCa({ dir: busy, subject: 'CN=Busy', now }), /not empty/)
  })

  it('refuses bad settings with the file and the key that is wrong', async () => {
    await assert.rejects(initCa({ dir: tmp.file('bad-url'), subject: 'CN=Bad', ocspUrl: 'ftp://example', now }), /ocspUrl: must be an http/)
    assert.equal(existsSync(tmp.file('bad-url')), false)
    await assert.rejects(initCa({ dir: tmp.file('bad-subject'), subject: 'not a name', now }), /--subject: "not a name" is not a distinguished name/)
    const broken = tmp.file('broken')
    await initCa({ dir: broken, subject: 'CN=Broken', now })
    const settingsPath = join(broken, 'ca.json')
    const settings = JSON.parse(readFileSync(settingsPath, 'utf8'))
    writeFileSync(settingsPath, JSON.stringify({ ...settings, issuedValidityDays: -1 }))
    assert.throws(
      () => openCaStore(broken),
      (error: Error) => error instanceof CaError && error.message.startsWith(`${settingsPath}: issuedValidityDays:`),
    )
    writeFileSync(settingsPath, '{not json')
    assert.throws(() => openCaStore(broken), /ca\.json: not valid JSON/)
    assert.throws(() => openCaStore(tmp.file('nowhere')), /no such CA directory/)
    assert.throws(() => openCaStore(tmp.path), /not a CA store/)
  })

  it('replaces files atomically and leaves no temporary file behind', () => {
    const dir = tmp.file('atomic')
    mkdirSync(dir)
    const target = join(dir, 'index.json')
    writeFileAtomic(target, '{"a":1}')
    writeFileAtomic(target, '{"a":2}', 0o600)
    assert.equal(readFileSync(target, 'utf8'), '{"a":2}')
    assert.equal(mode(target), 0o600)
    assert.deepEqual(readdirSync(dir), ['index.json'])
    assert.throws(() => writeFileAtomic(join(dir, 'missing', 'x.json'), 'x'), /missing\/x\.json: cannot write/)
    assert.deepEqual(readdirSync(dir), ['index.json'])
  })

  it('serialises index updates with a lock and takes over a lock left by a dead process', async () => {
    const dir = tmp.file('locked')
    mkdirSync(dir)
    const order: string[] = []
    await Promise.all([
      withStoreLock(dir, async () => {
        order.push('a-start')
        await new Promise((resolve) => setTimeout(resolve, 100))
        order.push('a-end')
      }),
      new Promise((resolve) => setTimeout(resolve, 10)).then(() => withStoreLock(dir, () => order.push('b'))),
    ])
    assert.deepEqual(order, ['a-start', 'a-end', 'b'])
    writeFileSync(join(dir, '.lock'), '999999999')
    assert.equal(await withStoreLock(dir, () => 'taken over'), 'taken over')
    writeFileSync(join(dir, '.lock'), String(process.pid))
    await assert.rejects(
      withStoreLock(dir, () => 'never', 200),
      /locked by another command/,
    )
  })

  it('normalises serial numbers as operators type them', () => {
    assert.equal(normaliseSerial('0x00AB:CD', '--serial'), 'abcd')
    assert.equal(normaliseSerial('4A:0B', '--serial'), '4a0b')
    assert.equal(normaliseSerial('0', '--serial'), '0')
    assert.throws(() => normaliseSerial('xyz', '--serial'), /--serial: "xyz" is not a hexadecimal serial number/)
  })
})
