// Acceptance: a scripted attack (replayed proof, stolen tokens, a wrong, an untrusted and a revoked
// certificate, a revoked token) through the real gateway. The event stream on stdout and the one
// the HTTP sink delivers hold exactly one event of the documented shape
// (docs/security-event.schema.json) per refusal, and no token, proof or key material at all.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomUUID } from 'node:crypto'
import { connect } from 'node:net'
import { exportJWK } from 'jose'
import { GatewayError, catalogue, type ErrorCode } from '../../src/errors.ts'
import { createProof, generateDpopKey, type DpopKey, type PartnerClient } from '../../src/client/partner-client.ts'
import type { Issued } from '../../dev/pki.ts'
import type { RevocationChecker } from '../../src/checks/revocation.ts'
import type { EcsSecurityEvent } from '../../src/observability/ecs.ts'
import { startEventCollector, type EventCollector } from '../support/event-collector.ts'
import { securityEventValidator } from '../support/event-schema.ts'
import { certThumbprint, startTestGateway, testPki, type TestGateway } from '../support/gateway.ts'

const ADMIN_TOKEN = 'admin-token-for-the-security-event-test-0123456789'
const validate = securityEventValidator()

function pemBody(pem: string): string[] {
  return pem
    .split(/-----[A-Z ]+-----/)
    .map((s) => s.replace(/\s+/g, ''))
    .filter((s) => s.length > 40)
}

