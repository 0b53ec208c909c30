import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { catalogue, type ErrorCode } from '../../../src/errors.ts'
import { SECURITY_ACTIONS, normaliseIp, refusalAction, toEcs, type SecurityEvent } from '../../../src/observability/ecs.ts'
import { createSecurityEvents, type SecurityEventSink } from '../../../src/observability/events.ts'
import { securityEventValidator } from '../../support/event-schema.ts'

const validate = securityEventValidator()
const NOW = Date.parse('2026-03-01T12:00:00.000Z')
const context = () => ({ now: NOW, id: randomUUID(), hostname: 'gw-0' })
const CERT_THUMBPRINT = createHash('sha256').update('certificate').digest('base64url')
const KEY_THUMBPRINT = createHash('sha256').update('key').digest('base64url')

function refusal(code: ErrorCode, extra: Partial<SecurityEvent> = {}): SecurityEvent {
  return {
    event: 'request.refused',
    reason: code,
    status: catalogue[code].status,
    method: 'GET',
    route: 'accounts-read',
    clientId: 'partner-a',
    subject: 'user-1',
    certThumbprint: CERT_THUMBPRINT,
    keyThumbprint: KEY_THUMBPRINT,
    sourceAddress: '::ffff:203.0.113.9',
    interactionId: 'c0ffee00-0000-4000-8000-000000000001',
    detail: 'why',
    ...extra,
  }
}

test('every refusal code becomes a valid document of the documented schema', () => {
  for (const code of Object.keys(catalogue) as ErrorCode[]) {
    const document = toEcs(refusal(code), context())
    assert.deepEqual(validate(document), [], code)
    assert.equal(document.event.reason, code)
    assert.equal(document.event.outcome, 'failure')
    assert.ok(document.event.type.includes('denied'), code)
    assert.equal(document.http?.response?.status_code, catalogue[code].status)
    assert.equal(document.event.action, refusalAction(code))
  }
})

test('a replayed proof is filed as dpop.replay_detected, an alert', () => {
  const document = toEcs(refusal('GW_DPOP_REPLAY'), context())
  assert.equal(document.event.action, 'dpop.replay_detected')
  assert.equal(document.event.kind, 'alert')
  assert.equal(document.event.severity, 73)
  assert.deepEqual(document.event.category, ['authentication', 'intrusion_detection', 'network'])
})

test('a revoked certificate is filed as cert.revoked, with the certificate in tls.client.x509', () => {
  const notAfter = Date.parse('2027-01-01T00:00:00.000Z')
  const document = toEcs(
    refusal('GW_CLIENT_CERT_REVOKED', { certificate: { subject: 'CN=partner-a', issuer: 'CN=Partner CA', serialNumber: '0A1B', notAfter } }),
    context(),
  )
  assert.equal(document.event.action, 'cert.revoked')
  assert.equal(document.event.kind, 'alert')
  assert.deepEqual(document.tls, {
    client: {
      hash: { sha256: createHash('sha256').update('certificate').digest('hex').toUpperCase() },
      x509: {
        serial_number: '0A1B',
        subject: { distinguished_name: 'CN=partner-a' },
        issuer: { distinguished_name: 'CN=Partner CA' },
        not_after: '2027-01-01T00:00:00.000Z',
      },
    },
  })
  assert.deepEqual(validate(document), [])
})

test('an unreachable replay store, issuer or revocation source is filed as dependency.unavailable', () => {
  for (const [code, dependency] of [
    ['GW_REPLAY_STORE_UNAVAILABLE', 'replay_store'],
    ['GW_ISSUER_UNAVAILABLE', 'issuer'],
    ['GW_REVOCATION_UNAVAILABLE', 'revocation'],
  ] as const) {
    const document = toEcs(refusal(code), context())
    assert.equal(document.event.action, 'dependency.unavailable')
    assert.equal(document.fapi?.dependency, dependency)
    assert.equal(document.log.level, 'error')
    assert.deepEqual(document.event.type, ['denied', 'error'])
  }
})

test('everyday mistakes are low severity, stolen credentials high, the rest medium', () => {
  assert.equal(toEcs(refusal('GW_TOKEN_EXPIRED'), context()).event.severity, 21)
  assert.equal(toEcs(refusal('GW_TOKEN_EXPIRED'), context()).log.level, 'info')
  assert.equal(toEcs(refusal('GW_TOKEN_INVALID'), context()).event.severity, 47)
  assert.equal(toEcs(refusal('GW_TOKEN_INVALID'), context()).event.kind, 'event')
  const stolen = toEcs(refusal('GW_CERT_BINDING_MISMATCH'), context())
  assert.equal(stolen.event.severity, 73)
  assert.equal(stolen.event.kind, 'alert')
  assert.equal(toEcs(refusal('GW_INTERNAL'), context()).log.level, 'error')
})

