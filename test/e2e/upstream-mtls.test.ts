// Upstream trust (issue 10, point 14; docs/upstream.md, "Making the upstream accept only the gateway"): an https
// upstream that requires a client certificate gets the gateway's own, from a dedicated CA, and the
// certificate and key rotate from their files without a restart. The upstream is a real nginx with
// ssl_verify_client on and the gateway's DN pinned.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { initCa } from '../../src/ca/init.ts'
import { issueCertificate } from '../../src/ca/issue.ts'
import { chainPem } from '../../dev/pki.ts'
import { certThumbprint, startTestGateway, testPki, type TestGateway } from '../support/gateway.ts'
import { securityEventValidator } from '../support/event-schema.ts'
import { nginxAvailable, startMtlsNginx, type MtlsNginx, type NginxEcho } from '../support/nginx.ts'

// CI installs nginx (.ci/run) and sets CI: there a missing nginx fails the test instead of skipping it.
const skip = !nginxAvailable && !process.env.CI ? 'nginx is not installed (apt-get install nginx-light)' : false

const GATEWAY_SUBJECT = 'CN=fapi-gateway, O=Bank'
/** GATEWAY_SUBJECT as nginx's $ssl_client_s_dn writes it (RFC 2253). */
const GATEWAY_DN = 'O=Bank,CN=fapi-gateway'
const DAY_S = 86_400

interface Identity {
  readonly certPem: string
  readonly keyPem: string
  readonly serial: string
}

/** Replaces a file the way Kubernetes and careful operators do: a new file renamed over the old. */
function replaceFile(path: string, content: string): void {
  writeFileSync(`${path}.next`, content)
  renameSync(`${path}.next`, path)
}

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, limitMs = 15_000): Promise<void> {
  const deadline = Date.now() + limitMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await delay(25)
  }
}

async function expirySeconds(gw: TestGateway, label: string): Promise<number> {
  const metrics = await (await fetch(`http://127.0.0.1:${gw.gateway.adminPort}/metrics`)).text()
  return Number(new RegExp(`fapi_gateway_certificate_expiry_seconds\\{certificate="${label}"\\} (-?\\d+)`).exec(metrics)?.[1])
}

/** Behind nginx's /accounts/slow/: holds each request until release(), then answers with the serial nginx saw. */
function startSlowBackend() {
  const held: { serial: string; res: ServerResponse }[] = []
  const waiters: (() => void)[] = []
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    held.push({ serial: String(req.headers['x-client-serial']), res })
    for (const wake of waiters.splice(0)) wake()
  })
  return {
    server,
    listen: () => new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port))),
    /** Resolves once `count` requests are held. */
    async arrived(count: number): Promise<void> {
      while (held.length < count) await new Promise<void>((resolve) => waiters.push(resolve))
    },
    release(): void {
      for (const { serial, res } of held.splice(0)) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ clientSerial: serial }))
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