async function until(what: string, condition: () => boolean, limitMs = 15_000): Promise<void> {
  const deadline = Date.now() + limitMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

async function metricValue(gw: TestGateway, series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${gw.gateway.adminPort}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line ? Number(line.split(' ')[1]) : 0
}

describe('security events during a scripted attack', () => {
  let gw: TestGateway
  let collector: EventCollector
  const revoked = new Set<string>()
  /** Every secret the attack used: none of them may appear in any output. */
  const secrets: string[] = [ADMIN_TOKEN]
  /** interaction id → the code the gateway answered with. */
  const refusals = new Map<string, ErrorCode>()

  const revocation: RevocationChecker = {
    async check(cert) {
      if (revoked.has(cert.thumbprint)) throw new GatewayError('GW_CLIENT_CERT_REVOKED', { detail: 'revoked by the test CA' })
    },
  }

  async function mint(options: Parameters<TestGateway['issuer']['mint']>[0]): Promise<string> {
    const token = await gw.issuer.mint(options)
    secrets.push(token)
    return token
  }

  async function proof(key: DpopKey, path: string, token: string): Promise<string> {
    const value = await createProof(key, { htm: 'GET', htu: gw.url(path), accessToken: token })
    secrets.push(value)
    return value
  }

  async function dpopKey(): Promise<DpopKey> {
    const key = await generateDpopKey('ES256')
    const jwk = await exportJWK(key.privateKey)
    secrets.push(String(jwk.d))
    return key
  }

  /** Sends a request that must be refused with `code`, and remembers it by interaction id. */
  async function expectRefusal(code: ErrorCode, client: PartnerClient, path: string, headers: [string, string][]): Promise<void> {
    const interactionId = randomUUID()
    const response = await client.send('GET', path, [...headers, ['x-fapi-interaction-id', interactionId]])
    assert.equal(response.json?.code, code, response.body)
    assert.equal(response.status, catalogue[code].status)
    refusals.set(interactionId, code)
  }

  before(async () => {
    collector = await startEventCollector()
    gw = await startTestGateway({
      env: { FAPI_GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN },
      config: { events: { stdout: true, http: { url: collector.url, batchSize: 5, flushIntervalMs: 50 } } },
      gateway: { revocation },
    })
    const pki = await testPki()
    for (const issued of [pki.partnerA, pki.partnerB, pki.untrusted] as Issued[]) secrets.push(...pemBody(issued.keyPem), ...pemBody(issued.certPem))
  })

  after(async () => {
    await gw?.close()
    await collector?.close()
  })

  it('runs the attack: every attempt is refused, the legitimate requests pass', async () => {
    const pki = await testPki()
    const anonymous = gw.client()
    const partnerA = gw.client(pki.partnerA)
    const partnerB = gw.client(pki.partnerB)

    // A legitimate DPoP client, then a replay of its proof.
    const key = await dpopKey()
    const token = await mint({ jkt: key.jkt, sub: 'customer-42' })
    const used = await proof(key, '/accounts/1', token)
    assert.equal(
      (
        await anonymous.send('GET', '/accounts/1', [
          ['authorization', `DPoP ${token}`],
          ['dpop', used],
        ])
      ).status,
      200,
    )
    await expectRefusal('GW_DPOP_REPLAY', anonymous, '/accounts/1', [
      ['authorization', `DPoP ${token}`],
      ['dpop', used],
    ])

    // The token stolen: presented with the thief's own key, then downgraded to Bearer.
    const thief = await dpopKey()
    await expectRefusal('GW_DPOP_BINDING_MISMATCH', anonymous, '/accounts/1', [
      ['authorization', `DPoP ${token}`],
      ['dpop', await proof(thief, '/accounts/1', token)],
    ])
    await expectRefusal('GW_TOKEN_DOWNGRADE', anonymous, '/accounts/1', [['authorization', `Bearer ${token}`]])

    // A certificate-bound token: fine over partner A's connection, refused over partner B's, and
    // over a certificate from a CA the gateway does not trust.
    const bound = await mint({ x5t: certThumbprint(pki.partnerA), sub: 'customer-42' })
    assert.equal((await partnerA.send('GET', '/accounts/1', [['authorization', `Bearer ${bound}`]])).status, 200)
    await expectRefusal('GW_CERT_BINDING_MISMATCH', partnerB, '/accounts/1', [['authorization', `Bearer ${bound}`]])
    await expectRefusal('GW_CLIENT_CERT_INVALID', gw.client(pki.untrusted), '/accounts/1', [['authorization', `Bearer ${bound}`]])

    // Partner B's certificate is revoked.
    const boundB = await mint({ x5t: certThumbprint(pki.partnerB), clientId: 'partner-b' })
    revoked.add(certThumbprint(pki.partnerB))
    await expectRefusal('GW_CLIENT_CERT_REVOKED', gw.client(pki.partnerB), '/accounts/1', [['authorization', `Bearer ${boundB}`]])

    // A token revoked through the admin endpoint.
    const revocable = await mint({ jkt: key.jkt })
    const answer = await fetch(`http://127.0.0.1:${gw.gateway.adminPort}/revoked-tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ token: revocable }),
    })
    assert.equal(answer.status, 201)
    await expectRefusal('GW_TOKEN_REVOKED', anonymous, '/accounts/1', [
      ['authorization', `DPoP ${revocable}`],
      ['dpop', await proof(key, '/accounts/1', revocable)],
    ])

    // No token at all, and a plain-HTTP client on the TLS port.
    await expectRefusal('GW_TOKEN_MISSING', anonymous, '/accounts/1', [])
    await new Promise<void>((resolve) => {
      const socket = connect(new URL(gw.baseUrl).port as unknown as number, '127.0.0.1', () => socket.end('GET /accounts/1 HTTP/1.1\r\nHost: x\r\n\r\n'))
      socket.on('close', () => resolve())
      socket.on('error', () => resolve())
      socket.resume()
    })
    await until('the handshake failure event', () => gw.log.events().some((e) => e.event.action === 'tls.handshake_failed'))
  })

  it('emits exactly one event of the documented shape per refusal, with the reason, identities and thumbprints', async () => {
    const pki = await testPki()
    const events = gw.log.events()
    for (const event of events) assert.deepEqual(validate(event), [], JSON.stringify(event))
    const perRequest = events.filter((e) => e.http?.response !== undefined)
    assert.equal(perRequest.length, refusals.size, 'one event per refusal, no more')
    const byId = new Map(perRequest.map((e) => [e.http!.request!.id!, e]))
    for (const [interactionId, code] of refusals) {
      const event = byId.get(interactionId)
      assert.ok(event, `an event for the ${code} refusal`)
      assert.equal(event.event.reason, code)
      assert.equal(event.http?.response?.status_code, catalogue[code].status)
      assert.equal(event.http?.request?.method, 'GET')
      assert.equal(event.source?.ip, '127.0.0.1')
      assert.equal(event.fapi?.route, 'accounts-read')
      assert.deepEqual(event.event.type.includes('denied'), true)
    }
    const find = (code: ErrorCode): EcsSecurityEvent => perRequest.find((e) => e.event.reason === code)!

    const replay = find('GW_DPOP_REPLAY')
    assert.equal(replay.event.action, 'dpop.replay_detected')
    assert.equal(replay.event.kind, 'alert')
    assert.equal(replay.user?.id, 'customer-42')
    assert.equal(replay.fapi?.client_id, 'partner-a')
    assert.match(replay.fapi?.key_thumbprint ?? '', /^[A-Za-z0-9_-]{43}$/)

    // The structured reason: the step that refused, and the rule within it where there is one.
    assert.equal(replay.fapi?.check, 'replay')
    assert.equal(find('GW_TOKEN_MISSING').fapi?.check, 'credentials')
    assert.equal(find('GW_CLIENT_CERT_REVOKED').fapi?.check, 'revocation')

    const stolen = find('GW_DPOP_BINDING_MISMATCH')
    assert.equal(stolen.fapi?.check, 'dpop')
    assert.equal(stolen.event.kind, 'alert')
    assert.notEqual(stolen.fapi?.key_thumbprint, replay.fapi?.key_thumbprint, "the thief's key, not the owner's")

    const wrongCert = find('GW_CERT_BINDING_MISMATCH')
    assert.equal(wrongCert.fapi?.cert_thumbprint, certThumbprint(pki.partnerB))
    assert.deepEqual((wrongCert.tls?.client as { hash: unknown }).hash, {
      sha256: createHash('sha256').update(pki.partnerB.cert.raw).digest('hex').toUpperCase(),
    })

    const revokedCert = find('GW_CLIENT_CERT_REVOKED')
    assert.equal(revokedCert.event.action, 'cert.revoked')
    assert.equal(revokedCert.event.kind, 'alert')
    const x509 = (revokedCert.tls?.client as { x509: { serial_number: string; subject: { distinguished_name: string } } }).x509
    assert.equal(x509.serial_number, pki.partnerB.cert.serialNumber)
    assert.ok(x509.subject.distinguished_name.length > 0)

    assert.equal(find('GW_TOKEN_REVOKED').event.kind, 'alert')
    assert.equal(find('GW_TOKEN_MISSING').event.severity, 21)

    const admin = events.filter((e) => e.event.action === 'token.revoked')
    assert.equal(admin.length, 1)
    assert.equal(admin[0]!.event.outcome, 'success')
    assert.equal(events.filter((e) => e.event.action === 'tls.handshake_failed').length, 1)
  })

  it('delivers the same events to the HTTP sink, batched', async () => {
    const stdoutIds = gw.log
      .events()
      .map((e) => e.event.id)
      .sort()
    await collector.waitForLines(stdoutIds.length)
    const received = collector.lines().map((line) => JSON.parse(line) as EcsSecurityEvent)
    assert.deepEqual(received.map((e) => e.event.id).sort(), stdoutIds)
    assert.ok(collector.batches.length < received.length, 'several events per POST')
    assert.equal(collector.batches[0]!.headers['content-type'], 'application/x-ndjson')
    for (const event of received) assert.deepEqual(validate(event), [])
  })

  it('writes no token, proof, key or certificate material anywhere', () => {
    const output = [...gw.log.lines, ...collector.lines()].join('\n')
    assert.ok(secrets.length > 15)
    for (const secret of secrets) assert.ok(!output.includes(secret), `a secret (${secret.slice(0, 12)}…) leaked into the output`)
    assert.doesNotMatch(output, /eyJ[A-Za-z0-9_-]{10,}\.eyJ/, 'no JWT of any kind')
    assert.doesNotMatch(output, /-----BEGIN/, 'no PEM')
    assert.doesNotMatch(output, /"d":"/, 'no private JWK')
  })
})

describe('the HTTP sink never holds up requests', () => {
  let gw: TestGateway
  let collector: EventCollector

  before(async () => {
    collector = await startEventCollector()
    gw = await startTestGateway({
      config: {
        events: {
          stdout: false,
          http: { url: collector.url, batchSize: 1, flushIntervalMs: 20, maxQueue: 2, maxRetries: 0, retryBackoffMs: 10, timeoutMs: 60_000 },
        },
      },
    })
  })
  after(async () => {
    await gw?.close()
    await collector?.close()
  })

  async function traffic(): Promise<void> {
    const key = await generateDpopKey('ES256')
    const token = await gw.issuer.mint({ jkt: key.jkt })
    const client = gw.client()
    for (let i = 0; i < 5; i++) {
      const value = await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: token })
      assert.equal(
        (
          await client.send('GET', '/accounts/1', [
            ['authorization', `DPoP ${token}`],
            ['dpop', value],
          ])
        ).status,
        200,
      )
      assert.equal((await client.send('GET', '/accounts/1', [])).status, 401)
    }
  }

  it('while the collector hangs or is down, requests are answered and the drops are counted; when it is back, events flow again', async () => {
    collector.setMode('hang')
    await traffic()
    assert.ok((await metricValue(gw, 'fapi_gateway_security_events_dropped_total{reason="queue_full"}')) > 0, 'a full queue drops')

    await collector.stop()
    await traffic()
    const deadline = Date.now() + 15_000
    while ((await metricValue(gw, 'fapi_gateway_security_events_dropped_total{reason="sink_unavailable"}')) === 0) {
      assert.ok(Date.now() < deadline, 'batches given up while the collector is down are counted')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    assert.equal(gw.log.events().length, 0, 'events.stdout: false')

    await collector.start()
    collector.setMode('accept')
    await traffic()
    await collector.waitForLines(5)
    const delivered = collector.lines().map((line) => JSON.parse(line) as EcsSecurityEvent)
    assert.ok(delivered.every((e) => e.event.reason === 'GW_TOKEN_MISSING'))
    assert.ok((await metricValue(gw, 'fapi_gateway_security_events_delivered_total')) >= 5)
  })
})
