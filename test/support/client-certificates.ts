// Client certificates made for one test with @peculiar/x509: a CA, certificates it issues with chosen
// subjects and SANs, and self-signed ones (RFC 8705 §2.2). Keys are ECDSA P-256.
import { webcrypto, X509Certificate } from 'node:crypto'
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { toClientCert } from '../../src/x509.ts'
import type { PeerCertificateVerdict } from '../../src/types.ts'

x509.cryptoProvider.set(webcrypto as never)

const ecdsa = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const
const DAY = 24 * 60 * 60 * 1000

interface Signer {
  readonly cert: x509.X509Certificate
  readonly keys: webcrypto.CryptoKeyPair
}

export interface TestCa {
  /** A client certificate signed by this CA; subject in DER order as written (e.g. `C=DE, O=Bank, CN=client`). */
  issue(options: ClientCertificateOptions): Promise<X509Certificate>
  readonly cert: X509Certificate
}

export interface ClientCertificateOptions {
  readonly subject: string
  readonly san?: x509.JsonGeneralName[]
  readonly notBefore?: Date
  readonly notAfter?: Date
}

async function create(options: ClientCertificateOptions, issuer: Signer | undefined, ca = false): Promise<Signer> {
  const keys = (await webcrypto.subtle.generateKey(ecdsa, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(ca, undefined, true),
    new x509.KeyUsagesExtension(ca ? x509.KeyUsageFlags.keyCertSign : x509.KeyUsageFlags.digitalSignature, true),
  ]
  if (!ca) extensions.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false))
  if (options.san) extensions.push(new x509.SubjectAlternativeNameExtension(options.san, false))
  const signer = issuer ?? { cert: undefined, keys }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
      .toString('hex')
      .replace(/^[89a-f]/, '1'),
    subject: options.subject,
    issuer: signer.cert ? signer.cert.subject : options.subject,
    notBefore: options.notBefore ?? new Date(Date.now() - DAY),
    notAfter: options.notAfter ?? new Date(Date.now() + 30 * DAY),
    publicKey: keys.publicKey,
    signingKey: signer.keys.privateKey,
    signingAlgorithm: ecdsa,
    extensions,
  })
  return { cert, keys }
}

const toNode = (cert: x509.X509Certificate) => new X509Certificate(Buffer.from(cert.rawData))

export async function createTestCa(subject = 'CN=Test Partner CA'): Promise<TestCa> {
  const ca = await create({ subject }, undefined, true)
  return {
    cert: toNode(ca.cert),
    issue: async (options) => toNode((await create(options, ca)).cert),
  }
}

export async function createSelfSignedCertificate(options: ClientCertificateOptions): Promise<X509Certificate> {
  return toNode((await create(options, undefined)).cert)
}

/** The listener's verdict on a certificate that chained to the client CAs. */
export function validPeer(cert: X509Certificate, ca?: X509Certificate): PeerCertificateVerdict {
  return { kind: 'valid', cert: toClientCert(cert, ca ? [ca] : []) }
}
