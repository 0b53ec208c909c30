// Load-balancer mode: the client certificate from a header, accepted only from trusted
// proxies, in every encoding load balancers use, and judged like a handshake certificate.
import { before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, X509Certificate } from 'node:crypto'
import { createDevPki, type DevPki, type Issued } from '../../../dev/pki.ts'
import {
  createForwardedClientCert,
  parseForwardedCertificates,
  parseTrustedProxies,
  verifyForwardedChain,
  type ForwardedClientCert,
} from '../../../src/server/forwarded-client-cert.ts'
import { checkClientCert } from '../../../src/checks/client-cert.ts'
import { GatewayError } from '../../../src/errors.ts'

describe('forwarded client certificates', () => {
  let pki: DevPki
  let reader: ForwardedClientCert
  const now = () => Date.now()

  before(async () => {
    pki = await createDevPki()
    reader = createForwardedClientCert({
      headerName: 'x-client-cert',
      trustedProxies: ['127.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8'],
      anchors: [pki.root.cert],
      intermediates: [pki.intermediate.cert],
      minRsaBits: 2048,
    })
  })

  const urlEncoded = (issued: Issued) => encodeURIComponent(issued.certPem.trim() + '\n')
  const oneLine = (issued: Issued) => issued.certPem.trim().replace(/\n/g, ' ')

  describe('header formats', () => {
    it('reads PEM on one line, URL-encoded PEM, RFC 9440 byte sequences and bare base64 DER', () => {
      const raw = pki.partnerA.cert.raw
      for (const value of [
        oneLine(pki.partnerA),
        urlEncoded(pki.partnerA),
        `:${raw.toString('base64')}:`,
        raw.toString('base64'),
        pki.partnerA.certPem.trim().replace(/\n/g, '\t'),
      ]) {
        const [leaf] = parseForwardedCertificates(value)
        assert.ok(leaf?.raw.equals(raw), value.slice(0, 40))
      }
    })

    it('reads a chain, leaf first', () => {
      const certs = parseForwardedCertificates(encodeURIComponent(pki.partnerA.certPem.trim() + '\n' + pki.intermediate.certPem.trim()))
      assert.equal(certs.length, 2)
      assert.ok(certs[1]!.raw.equals(pki.intermediate.cert.raw))
    })

    it('refuses what is not a certificate', () => {
      for (const value of ['', 'hello world!', '%E0%A4%A', '-----BEGIN CERTIFICATE-----bm9wZQ==-----END CERTIFICATE-----', ':bm9wZQ==:']) {
        assert.throws(() => parseForwardedCertificates(value))
      }
    })
  })

  describe('validation like a handshake certificate', () => {
    const trust = () => ({ anchors: [pki.root.cert], intermediates: [pki.intermediate.cert] })

    it('accepts a partner certificate chaining to a configured anchor, with the chain for revocation', () => {
      const verdict = verifyForwardedChain([pki.partnerA.cert], trust(), now(), 2048)
      assert.equal(verdict.kind, 'valid')
      if (verdict.kind !== 'valid') return
      assert.equal(verdict.cert.thumbprint, createHash('sha256').update(pki.partnerA.cert.raw).digest('base64url'))
      assert.equal(verdict.cert.chainDer.length, 3)
    })

    it('uses intermediates sent along in the header, never as anchors', () => {
      const noIntermediates = { anchors: [pki.root.cert], intermediates: [] }
      assert.equal(verifyForwardedChain([pki.partnerA.cert], noIntermediates, now(), 2048).kind, 'invalid')
      assert.equal(verifyForwardedChain([pki.partnerA.cert, pki.intermediate.cert], noIntermediates, now(), 2048).kind, 'valid')
      const intermediateOnly = { anchors: [], intermediates: [pki.intermediate.cert] }
      assert.equal(verifyForwardedChain([pki.partnerA.cert, pki.intermediate.cert, pki.root.cert], intermediateOnly, now(), 2048).kind, 'invalid')
    })

    for (const [name, reason] of [
      ['untrusted', /chain: no issuer/],
      ['expired', /has expired/],
      ['serverAuthOnly', /lacks clientAuth/],
      ['weakRsa', /RSA 1024 bits/],
      ['intermediate', /CA certificate cannot be a client/],
    ] as const) {
      it(`refuses the ${name} certificate`, () => {
        const verdict = verifyForwardedChain([pki[name].cert], trust(), now(), 2048)
        assert.equal(verdict.kind, 'invalid')
        if (verdict.kind === 'invalid') assert.match(verdict.reason, reason)
      })
    }
  })

  describe('trusted proxies', () => {
    it('parses addresses and CIDR ranges, and refuses anything else', () => {
      const list = parseTrustedProxies(['192.0.2.0/24', '2001:db8::/32', '198.51.100.7'])
      assert.ok(list.check('192.0.2.200', 'ipv4'))
      assert.ok(!list.check('192.0.3.1', 'ipv4'))
      assert.ok(list.check('2001:db8::1', 'ipv6'))
      assert.ok(list.check('198.51.100.7', 'ipv4'))
      for (const bad of ['example.com', '10.0.0.0/33', '10.0.0.1/8/1', '::1/129']) assert.throws(() => parseTrustedProxies([bad]))
    })

    it('takes the header only from a trusted proxy (IPv4-mapped addresses included), and ignores it from anyone else', () => {
      const headers = ['X-Client-Cert', urlEncoded(pki.partnerA)]
      for (const address of ['127.0.0.1', '::ffff:127.0.0.1', '10.1.2.3', '::1', 'fd12::5']) {
        assert.equal(reader.verdictFor(address, headers, now())?.kind, 'valid', address)
      }
      for (const address of ['192.0.2.1', '::ffff:192.0.2.1', '2001:db8::1', undefined]) {
        assert.equal(reader.verdictFor(address, headers, now()), undefined, String(address))
      }
    })

    it('reports no certificate when the proxy sent none, and refuses two headers', () => {
      assert.deepEqual(reader.verdictFor('127.0.0.1', ['accept', '*/*'], now()), { kind: 'absent' })
      const twice = reader.verdictFor('127.0.0.1', ['x-client-cert', urlEncoded(pki.partnerA), 'X-CLIENT-CERT', urlEncoded(pki.partnerB)], now())
      assert.equal(twice?.kind, 'invalid')
    })

    it('turns a bad header from a trusted proxy into GW_CLIENT_CERT_INVALID on every route', () => {
      const verdict = reader.verdictFor('127.0.0.1', ['x-client-cert', 'garbage!'], now())!
      assert.throws(
        () => checkClientCert(verdict, 'optional', now()),
        (e: unknown) => e instanceof GatewayError && e.code === 'GW_CLIENT_CERT_INVALID',
      )
      const untrusted = reader.verdictFor('127.0.0.1', ['x-client-cert', urlEncoded(pki.untrusted)], now())!
      assert.throws(
        () => checkClientCert(untrusted, 'optional', now()),
        (e: unknown) => e instanceof GatewayError && e.code === 'GW_CLIENT_CERT_INVALID',
      )
    })

    it('answers a repeated header from its cache with the same certificate', () => {
      const headers = ['x-client-cert', oneLine(pki.partnerB)]
      const first = reader.verdictFor('127.0.0.1', headers, now())
      const second = reader.verdictFor('127.0.0.1', headers, now())
      assert.equal(first, second)
      assert.ok(second?.kind === 'valid' && new X509Certificate(second.cert.chainDer[0]!).raw.equals(pki.partnerB.cert.raw))
    })
  })
})
