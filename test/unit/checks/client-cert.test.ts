import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import tls from 'node:tls'
import type { AddressInfo } from 'node:net'
import { createDevPki, type DevPki, type Issued } from '../../../dev/pki.ts'
import { createTlsOptions, type TlsSettings } from '../../../src/server/tls.ts'
import { checkClientCert } from '../../../src/checks/client-cert.ts'
import { inspectPeerCertificate, type ClientCertPolicy } from '../../../src/server/peer-certificate.ts'
import type { PeerCertificateVerdict } from '../../../src/types.ts'
import { parsePemCertificates } from '../../../src/x509.ts'
import { GatewayError } from '../../../src/errors.ts'
import type { ClientCert } from '../../../src/types.ts'

let pki: DevPki
before(async () => {
  pki = await createDevPki()
})

/** PEM blocks one per line (the dev PKI's PEM strings carry no final newline). */
function pem(...certs: Issued[]): string {
  return certs.map((c) => `${c.certPem.trim()}\n`).join('')
}

interface Trust {
  readonly anchors: Issued[]
  readonly intermediates?: Issued[]
  readonly policy?: Partial<ClientCertPolicy>
  /** Replaces the security level, to judge our own checks where OpenSSL's would already refuse. */
  readonly securityLevel?: number
}

/** Runs a real TLS server in 'request' mode and returns the verdict on one connection. */
async function verdictFor(trust: Trust, client: { chain: Issued[]; key: Issued } | undefined): Promise<PeerCertificateVerdict> {
  const settings: TlsSettings = {
    certPem: pem(pki.server, pki.intermediate),
    keyPem: pki.server.keyPem,
    clientCaPem: pem(...trust.anchors),
    clientIntermediatesPem: trust.intermediates ? pem(...trust.intermediates) : undefined,
    clientCertificate: 'request',
  }
  const options = createTlsOptions(settings)
  if (trust.securityLevel !== undefined) options.ciphers = options.ciphers?.replace(/@SECLEVEL=\d/, `@SECLEVEL=${trust.securityLevel}`)
  const policy: ClientCertPolicy = {
    issuers: [...parsePemCertificates(settings.clientCaPem ?? ''), ...parsePemCertificates(settings.clientIntermediatesPem ?? '')],
    ...trust.policy,
  }
  const server = tls.createServer(options)
  const verdicts: PeerCertificateVerdict[] = []
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    verdicts.push(inspectPeerCertificate(socket, policy))
    socket.end('judged')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  try {
    const socket = tls.connect({
      port: (server.address() as AddressInfo).port,
      host: '127.0.0.1',
      servername: 'localhost',
      ca: pki.root.certPem,
      cert: client ? pem(...client.chain) : undefined,
      key: client?.key.keyPem,
      // Lets the client present the deliberately weak test certificate.
      ciphers: 'DEFAULT@SECLEVEL=0',
    })
    socket.on('error', () => {})
    socket.resume()
    await new Promise((resolve) => socket.on('close', resolve))
  } finally {
    server.close()
  }
  assert.equal(verdicts.length, 1, 'the server completed exactly one handshake')
  return verdicts[0]!
}

function assertInvalid(verdict: PeerCertificateVerdict, reason: RegExp): void {
  assert.equal(verdict.kind, 'invalid')
  if (verdict.kind === 'invalid') assert.match(verdict.reason, reason)
}

function assertRefused(fn: () => unknown, code: string): void {
  assert.throws(fn, (error: unknown) => error instanceof GatewayError && error.code === code)
}

test('a partner certificate sent with its intermediate, root configured, is valid', async () => {
  const verdict = await verdictFor({ anchors: [pki.root] }, { chain: [pki.partnerA, pki.intermediate], key: pki.partnerA })
  assert.equal(verdict.kind, 'valid')
  if (verdict.kind !== 'valid') return
  assert.equal(verdict.cert.thumbprint, createHash('sha256').update(pki.partnerA.cert.raw).digest('base64url'))
  assert.match(verdict.cert.subject, /CN=partner-a/)
  assert.match(verdict.cert.issuer, /CN=fapi-gateway Dev Partner CA/)
  assert.equal(verdict.cert.serialNumber, pki.partnerA.cert.serialNumber)
  assert.equal(verdict.cert.notAfter, pki.partnerA.cert.validToDate.getTime())
  assert.ok(verdict.cert.chainDer[0]!.equals(pki.partnerA.cert.raw), 'leaf first')
})

