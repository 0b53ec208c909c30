// A small CA made with @peculiar/x509 for revocation tests: client certificates with AIA and
// CRL distribution points, delegated OCSP responder certificates (with and without
// id-kp-OCSPSigning), an unrelated key, and signed CRLs.
import { createPrivateKey, webcrypto, X509Certificate as NodeX509, type KeyObject } from 'node:crypto'
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'

x509.cryptoProvider.set(webcrypto as never)

const ecdsa = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const
const HOUR = 3_600_000
const OCSP_SIGNING = '1.3.6.1.5.5.7.3.9'

export interface TestCert {
  readonly certPem: string
  readonly keyPem: string
  readonly der: Buffer
  readonly node: NodeX509
  readonly key: KeyObject
  /** Lower-case hex, as the gateway compares serials. */
  readonly serial: string
}

export interface TestCrlEntry {
  readonly serial: string
  readonly revokedAt?: Date
  readonly reason?: x509.X509CrlReason
}

export interface RevocationPki {
  readonly ca: TestCert
  leaf(name: string, options?: { ocspUrl?: string; crlUrl?: string }): Promise<TestCert>
  /** A certificate the CA issued for OCSP signing; without the EKU when `ocspSigning` is false. */
  responder(options: { ocspSigning: boolean }): Promise<TestCert>
  /** CRL signed by the CA (or by `signer`), DER. */
  crl(
    entries: readonly TestCrlEntry[],
    options: { thisUpdate: Date; nextUpdate?: Date; signer?: { key: webcrypto.CryptoKey; issuer: string } },
  ): Promise<Buffer>
}

async function keyPair(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ecdsa, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
}

async function toTestCert(cert: x509.X509Certificate, keys: webcrypto.CryptoKeyPair): Promise<TestCert> {
  const keyPem = x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY')
  const certPem = cert.toString('pem')
  const node = new NodeX509(certPem)
  return { certPem, keyPem, der: Buffer.from(node.raw), node, key: createPrivateKey(keyPem), serial: node.serialNumber.toLowerCase().replace(/^0+(?=.)/, '') }
}

let serialCounter = 0x1000

function nextSerial(): string {
  return (++serialCounter).toString(16).padStart(6, '0')
}

export async function createRevocationPki(
  name = 'Revocation Test CA',
): Promise<RevocationPki & { readonly caKeys: webcrypto.CryptoKeyPair; readonly caCert: x509.X509Certificate }> {
  const caKeys = await keyPair()
  const now = Date.now()
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: nextSerial(),
    name: `CN=${name}, O=fapi-gateway tests`,
    notBefore: new Date(now - 24 * HOUR),
    notAfter: new Date(now + 365 * 24 * HOUR),
    keys: caKeys,
    signingAlgorithm: ecdsa,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  })

  async function issue(subject: string, extensions: x509.Extension[]): Promise<TestCert> {
    const keys = await keyPair()
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: nextSerial(),
      subject,
      issuer: caCert.subject,
      notBefore: new Date(Date.now() - HOUR),
      notAfter: new Date(Date.now() + 30 * 24 * HOUR),
      publicKey: keys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: ecdsa,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
        ...extensions,
      ],
    })
    return toTestCert(cert, keys)
  }

  return {
    caKeys,
    caCert,
    ca: await toTestCert(caCert, caKeys),
    leaf(leafName, options = {}) {
      return issue(`CN=${leafName}, O=Partner`, [
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        ...(options.ocspUrl ? [new x509.AuthorityInfoAccessExtension({ ocsp: [options.ocspUrl] })] : []),
        ...(options.crlUrl ? [new x509.CRLDistributionPointsExtension([options.crlUrl])] : []),
      ])
    },
    responder({ ocspSigning }) {
      return issue(`CN=${name} OCSP ${ocspSigning ? 'Responder' : 'Impostor'}`, [
        new x509.ExtendedKeyUsageExtension(ocspSigning ? [OCSP_SIGNING] : [x509.ExtendedKeyUsage.clientAuth]),
      ])
    },
    async crl(entries, options) {
      const crl = await x509.X509CrlGenerator.create({
        issuer: options.signer?.issuer ?? caCert.subject,
        thisUpdate: options.thisUpdate,
        nextUpdate: options.nextUpdate,
        entries: entries.map((entry) => ({
          serialNumber: entry.serial,
          revocationDate: entry.revokedAt ?? new Date(options.thisUpdate.getTime() - HOUR),
          reason: entry.reason,
        })),
        signingKey: options.signer?.key ?? caKeys.privateKey,
        signingAlgorithm: ecdsa,
      })
      return Buffer.from(crl.rawData)
    },
  }
}

export { x509 }