describe('mTLS from the gateway to an upstream that requires it (nginx, ssl_verify_client on)', { skip }, () => {
  let caDir: string
  let nginx: MtlsNginx
  const slow = startSlowBackend()
  const gateways: TestGateway[] = []
  const dirs: string[] = []

  /** A client certificate from the dedicated upstream-client CA (the project's own CA tooling). */
  async function gatewayIdentity(subject = GATEWAY_SUBJECT, validityDays = 90): Promise<Identity> {
    const issued = await issueCertificate({ dir: caDir, subject, validityDays, now: Date.now() })
    return { certPem: issued.certPem, keyPem: issued.keyPem!, serial: issued.serial }
  }

  /** A gateway whose data-api upstream is nginx; with `identity`, it presents upstream-client.crt/.key there. */
  async function startGateway(identity?: Pick<Identity, 'certPem' | 'keyPem'>): Promise<TestGateway> {
    const dir = mkdtempSync(join(tmpdir(), 'fapi-upstream-mtls-'))
    dirs.push(dir)
    if (identity) {
      writeFileSync(join(dir, 'upstream-client.crt'), identity.certPem)
      writeFileSync(join(dir, 'upstream-client.key'), identity.keyPem, { mode: 0o600 })
    }
    const upstream = { url: nginx.url, caFile: 'client-ca.crt', ...(identity && { certFile: 'upstream-client.crt', keyFile: 'upstream-client.key' }) }
    const gw = await startTestGateway({ dir, pki: await testPki(), config: { upstreams: { 'data-api': upstream }, reload: { pollIntervalMs: 100 } } })
    gateways.push(gw)
    return gw
  }

  async function getAccount(gw: TestGateway, path: string) {
    const token = await gw.issuer.mint({ x5t: certThumbprint(gw.pki.partnerA) })
    return gw.client(gw.pki.partnerA).send('GET', path, [['authorization', `Bearer ${token}`]])
  }

  // nginx writes its access-log line after the answer has gone out: wait for the lines expected (at most 5 s).
  const served = async (uri: string, expected = 1) => {
    const deadline = Date.now() + 5_000
    for (;;) {
      const lines = nginx.accessLog().filter((line) => line.uri === uri)
      if (lines.length >= expected || Date.now() > deadline) return lines
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  before(async () => {
    const pki = await testPki()
    caDir = join(mkdtempSync(join(tmpdir(), 'fapi-upstream-client-ca-')), 'ca')
    const ca = await initCa({ dir: caDir, subject: 'CN=Bank Upstream Client CA, O=Bank', now: Date.now() })
    nginx = await startMtlsNginx({
      certPem: chainPem(pki.server, pki.intermediate),
      keyPem: pki.server.keyPem,
      clientCaPem: ca.certPem,
      allowedClientDn: GATEWAY_DN,
      slowBackendPort: await slow.listen(),
    })
  })
  after(async () => {
    await Promise.allSettled(gateways.map((gw) => gw.close()))
    await nginx?.close()
    slow.release()
    await slow.close()
    for (const dir of [caDir && join(caDir, '..'), ...dirs]) if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('without a client certificate configured: the handshake fails, the partner gets 502 GW_UPSTREAM_UNAVAILABLE, nginx serves nothing', async () => {
    const gw = await startGateway()
    const response = await getAccount(gw, '/accounts/without-cert')
    assert.equal(response.status, 502, response.body)
    assert.equal(response.json?.code, 'GW_UPSTREAM_UNAVAILABLE')
    assert.doesNotMatch(response.body, /nginx|certificate|ssl/i, 'nothing about the upstream leaks')
    assert.deepEqual(await served('/accounts/without-cert', 0), [])
    const refused = gw.log.events().filter((event) => event.event.action === 'request.refused')
    assert.deepEqual(
      refused.map((event) => event.event.reason),
      ['GW_UPSTREAM_UNAVAILABLE'],
    )
  })

  it('with the gateway client certificate: nginx verifies it, sees the gateway DN and answers; the expiry gauge reports it', async () => {
    const identity = await gatewayIdentity()
    const gw = await startGateway(identity)
    const response = await getAccount(gw, '/accounts/with-cert')
    assert.equal(response.status, 200, response.body)
    const echo = response.json as unknown as NginxEcho
    assert.equal(echo.verify, 'SUCCESS')
    assert.equal(echo.clientDn, GATEWAY_DN)
    assert.equal(echo.clientSerial.toLowerCase(), identity.serial.toLowerCase())
    assert.equal(echo.uri, '/accounts/with-cert')
    assert.equal(echo.interactionId, response.headers['x-fapi-interaction-id'])
    assert.deepEqual(
      (await served('/accounts/with-cert')).map((line) => line.status),
      [200],
    )

    const seconds = await expirySeconds(gw, 'upstream-client:data-api')
    assert.ok(seconds > 89 * DAY_S && seconds <= 90 * DAY_S, String(seconds))
    assert.ok((await expirySeconds(gw, 'server')) > 0, 'the listener certificate is still reported')
  })

  it('a certificate from another CA, or from the dedicated CA with another DN, is not served by nginx', async () => {
    const pki = await testPki()
    const otherCa = await startGateway({ certPem: pki.partnerB.certPem, keyPem: pki.partnerB.keyPem })
    assert.equal((await getAccount(otherCa, '/accounts/other-ca')).status, 400, 'nginx answers a certificate it cannot verify itself')
    assert.deepEqual(
      (await served('/accounts/other-ca')).map((line) => [line.status, line.verify.startsWith('FAILED')]),
      [[400, true]],
    )

    const otherDn = await startGateway(await gatewayIdentity('CN=someone-else, O=Bank'))
    const response = await getAccount(otherDn, '/accounts/other-dn')
    assert.equal(response.status, 403)
    assert.deepEqual(response.json, { refused: 'client DN' })
    assert.deepEqual(
      (await served('/accounts/other-dn')).map((line) => [line.status, line.verify]),
      [[403, 'SUCCESS']],
    )
  })

  it('rotation: new certificate and key files are used for new connections without a restart, a request under way finishes; the gauge and cert.near_expiry follow', async () => {
    const first = await gatewayIdentity()
    const gw = await startGateway(first)
    const before = await getAccount(gw, '/accounts/before-rotation')
    assert.equal(before.status, 200, before.body)
    assert.equal((before.json as unknown as NginxEcho).clientSerial.toLowerCase(), first.serial.toLowerCase())
    // Under way during the whole rotation, on a connection made with the first certificate.
    const underWay = getAccount(gw, '/accounts/slow/1')
    await slow.arrived(1)

    // Same DN, new key and serial, and short-lived: fewer than listener.tls.expiryWarningDays (14) left.
    const second = await gatewayIdentity(GATEWAY_SUBJECT, 5)
    replaceFile(join(gw.dir, 'upstream-client.key'), second.keyPem)
    replaceFile(join(gw.dir, 'upstream-client.crt'), second.certPem)
    const reloaded = () => gw.log.events().filter((event) => event.event.action === 'config.reloaded' && /changed: .*upstreams/.test(event.message))
    await waitFor('the reload with the new upstream certificate', () => reloaded().length > 0)

    const after = await getAccount(gw, '/accounts/after-rotation')
    assert.equal(after.status, 200, after.body)
    const echo = after.json as unknown as NginxEcho
    assert.equal(echo.clientDn, GATEWAY_DN)
    assert.equal(echo.clientSerial.toLowerCase(), second.serial.toLowerCase(), 'a new connection with the new certificate')
    slow.release()
    const finished = await underWay
    assert.equal(finished.status, 200, finished.body)
    assert.equal(String(finished.json?.clientSerial).toLowerCase(), first.serial.toLowerCase(), 'finished on the old pool')

    const seconds = await expirySeconds(gw, 'upstream-client:data-api')
    assert.ok(seconds > 4 * DAY_S && seconds <= 5 * DAY_S, String(seconds))
    const warnings = gw.log.events().filter((event) => event.event.action === 'cert.near_expiry' && event.fapi?.certificate_role === 'upstream_client')
    assert.equal(warnings.length, 1, JSON.stringify(warnings))
    const [warning] = warnings
    assert.equal(warning!.event.reason, 'cert.expires_soon')
    assert.match(warning!.message, /upstream-client:data-api expires in 4 days/)
    assert.equal(
      (warning as unknown as { tls: { client: { x509: { serial_number: string } } } }).tls.client.x509.serial_number.toLowerCase(),
      second.serial.toLowerCase(),
    )
    assert.deepEqual(securityEventValidator()(warning!), [])
  })
})