test('a partner certificate sent alone validates through a configured intermediate', async () => {
  const verdict = await verdictFor({ anchors: [pki.root], intermediates: [pki.intermediate] }, { chain: [pki.partnerA], key: pki.partnerA })
  assert.equal(verdict.kind, 'valid')
  if (verdict.kind !== 'valid') return
  assert.deepEqual(verdict.cert.chainDer, [pki.partnerA.cert.raw, pki.intermediate.cert.raw, pki.root.cert.raw])
})

test('a partner certificate sent alone without a configured intermediate is invalid', async () => {
  assertInvalid(await verdictFor({ anchors: [pki.root] }, { chain: [pki.partnerA], key: pki.partnerA }), /chain: /)
})

test('no certificate is absent, not invalid', async () => {
  assert.deepEqual(await verdictFor({ anchors: [pki.root] }, undefined), { kind: 'absent' })
})

test('an expired certificate is invalid', async () => {
  assertInvalid(await verdictFor({ anchors: [pki.root] }, { chain: [pki.expired, pki.intermediate], key: pki.expired }), /CERT_HAS_EXPIRED/)
})

test('a 1024-bit RSA certificate is invalid', async () => {
  assertInvalid(await verdictFor({ anchors: [pki.root] }, { chain: [pki.weakRsa, pki.intermediate], key: pki.weakRsa }), /^(chain|key): /)
})

test('a 1024-bit RSA certificate is invalid by our own check where OpenSSL allows it (security level 1)', async () => {
  assertInvalid(
    await verdictFor({ anchors: [pki.root], securityLevel: 1 }, { chain: [pki.weakRsa, pki.intermediate], key: pki.weakRsa }),
    /key: RSA 1024 bits, at least 2048 required/,
  )
})

test('an RSA certificate below a stricter configured minimum is invalid', async () => {
  assertInvalid(
    await verdictFor({ anchors: [pki.root], securityLevel: 1, policy: { minRsaBits: 4096 } }, { chain: [pki.weakRsa, pki.intermediate], key: pki.weakRsa }),
    /at least 4096 required/,
  )
})

test('a certificate whose extended key usage is serverAuth only is invalid', async () => {
  assertInvalid(await verdictFor({ anchors: [pki.root] }, { chain: [pki.serverAuthOnly, pki.intermediate], key: pki.serverAuthOnly }), /^(chain|usage): /)
})

test('a CA certificate presented as a client certificate is invalid', async () => {
  assertInvalid(await verdictFor({ anchors: [pki.root] }, { chain: [pki.intermediate], key: pki.intermediate }), /^(chain|usage): /)
})

/**
 * OpenSSL's ssl_client purpose check refuses the two certificates above during the
 * handshake, so our own usage checks never run there. This socket stands for a chain
 * OpenSSL accepted, to show the checks hold on their own.
 */
function authorizedSocketPresenting(issued: Issued): tls.TLSSocket {
  return { authorized: true, authorizationError: null, getPeerX509Certificate: () => issued.cert, getPeerCertificate: () => ({}) } as unknown as tls.TLSSocket
}

test('our own usage check refuses a serverAuth-only certificate even when the chain was accepted', () => {
  assertInvalid(
    inspectPeerCertificate(authorizedSocketPresenting(pki.serverAuthOnly), {}),
    /^usage: extended key usage 1\.3\.6\.1\.5\.5\.7\.3\.1 lacks clientAuth/,
  )
})

test('our own usage check refuses a CA certificate even when the chain was accepted', () => {
  assertInvalid(inspectPeerCertificate(authorizedSocketPresenting(pki.intermediate), {}), /^usage: a CA certificate/)
})

test('our own checks accept a clientAuth certificate once the chain was accepted', () => {
  const verdict = inspectPeerCertificate(authorizedSocketPresenting(pki.partnerB), { issuers: [pki.root.cert, pki.intermediate.cert] })
  assert.equal(verdict.kind, 'valid')
  if (verdict.kind === 'valid') assert.deepEqual(verdict.cert.chainDer, [pki.partnerB.cert.raw, pki.intermediate.cert.raw, pki.root.cert.raw])
})

test('a socket that fails while being inspected yields invalid, never valid', () => {
  const broken = {
    authorized: true,
    getPeerX509Certificate: () => {
      throw new Error('boom')
    },
  } as unknown as tls.TLSSocket
  assertInvalid(inspectPeerCertificate(broken, {}), /^inspection failed: boom/)
})

test('a certificate from an untrusted CA is invalid', async () => {
  assertInvalid(await verdictFor({ anchors: [pki.root] }, { chain: [pki.untrusted, pki.untrustedRoot], key: pki.untrusted }), /chain: /)
})