test('fields follow ECS: identities, thumbprints, source address, request id; no raw path', () => {
  const document = toEcs(refusal('GW_SCOPE_INSUFFICIENT'), context())
  assert.equal(document['@timestamp'], '2026-03-01T12:00:00.000Z')
  assert.equal(document.ecs.version, '8.11.0')
  assert.deepEqual(document.http, { request: { method: 'GET', id: 'c0ffee00-0000-4000-8000-000000000001' }, response: { status_code: 403 } })
  assert.deepEqual(document.source, { ip: '203.0.113.9' })
  assert.deepEqual(document.user, { id: 'user-1' })
  assert.deepEqual(document.fapi, { route: 'accounts-read', client_id: 'partner-a', key_thumbprint: KEY_THUMBPRINT, cert_thumbprint: CERT_THUMBPRINT })
  assert.equal(document.message, 'request.refused: GW_SCOPE_INSUFFICIENT, why')
  assert.ok(!('url' in document))
})

test('every action has a valid document; absent facts are left out, never null', () => {
  for (const action of SECURITY_ACTIONS) {
    const event: SecurityEvent =
      action === 'dependency.unavailable'
        ? { event: action, dependency: 'replay_store' }
        : action === 'dpop.replay_detected'
          ? refusal('GW_DPOP_REPLAY', { event: action })
          : action === 'request.refused'
            ? refusal('GW_TOKEN_INVALID')
            : action === 'cert.near_expiry'
              ? { event: action, certificate: { role: 'server', subject: 'CN=api.bank.example', notAfter: NOW + 86_400_000 } }
              : { event: action, reason: 'x' }
    const document = toEcs(event, context())
    assert.deepEqual(validate(document), [], action)
    assert.equal(document.event.action, action)
    assert.ok(!JSON.stringify(document).includes('null'), action)
  }
  const bare = toEcs({ event: 'config.reloaded' }, context())
  assert.deepEqual(Object.keys(bare).sort(), ['@timestamp', 'ecs', 'event', 'host', 'log', 'message', 'service'])
})

test('the schema refuses a document with a field outside the documented shape', () => {
  const document = { ...toEcs(refusal('GW_TOKEN_INVALID'), context()), token: 'eyJ…' }
  assert.notDeepEqual(validate(document), [])
  const replay = toEcs(refusal('GW_DPOP_REPLAY'), context())
  assert.notDeepEqual(validate({ ...replay, event: { ...replay.event, kind: 'event' } }), [], 'a replay is always an alert')
})

test('long values from tokens are bounded', () => {
  const document = toEcs(refusal('GW_TOKEN_INVALID', { clientId: 'c'.repeat(10_000), subject: 's'.repeat(10_000), detail: 'd'.repeat(10_000) }), context())
  assert.ok(JSON.stringify(document).length < 3_000)
  assert.deepEqual(validate(document), [])
})

test('IPv4 clients on a dual-stack socket are reported as IPv4', () => {
  assert.equal(normaliseIp('::ffff:127.0.0.1'), '127.0.0.1')
  assert.equal(normaliseIp('2001:db8::1'), '2001:db8::1')
  assert.equal(normaliseIp(undefined), undefined)
})

test('createSecurityEvents writes one JSON line per event to every sink and counts it', () => {
  const seen: string[][] = [[], []]
  const sinks: SecurityEventSink[] = seen.map((lines) => ({ write: (line: string) => void lines.push(line), close: async () => {} }))
  const counted: string[] = []
  const events = createSecurityEvents({ sinks, clock: () => NOW, hostname: 'gw-0', onEmit: (action) => counted.push(action) })
  events.emit(refusal('GW_DPOP_REPLAY'))
  events.emit({ event: 'token.revoked', reason: 'admin' })
  assert.equal(seen[0]!.length, 2)
  assert.deepEqual(seen[0], seen[1])
  assert.ok(seen[0]!.every((line) => !line.includes('\n')))
  assert.deepEqual(counted, ['dpop.replay_detected', 'token.revoked'])
  const ids = seen[0]!.map((line) => (JSON.parse(line) as { event: { id: string } }).event.id)
  assert.notEqual(ids[0], ids[1])
})

test('docs/security-events.md: its example validates, and every action is documented and in the schema', () => {
  const docs = readFileSync(new URL('../../../docs/security-events.md', import.meta.url), 'utf8')
  const example = /```json\n([\s\S]+?)\n```/.exec(docs)![1]!
  assert.deepEqual(validate(JSON.parse(example)), [])
  const schema = JSON.parse(readFileSync(new URL('../../../docs/security-event.schema.json', import.meta.url), 'utf8')) as {
    properties: { event: { properties: { action: { enum: string[] } } } }
  }
  assert.deepEqual(schema.properties.event.properties.action.enum, [...SECURITY_ACTIONS])
  for (const action of SECURITY_ACTIONS) assert.match(docs, new RegExp(`^\\| \`${action.replace('.', '\\.')}\` \\|`, 'm'), action)
})
