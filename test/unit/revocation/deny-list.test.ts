// The operator deny list: formats, matching by issuer and serial or by thumbprint, polling
// hot reload, and a bad file that keeps the previous list.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, unlinkSync, writeFileSync, renameSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { GatewayError } from '../../../src/errors.ts'
import { createDenyList, parseDenyList } from '../../../src/revocation/deny-list.ts'
import { createRevocationPki, type RevocationPki, type TestCert } from '../../support/revocation-pki.ts'
import { createHarness, type Harness } from '../../support/revocation-harness.ts'

async function eventually(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await condition()) return
    await delay(25)
  }
  assert.fail(`timed out waiting for ${what}`)
}

async function outcome(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'accepted',
    (error: unknown) => (error instanceof GatewayError ? error.code : String(error)),
  )
}

describe('deny list', () => {
  let pki: RevocationPki
  let dir: string
  let partner: TestCert
  let other: TestCert
  const harnesses: Harness[] = []
  const issuer = () => pki.ca.node.subject.split('\n').join(', ')

  before(async () => {
    pki = await createRevocationPki('Deny List CA')
    partner = await pki.leaf('deny-partner')
    other = await pki.leaf('deny-other')
    dir = mkdtempSync(join(tmpdir(), 'deny-list-'))
  })
  after(() => {
    for (const h of harnesses) void h.close()
    rmSync(dir, { recursive: true, force: true })
  })

  function harnessWith(file: string, pollMs = 25): Harness {
    // Revocation sources are off: only the deny list decides.
    const h = createHarness({
      cas: [{ name: 'deny-ca', certPem: pki.ca.certPem, policy: { sources: [] } }],
      denyList: (metrics, events, logger) => createDenyList({ file, pollMs, logger, metrics, events: { emit: (e) => void events.push(e) } }),
    })
    harnesses.push(h)
    return h
  }

  it('parses serials (any case, colons) with their issuer and thumbprints in base64url or hex', () => {
    const hexThumbprint = createHash('sha256')
      .update(partner.der)
      .digest('hex')
      .toUpperCase()
      .replace(/(..)(?!$)/g, '$1:')
    const entries = parseDenyList(`
serials:
  - issuer: "CN=Some CA,O=Bank"
    serial: "0A:1B:2C"
    comment: partner X, ticket 42
thumbprints:
  - ${hexThumbprint}
  - thumbprint: ${createHash('sha256').update(other.der).digest('base64url')}
    comment: lost laptop
`)
    assert.equal(entries.serials.get('CN=Some CA,O=Bank|a1b2c'), 'partner X, ticket 42')
    assert.equal(entries.thumbprints.get(createHash('sha256').update(partner.der).digest('base64url')), 'on the deny list')
    assert.equal(entries.thumbprints.get(createHash('sha256').update(other.der).digest('base64url')), 'lost laptop')
    assert.deepEqual([...parseDenyList('').serials], [])
  })

  it('rejects malformed files with the key that is wrong', () => {
    assert.throws(() => parseDenyList('serials:\n  - issuer: X\n    serial: xyz\n'), /serials\.0\.serial: must be hexadecimal/)
    assert.throws(() => parseDenyList('thumbprints: [abc]\n'), /thumbprints\.0/)
    assert.throws(() => parseDenyList('serial: []\n'), /Unrecognized key/)
  })

  it('refuses a listed certificate as revoked, by issuer and serial or by thumbprint, and passes the others', async () => {
    const file = join(dir, 'list-1.yaml')
    writeFileSync(file, `serials:\n  - issuer: "${issuer()}"\n    serial: "${partner.serial.toUpperCase()}"\n    comment: CA slow to revoke\n`)
    const h = harnessWith(file)
    const error = await h.check(h.clientCert(partner.certPem, [pki.ca.certPem])).catch((e: unknown) => e)
    assert.ok(error instanceof GatewayError)
    assert.equal(error.code, 'GW_CLIENT_CERT_REVOKED')
    assert.match(error.detail ?? '', /deny list: CA slow to revoke; serial/)
    assert.equal(await outcome(h.check(h.clientCert(other.certPem, [pki.ca.certPem]))), 'accepted')
    assert.equal(await h.metric('fapi_gateway_revocation_lookups_total', { source: 'deny_list', outcome: 'revoked' }), 1)
    assert.equal(await h.metric('fapi_gateway_revocation_deny_list_entries'), 1)

    const byThumbprint = join(dir, 'list-2.yaml')
    writeFileSync(byThumbprint, `thumbprints:\n  - ${createHash('sha256').update(other.der).digest('base64url')}\n`)
    const h2 = harnessWith(byThumbprint)
    assert.equal(await outcome(h2.check(h2.clientCert(other.certPem, [pki.ca.certPem]))), 'GW_CLIENT_CERT_REVOKED')
    assert.equal(await outcome(h2.check(h2.clientCert(partner.certPem, [pki.ca.certPem]))), 'accepted')
  })

  it('also refuses a chain whose CA certificate is listed', async () => {
    const file = join(dir, 'list-ca.yaml')
    writeFileSync(file, `thumbprints:\n  - ${createHash('sha256').update(pki.ca.der).digest('hex')}\n`)
    const h = harnessWith(file)
    assert.equal(await outcome(h.check(h.clientCert(partner.certPem, [pki.ca.certPem]))), 'GW_CLIENT_CERT_REVOKED')
  })

  it('hot-reloads a changed file (atomic rename included), and a bad file keeps the previous list with an error', async () => {
    const file = join(dir, 'live.yaml')
    writeFileSync(file, 'serials: []\n')
    const h = harnessWith(file)
    const partnerCert = h.clientCert(partner.certPem, [pki.ca.certPem])
    assert.equal(await outcome(h.check(partnerCert)), 'accepted')

    // Written elsewhere and renamed over the file, as editors and ConfigMaps do.
    writeFileSync(join(dir, 'live.tmp'), `serials:\n  - issuer: "${issuer()}"\n    serial: "${partner.serial}"\n`)
    renameSync(join(dir, 'live.tmp'), file)
    await eventually(async () => (await outcome(h.check(partnerCert))) === 'GW_CLIENT_CERT_REVOKED', 'the new list')
    assert.ok(h.events.some((e) => e.event === 'config.reloaded' && e.reason === 'revocation.deny_list'))

    writeFileSync(file, 'serials:\n  - issuer: [not, a, string]\n')
    await eventually(() => h.events.some((e) => e.event === 'config.refused'), 'the refusal event')
    assert.equal(await outcome(h.check(partnerCert)), 'GW_CLIENT_CERT_REVOKED', 'previous list still in force')
    assert.equal(await h.metric('fapi_gateway_revocation_deny_list_reloads_total', { outcome: 'failed' }), 1)
    assert.ok(h.logs.some((l) => l.level === 'error' && /previous list stays/.test(l.msg ?? '')))

    unlinkSync(file)
    await eventually(() => h.events.filter((e) => e.event === 'config.refused').length === 2, 'the missing-file event')
    assert.equal(await outcome(h.check(partnerCert)), 'GW_CLIENT_CERT_REVOKED')

    writeFileSync(file, 'serials: []\n')
    await eventually(async () => (await outcome(h.check(partnerCert))) === 'accepted', 'the emptied list')
  })

  it('refuses to start without a readable, valid file', () => {
    const noop = { emit: () => undefined }
    const h = createHarness({ cas: [] })
    harnesses.push(h)
    const logger = { info: () => undefined, warn: () => undefined, error: () => undefined }
    assert.throws(() => createDenyList({ file: join(dir, 'missing.yaml'), pollMs: 1000, logger, events: noop, metrics: h.metrics }), /ENOENT/)
    writeFileSync(join(dir, 'bad.yaml'), 'thumbprints: [nope]\n')
    assert.throws(() => createDenyList({ file: join(dir, 'bad.yaml'), pollMs: 1000, logger, events: noop, metrics: h.metrics }), /thumbprints\.0/)
  })
})
