// What revocation checking needs to know about a certificate, read once from its DER with
// @peculiar/asn1-x509: serial, names, public key bits and where its CA publishes status.
import { createHash, X509Certificate } from 'node:crypto'
import { AsnConvert } from '@peculiar/asn1-schema'
import {
  AuthorityInfoAccessSyntax,
  Certificate,
  CRLDistributionPoints,
  id_ad_ocsp,
  id_ce_cRLDistributionPoints,
  id_pe_authorityInfoAccess,
  type Extension,
} from '@peculiar/asn1-x509'

export interface CertificateFacts {
  readonly der: Buffer
  readonly x509: X509Certificate
  /** Lower-case hex without leading zeros: how serials are compared everywhere. */
  readonly serial: string
  /** The DER INTEGER content of the serial, as it goes into an OCSP CertID. */
  readonly serialBytes: Buffer
  readonly subjectDer: Buffer
  readonly issuerDer: Buffer
  /** The subjectPublicKey BIT STRING value (RFC 6960 §4.1.1 issuerKeyHash input). */
  readonly publicKeyBits: Buffer
  /** SHA-256 of the SubjectPublicKeyInfo, hex: identifies an issuing key. */
  readonly keyId: string
  /** http(s) OCSP responders from the AIA extension (RFC 5280 §4.2.2.1). */
  readonly ocspUrls: readonly string[]
  /** http(s) URIs from the CRL distribution points (RFC 5280 §4.2.1.13). */
  readonly crlUrls: readonly string[]
  readonly isCa: boolean
  /** Subject as ClientCert prints names: RDNs joined with ', '. */
  readonly subject: string
  readonly issuer: string
  readonly extensions: readonly Extension[]
}

export function canonicalSerial(hex: string): string {
  const digits = hex.replace(/[:\s]/g, '').toLowerCase()
  if (!/^[0-9a-f]+$/.test(digits)) throw new TypeError(`not a hexadecimal serial: ${hex}`)
  return digits.replace(/^0+(?=.)/, '')
}

export function serialFromBytes(bytes: ArrayBuffer | Uint8Array): string {
  return canonicalSerial(Buffer.from(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)).toString('hex') || '0')
}

export function printableName(nodeName: string): string {
  return nodeName.split('\n').join(', ')
}

function httpUris(names: readonly { uniformResourceIdentifier?: string }[] | undefined): string[] {
  return (names ?? []).map((n) => n.uniformResourceIdentifier).filter((uri): uri is string => uri !== undefined && /^https?:\/\//i.test(uri))
}

function extensionValue<T>(extensions: readonly Extension[], id: string, type: new () => T): T | undefined {
  const extension = extensions.find((e) => e.extnID === id)
  return extension ? AsnConvert.parse(extension.extnValue.buffer, type) : undefined
}

export function readCertificateFacts(der: Buffer | Uint8Array): CertificateFacts {
  const raw = Buffer.from(der)
  const asn = AsnConvert.parse(raw, Certificate)
  const tbs = asn.tbsCertificate
  const x509 = new X509Certificate(raw)
  const extensions = tbs.extensions ?? []
  const aia = extensionValue(extensions, id_pe_authorityInfoAccess, AuthorityInfoAccessSyntax)
  const cdp = extensionValue(extensions, id_ce_cRLDistributionPoints, CRLDistributionPoints)
  const spki = Buffer.from(AsnConvert.serialize(tbs.subjectPublicKeyInfo))
  return {
    der: raw,
    x509,
    serial: serialFromBytes(tbs.serialNumber),
    serialBytes: Buffer.from(tbs.serialNumber),
    subjectDer: Buffer.from(AsnConvert.serialize(tbs.subject)),
    issuerDer: Buffer.from(AsnConvert.serialize(tbs.issuer)),
    publicKeyBits: Buffer.from(tbs.subjectPublicKeyInfo.subjectPublicKey),
    keyId: createHash('sha256').update(spki).digest('hex'),
    ocspUrls: httpUris((aia ?? []).filter((d) => d.accessMethod === id_ad_ocsp).map((d) => d.accessLocation)),
    crlUrls: (cdp ?? []).flatMap((point) => httpUris(point.distributionPoint?.fullName)),
    isCa: x509.ca,
    subject: printableName(x509.subject),
    issuer: printableName(x509.issuer),
    extensions,
  }
}

/** True when `issuer` signed `cert` (names, key identifiers, key usage and signature). */
export function isIssuedBy(cert: CertificateFacts, issuer: CertificateFacts): boolean {
  return cert.x509.checkIssued(issuer.x509) && cert.x509.verify(issuer.x509.publicKey)
}
