// OCSP stapling for the gateway's own certificate (issue 3), checked with the real openssl
// s_client -status against a gateway whose certificate comes from a partner CA (src/ca) that
// runs the built-in OCSP responder.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect } from 'node:tls'
import { setTimeout as delay } from 'node:timers/promises'
import { initCa } from '../../src/ca/init.ts'
import { startOcspResponder, type RunningOcspResponder } from '../../src/ca/ocsp-responder.ts'
import { freePort } from '../../dev/ports.ts'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'
import { issueServerCertificateFromCaStore } from '../support/server-certificates.ts'
import { tempDir, type TempDir } from '../unit/ca/ca-fixture.ts'

interface SClient {
  readonly code: number | null
  readonly output: string
}

/** openssl s_client asking for a stapled status; stdin closed so it ends after the handshake. */
function sClientStatus(port: number, ...extra: string[]): Promise<SClient> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-status', ...extra], {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk))
    child.stderr.on('data', (chunk: Buffer) => (output += chunk))
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, output }))
    child.stdin.end()
  })
}

/** Whether a fresh handshake gets a stapled response (node's client asking for one). */
function stapled(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    let response: Buffer | null = null
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, requestOCSP: true }, () => {
      socket.end()
      resolve(response !== null)
    })
    socket.on('OCSPResponse', (der: Buffer | null) => (response = der))
    socket.once('error', reject)
  })
}

async function waitFor(what: string, condition: () => Promise<boolean>, limitMs = 15_000): Promise<void> {
  const deadline = Date.now() + limitMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await delay(50)
  }
}

describe("OCSP stapling of the gateway's own certificate", () => {
  let tmp: TempDir
  let caDir: string
  let ocspPort: number
  let responder: RunningOcspResponder
  const gateways: TestGateway[] = []

  async function gatewayWithCertificate(name: string, ocspUrl?: string): Promise<{ gw: TestGateway; serial: string; port: number }> {
    const issued = await issueServerCertificateFromCaStore(caDir, ocspUrl ? { ocspUrl } : {})
    const certFile = tmp.file(`${name}.crt`)
    const keyFile = tmp.file(`${name}.key`)
    writeFileSync(certFile, issued.certPem + readFileSync(join(caDir, 'ca.crt'), 'utf8'))
    writeFileSync(keyFile, issued.keyPem, { mode: 0o600 })
    const gw = await startTestGateway({
      config: {
        listener: {
          tls: { certFile, keyFile, clientCaFile: 'client-ca.crt', clientIntermediatesFile: 'client-intermediates.crt', clientCertificate: 'request' },
        },
        reload: { pollIntervalMs: 100 },
      },
    })
    gateways.push(gw)
    return { gw, serial: issued.serial, port: Number(new URL(gw.baseUrl).port) }
  }

  before(async () => {
    tmp = tempDir('fapi-stapling-')
    caDir = tmp.file('server-ca')
    ocspPort = await freePort()
    await initCa({ dir: caDir, subject: 'CN=Gateway Server CA, O=Bank', ocspUrl: `http://127.0.0.1:${ocspPort}`, now: Date.now() })
    responder = await startOcspResponder({ dir: caDir, port: ocspPort, nextUpdateSeconds: 600 })
  })
  after(async () => {
    await Promise.allSettled(gateways.map((gw) => gw.close()))
    await responder.close()
    tmp.remove()
  })

  it("staples a good response from the responder in the certificate's AIA extension, which openssl s_client verifies", async () => {
    const { port, serial } = await gatewayWithCertificate('stapled')
    await waitFor('a stapled response', () => stapled(port))
    for (const version of ['-tls1_3', '-tls1_2']) {
      const result = await sClientStatus(port, version, '-CAfile', join(caDir, 'ca.crt'))
      assert.match(result.output, /OCSP Response Status: successful/, result.output)
      assert.match(result.output, /Cert Status: good/)
      assert.match(result.output, new RegExp(`Serial Number: ${serial}`, 'i'))
      assert.match(result.output, /Verify return code: 0 \(ok\)/)
    }
  })

  it('staples for the new certificate after a rotation', async () => {
    const { gw, port, serial } = await gatewayWithCertificate('rotating')
    await waitFor('a stapled response', () => stapled(port))
    const next = await issueServerCertificateFromCaStore(caDir)
    assert.notEqual(next.serial, serial)
    const certFile = tmp.file('rotating.crt')
    const keyFile = tmp.file('rotating.key')
    const caPem = readFileSync(join(caDir, 'ca.crt'), 'utf8')
    writeFileSync(`${certFile}.next`, next.certPem + caPem)
    writeFileSync(`${keyFile}.next`, next.keyPem, { mode: 0o600 })
    renameSync(`${certFile}.next`, certFile)
    renameSync(`${keyFile}.next`, keyFile)
    await waitFor('the stapled response for the new certificate', async () => {
      const result = await sClientStatus(port)
      return new RegExp(`Serial Number: ${next.serial}`, 'i').test(result.output) && /Cert Status: good/.test(result.output)
    })
    assert.ok(gw.log.events().some((event) => event.event.action === 'config.reloaded'))
  })

  it('never holds up a handshake: with the responder unreachable, nothing is stapled and the handshake completes', async () => {
    const closedPort = await freePort()
    const { gw, port } = await gatewayWithCertificate('unreachable', `http://127.0.0.1:${closedPort}`)
    const result = await sClientStatus(port, '-CAfile', join(caDir, 'ca.crt'))
    assert.match(result.output, /OCSP response: no response sent/, result.output)
    assert.match(result.output, /Verify return code: 0 \(ok\)/)
    assert.equal(result.code, 0)
    assert.ok(
      gw.log.lines.some((line) => line.includes('OCSP stapling: no usable response')),
      'the failure is logged',
    )
  })
})
