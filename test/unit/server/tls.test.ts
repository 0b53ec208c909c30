import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import tls from 'node:tls'
import type { AddressInfo } from 'node:net'
import { createDevPki, type DevPki, type Issued } from '../../../dev/pki.ts'
import { createTlsOptions, FAPI_TLS12_CIPHERS, FAPI_TLS13_CIPHERSUITES, type TlsSettings } from '../../../src/server/tls.ts'
import { inspectPeerCertificate } from '../../../src/server/peer-certificate.ts'
import type { PeerCertificateVerdict } from '../../../src/types.ts'

let pki: DevPki
before(async () => {
  pki = await createDevPki()
})

function pem(...certs: Issued[]): string {
  return certs.map((c) => `${c.certPem.trim()}\n`).join('')
}

function settings(clientCertificate: TlsSettings['clientCertificate'], extra: Partial<TlsSettings> = {}): TlsSettings {
  return { certPem: pem(pki.server, pki.intermediate), keyPem: pki.server.keyPem, clientCaPem: pki.root.certPem, clientCertificate, ...extra }
}

interface Outcome {
  /** The server's 'secureConnection' fired: the gateway would now read HTTP. */
  readonly serverAccepted: boolean
  readonly verdict: PeerCertificateVerdict | undefined
  /** What the client read: the server writes 'welcome' to every accepted connection. */
  readonly received: string
  readonly protocol: string | null | undefined
  readonly cipher: string | undefined
  readonly error: (Error & { code?: string }) | undefined
}

async function connect(tlsSettings: TlsSettings, client: tls.ConnectionOptions = {}): Promise<Outcome> {
  const server = tls.createServer(createTlsOptions(tlsSettings))
  let serverAccepted = false
  let verdict: PeerCertificateVerdict | undefined
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    serverAccepted = true
    verdict = inspectPeerCertificate(socket, {})
    socket.end('welcome')
  })
  server.on('tlsClientError', () => {})
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  try {
    const socket = tls.connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', servername: 'localhost', ca: pki.root.certPem, ...client })
    let protocol: string | null | undefined
    let cipher: string | undefined
    let received = ''
    let error: Error | undefined
    socket.on('secureConnect', () => {
      protocol = socket.getProtocol()
      cipher = socket.getCipher()?.name
    })
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString()
    })
    socket.on('error', (e) => {
      error = e
    })
    await new Promise((resolve) => socket.on('close', resolve))
    return { serverAccepted, verdict, received, protocol, cipher, error }
  } finally {
    server.close()
  }
}

function assertRefused(outcome: Outcome, code?: RegExp): void {
  assert.equal(outcome.serverAccepted, false, 'the server must not accept the connection')
  assert.equal(outcome.received, '')
  if (code) assert.match(outcome.error?.code ?? '', code)
}

