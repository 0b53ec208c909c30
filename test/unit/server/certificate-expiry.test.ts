// The certificate expiry gauge and the cert.near_expiry event.
import { before, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { Registry } from 'prom-client'
import { createDevPki, type DevPki } from '../../../dev/pki.ts'
import type { SecurityEvent } from '../../../src/observability/events.ts'
import { toEcs } from '../../../src/observability/ecs.ts'
import { certificatesOf, createCertificateExpiry } from '../../../src/server/certificate-expiry.ts'
import type { TlsMaterial } from '../../../src/pipeline.ts'
import { securityEventValidator } from '../../support/event-schema.ts'

const DAY_MS = 24 * 60 * 60 * 1000
let pki: DevPki

before(async () => {
  pki = await createDevPki()
})

function material(): TlsMaterial {
  return {
    certPem: '',
    keyPem: '',
    clientCaPem: '',
    clientIntermediatesPem: '',
    options: {},
    serverChain: [pki.server.cert, pki.intermediate.cert],
    clientAnchors: [pki.root.cert, pki.untrustedRoot.cert],
    clientIntermediates: [pki.intermediate.cert],
  }
}

function setup(nowMs: number, warningDays: number) {
  const registry = new Registry()
  const emitted: SecurityEvent[] = []
  let now = nowMs
  const expiry = createCertificateExpiry({
    registry,
    certificates: () => certificatesOf(material()),
    warningDays: () => warningDays,
    now: () => now,
    events: { emit: (event) => void emitted.push(event) },
  })
  return { registry, emitted, expiry, advance: (ms: number) => void (now += ms) }
}

test('labels: server, server-chain, client-ca and client-intermediate with the subject CN; equal names told apart by serial', () => {
  assert.deepEqual(
    certificatesOf(material()).map((c) => c.label),
    [
      'server',
      'server-chain:fapi-gateway Dev Partner CA',
      'client-ca:fapi-gateway Dev Root CA',
      'client-ca:Untrusted Root CA',
      'client-intermediate:fapi-gateway Dev Partner CA',
    ],
  )
  const twins = certificatesOf({ ...material(), clientAnchors: [pki.root.cert, pki.root.cert] })
  const labels = twins.filter((c) => c.label.startsWith('client-ca:')).map((c) => c.label)
  assert.equal(labels.length, 2)
  for (const label of labels) assert.match(label, /^client-ca:fapi-gateway Dev Root CA#[0-9a-f]{8}$/)
})

test('labels: the gateway client certificate of each upstream that requires one, and its chain', () => {
  const upstreams = [
    { upstream: 'ledger', chain: [pki.partnerA.cert, pki.intermediate.cert] },
    { upstream: 'cards', chain: [pki.partnerB.cert] },
  ]
  const listed = certificatesOf(material(), upstreams).filter((c) => c.role === 'upstream_client')
  assert.deepEqual(
    listed.map((c) => [c.label, c.cert.serialNumber]),
    [
      ['upstream-client:ledger', pki.partnerA.cert.serialNumber],
      ['upstream-client-chain:ledger:fapi-gateway Dev Partner CA', pki.intermediate.cert.serialNumber],
      ['upstream-client:cards', pki.partnerB.cert.serialNumber],
    ],
  )
})

test('the gauge reports seconds until each certificate expires, read at scrape time, and passes promtool', async () => {
  const now = Date.now()
  const { registry, expiry, advance } = setup(now, 14)
  const text = await registry.metrics()
  const value = (label: string, exposition: string) =>
    Number(new RegExp(`fapi_gateway_certificate_expiry_seconds\\{certificate="${label}"\\} (-?\\d+)`).exec(exposition)?.[1])
  assert.equal(value('server', text), Math.round((pki.server.cert.validToDate.getTime() - now) / 1000))
  assert.equal(value('client-ca:fapi-gateway Dev Root CA', text), Math.round((pki.root.cert.validToDate.getTime() - now) / 1000))
  advance(DAY_MS)
  assert.equal(value('server', await registry.metrics()), Math.round((pki.server.cert.validToDate.getTime() - now - DAY_MS) / 1000))
  const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
  assert.equal(lint.stdout + lint.stderr, '')
  expiry.close()
})

test('cert.near_expiry once per certificate per day when fewer than warningDays remain', () => {
  // The dev server certificate is valid for 365 days, the root for 3650.
  const { emitted, expiry, advance } = setup(Date.now(), 400)
  expiry.check()
  const near = emitted.map((e) => e.detail)
  assert.ok(
    near.some((d) => d?.startsWith('server expires in 36')),
    near.join('\n'),
  )
  assert.ok(!near.some((d) => d?.startsWith('client-ca:fapi-gateway Dev Root CA')), 'the root has years left')
  const first = emitted.length
  expiry.check()
  assert.equal(emitted.length, first, 'not again the same day')
  advance(DAY_MS)
  expiry.check()
  assert.equal(emitted.length, first * 2, 'again the next day')
  const server = emitted.find((e) => e.detail?.startsWith('server '))!
  assert.equal(server.event, 'cert.near_expiry')
  assert.equal(server.reason, 'cert.expires_soon')
  assert.equal(server.certificate?.role, 'server')
  assert.equal(server.certificate?.serialNumber, pki.server.cert.serialNumber)
  const document = toEcs(server, { now: Date.now(), id: '6f1c1c9e-3c4b-4a4e-9f55-3f8a0f0e7d11', hostname: 'h' })
  assert.deepEqual(securityEventValidator()(document), [])
  assert.equal(document.event.action, 'cert.near_expiry')
  assert.equal((document.tls as { server: { x509: { serial_number: string } } }).server.x509.serial_number, pki.server.cert.serialNumber)
  expiry.close()
})

test('an expired certificate is reported as expired; warningDays 0 turns the events off', () => {
  const late = setup(pki.server.cert.validToDate.getTime() + DAY_MS, 14)
  late.expiry.check()
  const server = late.emitted.find((e) => e.detail?.startsWith('server '))!
  assert.equal(server.reason, 'cert.expired')
  assert.match(server.detail!, /^server expired at /)
  late.expiry.close()
  const off = setup(pki.server.cert.validToDate.getTime() + DAY_MS, 0)
  off.expiry.check()
  assert.deepEqual(off.emitted, [])
  off.expiry.close()
})