test('a configured intermediate is not a trust anchor: its root not configured means invalid', async () => {
  const trust = { anchors: [pki.untrustedRoot], intermediates: [pki.intermediate] }
  assertInvalid(await verdictFor(trust, { chain: [pki.partnerA], key: pki.partnerA }), /chain: UNABLE_TO_GET_ISSUER_CERT/)
  assertInvalid(await verdictFor(trust, { chain: [pki.partnerA, pki.intermediate], key: pki.partnerA }), /chain: UNABLE_TO_GET_ISSUER_CERT/)
})

test('a partner certificate valid under one root is invalid where only another root is configured', async () => {
  assertInvalid(await verdictFor({ anchors: [pki.untrustedRoot] }, { chain: [pki.partnerA, pki.intermediate], key: pki.partnerA }), /chain: /)
})

test('a resumed TLS session keeps the verdict of the certificate it was made with', async () => {
  const server = tls.createServer(
    createTlsOptions({ certPem: pem(pki.server, pki.intermediate), keyPem: pki.server.keyPem, clientCaPem: pki.root.certPem, clientCertificate: 'request' }),
  )
  const seen: { resumed: boolean; verdict: PeerCertificateVerdict }[] = []
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    seen.push({ resumed: socket.isSessionReused(), verdict: inspectPeerCertificate(socket, { issuers: [pki.root.cert] }) })
    socket.end('judged')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  try {
    for (const client of [pki.untrusted, pki.partnerA]) {
      let session: Buffer | undefined
      for (let attempt = 0; attempt < 2; attempt++) {
        const socket = tls.connect({
          port: (server.address() as AddressInfo).port,
          host: '127.0.0.1',
          servername: 'localhost',
          ca: pki.root.certPem,
          cert: client === pki.untrusted ? pem(pki.untrusted, pki.untrustedRoot) : pem(pki.partnerA, pki.intermediate),
          key: client.keyPem,
          session,
        })
        socket.on('session', (ticket: Buffer) => {
          session = ticket
        })
        socket.on('error', () => {})
        socket.resume()
        await new Promise((resolve) => socket.on('close', resolve))
      }
    }
  } finally {
    server.close()
  }
  assert.deepEqual(
    seen.map((s) => s.resumed),
    [false, true, false, true],
    'the second connection of each pair resumed',
  )
  assert.equal(seen[0]!.verdict.kind, 'invalid')
  assert.equal(seen[1]!.verdict.kind, 'invalid', 'resumption must not turn an invalid certificate into an absent one')
  const thumbprint = createHash('sha256').update(pki.partnerA.cert.raw).digest('base64url')
  for (const { verdict } of seen.slice(2)) {
    assert.equal(verdict.kind, 'valid')
    if (verdict.kind === 'valid') assert.equal(verdict.cert.thumbprint, thumbprint)
  }
})

const NOW = Date.UTC(2030, 0, 1)
const validCert: ClientCert = {
  thumbprint: 'thumb',
  subject: 'CN=partner-a, O=Partner',
  issuer: 'CN=fapi-gateway Dev Partner CA',
  serialNumber: '01',
  notAfter: NOW + 60_000,
  chainDer: [],
}

test('checkClientCert: a valid certificate passes on required and optional routes', () => {
  const verdict: PeerCertificateVerdict = { kind: 'valid', cert: validCert }
  assert.equal(checkClientCert(verdict, 'required', NOW), validCert)
  assert.equal(checkClientCert(verdict, 'optional', NOW), validCert)
  assert.equal(checkClientCert(verdict, 'required', validCert.notAfter), validCert, 'notAfter itself is still valid (RFC 5280 §4.1.2.5)')
})

test('checkClientCert: no certificate is refused where required and passes where optional', () => {
  assertRefused(() => checkClientCert({ kind: 'absent' }, 'required', NOW), 'GW_CLIENT_CERT_MISSING')
  assert.equal(checkClientCert({ kind: 'absent' }, 'optional', NOW), undefined)
})

test('checkClientCert: an invalid certificate is refused on every route, with the reason kept as detail', () => {
  for (const requirement of ['required', 'optional'] as const) {
    assert.throws(
      () => checkClientCert({ kind: 'invalid', reason: 'chain: CERT_HAS_EXPIRED' }, requirement, NOW),
      (error: unknown) => error instanceof GatewayError && error.code === 'GW_CLIENT_CERT_INVALID' && error.detail === 'chain: CERT_HAS_EXPIRED',
    )
  }
})

test('checkClientCert: a certificate that expired after the handshake is refused', () => {
  for (const requirement of ['required', 'optional'] as const) {
    assertRefused(() => checkClientCert({ kind: 'valid', cert: validCert }, requirement, validCert.notAfter + 1), 'GW_CLIENT_CERT_INVALID')
  }
})