test('the cipher constants are the IANA-Recommended ECDHE AEAD suites and the TLS 1.3 suites', () => {
  assert.deepEqual(FAPI_TLS12_CIPHERS.split(':').sort(), [
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ])
  assert.deepEqual(FAPI_TLS13_CIPHERSUITES.split(':'), ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'])
  const options = createTlsOptions(settings('request'))
  assert.equal(options.ciphers, `${FAPI_TLS13_CIPHERSUITES}:${FAPI_TLS12_CIPHERS}:@SECLEVEL=2`)
  assert.equal(options.minVersion, 'TLSv1.2')
  assert.equal(options.maxVersion, 'TLSv1.3')
  assert.equal(options.honorCipherOrder, true)
})

test('TLS 1.3 is negotiated by default', async () => {
  const outcome = await connect(settings('request'))
  assert.equal(outcome.protocol, 'TLSv1.3')
  assert.equal(outcome.received, 'welcome')
})

test('minVersion TLSv1.3 refuses TLS 1.2', async () => {
  const outcome = await connect(settings('request', { minVersion: 'TLSv1.3' }), { maxVersion: 'TLSv1.2' })
  assertRefused(outcome, /PROTOCOL_VERSION/)
})

for (const cipher of ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305']) {
  test(`TLS 1.2 with ${cipher} is accepted`, async () => {
    const outcome = await connect(settings('request'), { maxVersion: 'TLSv1.2', ciphers: cipher })
    assert.equal(outcome.protocol, 'TLSv1.2')
    assert.equal(outcome.cipher, cipher)
    assert.equal(outcome.received, 'welcome')
  })
}

test('TLS 1.1 is refused with a protocol_version alert (RFC 8996)', async () => {
  const outcome = await connect(settings('request'), { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' })
  assertRefused(outcome, /ALERT_PROTOCOL_VERSION/)
})

for (const cipher of ['ECDHE-ECDSA-AES128-SHA256', 'ECDHE-RSA-AES128-SHA256', 'ECDHE-ECDSA-AES128-SHA', 'DHE-RSA-AES128-GCM-SHA256', 'AES128-GCM-SHA256']) {
  test(`TLS 1.2 offering only ${cipher} is refused with a handshake_failure alert`, async () => {
    const outcome = await connect(settings('request'), { maxVersion: 'TLSv1.2', ciphers: `${cipher}@SECLEVEL=0` })
    assertRefused(outcome, /ALERT_HANDSHAKE_FAILURE$/)
  })
}

test("'require': a trusted partner certificate is accepted", async () => {
  const outcome = await connect(settings('require'), { cert: pem(pki.partnerA, pki.intermediate), key: pki.partnerA.keyPem })
  assert.equal(outcome.received, 'welcome')
  assert.equal(outcome.verdict?.kind, 'valid')
})

test("'require': no certificate ends the handshake", async () => {
  assertRefused(await connect(settings('require')), /CERTIFICATE_REQUIRED/)
})

test("'require': a certificate from an untrusted CA ends the connection before any HTTP", async () => {
  assertRefused(await connect(settings('require'), { cert: pem(pki.untrusted, pki.untrustedRoot), key: pki.untrusted.keyPem }))
})

test("'require': a certificate chaining only to a configured intermediate ends the connection", async () => {
  const intermediateOnly = settings('require', { clientCaPem: pki.untrustedRoot.certPem, clientIntermediatesPem: pki.intermediate.certPem })
  assertRefused(await connect(intermediateOnly, { cert: pem(pki.partnerA, pki.intermediate), key: pki.partnerA.keyPem }))
})

test("'request': no certificate completes the handshake and the verdict is absent", async () => {
  const outcome = await connect(settings('request'))
  assert.equal(outcome.received, 'welcome')
  assert.deepEqual(outcome.verdict, { kind: 'absent' })
})

test("'request': an untrusted certificate completes the handshake so the gateway can answer in HTTP", async () => {
  const outcome = await connect(settings('request'), { cert: pem(pki.untrusted, pki.untrustedRoot), key: pki.untrusted.keyPem })
  assert.equal(outcome.received, 'welcome')
  assert.equal(outcome.verdict?.kind, 'invalid')
})

test("'off': no certificate is asked for, so a client's certificate is never sent", async () => {
  const outcome = await connect(settings('off', { clientCaPem: undefined }), { cert: pem(pki.partnerA, pki.intermediate), key: pki.partnerA.keyPem })
  assert.equal(outcome.received, 'welcome')
  assert.deepEqual(outcome.verdict, { kind: 'absent' })
})

test('TLS 1.2 renegotiation is refused (RFC 8705 needs none)', async () => {
  const server = tls.createServer(createTlsOptions(settings('request')))
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    socket.on('error', () => {})
    socket.resume()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const socket = tls.connect({
    port: (server.address() as AddressInfo).port,
    host: '127.0.0.1',
    servername: 'localhost',
    ca: pki.root.certPem,
    maxVersion: 'TLSv1.2',
  })
  try {
    const failed = new Promise<Error>((resolve) => socket.on('error', resolve))
    await once(socket, 'secureConnect')
    const renegotiated = new Promise<Error | null>((resolve) => socket.renegotiate({}, resolve))
    socket.write('ping')
    const outcome = await Promise.race([failed, renegotiated])
    assert.ok(outcome instanceof Error, 'renegotiation must fail')
    assert.match(outcome.message, /no renegotiation/)
  } finally {
    socket.destroy()
    server.close()
  }
})

test("client certificates need a configured trust anchor; Node's public roots are never used", () => {
  assert.throws(
    () => createTlsOptions(settings('request', { clientCaPem: undefined })),
    /^TrustStoreError: has no CA certificate, and client certificates are requested$/,
  )
  assert.throws(() => createTlsOptions(settings('require', { clientCaPem: '' })), /has no CA certificate, and client certificates are required/)
  assert.doesNotThrow(() => createTlsOptions(settings('off', { clientCaPem: undefined })))
})

test('an intermediate configured as a trust anchor is a configuration error', () => {
  assert.throws(() => createTlsOptions(settings('request', { clientCaPem: pki.intermediate.certPem })), /not a self-signed CA certificate/)
  assert.throws(() => createTlsOptions(settings('request', { clientIntermediatesPem: pki.partnerA.certPem })), /not a CA certificate/)
})

test('configured intermediates are added next to the anchors', () => {
  const options = createTlsOptions(settings('request', { clientIntermediatesPem: pki.intermediate.certPem }))
  assert.equal(options.requestCert, true)
  assert.equal(options.rejectUnauthorized, false)
  assert.deepEqual(
    (options.ca as string[]).map((c) => c.trim()),
    [pki.root.certPem.trim(), pki.intermediate.certPem.trim()],
  )
})
