// The certificate profiles this CA issues (RFC 5280 §4.2), signed with @peculiar/x509.
import { AsnConvert } from '@peculiar/asn1-schema'
import { ExtendedRevoke, id_kp_OCSPSigning, id_pkix_ocsp_nocheck } from '@peculiar/asn1-ocsp'
import { CaError } from './ca-error.ts'
import type { SigningKey } from './keys.ts'
import { x509 } from './x509.ts'

export const DAY_MS = 24 * 60 * 60 * 1000
/** Certificates are valid from a little before issuance so a peer with a slow clock accepts them. */
export const BACKDATE_MS = 5 * 60 * 1000

export type CertificateProfile =
  { readonly kind: 'ca'; readonly pathLength: number | undefined } | { readonly kind: 'partner' } | { readonly kind: 'ocsp-responder' }

export interface IssuerInfo {
  readonly name: x509.Name
  readonly signingKey: SigningKey
  /** Subject key identifier of the issuer, hex. */
  readonly keyIdentifier: string
  readonly ocspUrl?: string | undefined
  readonly crlUrl?: string | undefined
}

export interface BuildCertificateOptions {
  readonly serial: string
  readonly subject: x509.Name
  readonly publicKeySpki: Uint8Array
  readonly notBefore: Date
  readonly notAfter: Date
  readonly profile: CertificateProfile
  /** undefined: self-signed (a root), signed by `selfSigningKey`. */
  readonly issuer: IssuerInfo | undefined
  readonly selfSigningKey?: SigningKey
}

export function parseSubject(value: string, source: string): x509.Name {
  let name: x509.Name
  try {
    name = new x509.Name(value)
  } catch (error) {
    throw new CaError(`${source}: "${value}" is not a distinguished name (${error instanceof Error ? error.message : String(error)})`)
  }
  if (name.toJSON().length === 0) throw new CaError(`${source}: "${value}" is not a distinguished name (expected for example "CN=partner-a, O=Partner Ltd")`)
  return name
}

/** X.509 times carry whole seconds. */
export function wholeSeconds(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000)
}

function profileExtensions(profile: CertificateProfile): x509.Extension[] {
  switch (profile.kind) {
    case 'ca':
      return [
        new x509.BasicConstraintsExtension(true, profile.pathLength, true),
        // digitalSignature too: the CA may sign OCSP responses itself (RFC 6960 §4.2.2.2).
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      ]
    case 'partner':
      return [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
      ]
    case 'ocsp-responder':
      return [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        // RFC 6960 §4.2.2.2: a delegated responder carries id-kp-OCSPSigning ...
        new x509.ExtendedKeyUsageExtension([id_kp_OCSPSigning], true),
        // ... and §4.2.2.2.1: id-pkix-ocsp-nocheck (its value is an ASN.1 NULL, like ExtendedRevoke's).
        new x509.Extension(id_pkix_ocsp_nocheck, false, AsnConvert.serialize(new ExtendedRevoke())),
      ]
    default:
      throw new CaError('unknown certificate profile')
  }
}

export async function buildCertificate(options: BuildCertificateOptions): Promise<x509.X509Certificate> {
  const ski = await x509.SubjectKeyIdentifierExtension.create(options.publicKeySpki)
  const signingKey = options.issuer?.signingKey ?? options.selfSigningKey
  if (!signingKey) throw new CaError('no signing key for the certificate')
  const extensions: x509.Extension[] = [...profileExtensions(options.profile), ski]
  const issuer = options.issuer
  extensions.push(new x509.AuthorityKeyIdentifierExtension(issuer ? issuer.keyIdentifier : ski.keyId, false))
  if (issuer && options.profile.kind !== 'ocsp-responder') {
    if (issuer.ocspUrl) extensions.push(new x509.AuthorityInfoAccessExtension({ ocsp: [issuer.ocspUrl] }, false))
    if (issuer.crlUrl) extensions.push(new x509.CRLDistributionPointsExtension([issuer.crlUrl], false))
  }
  return x509.X509CertificateGenerator.create({
    serialNumber: options.serial,
    subject: options.subject,
    issuer: issuer ? issuer.name : options.subject,
    notBefore: options.notBefore,
    notAfter: options.notAfter,
    publicKey: options.publicKeySpki,
    signingKey: signingKey.cryptoKey,
    signingAlgorithm: signingKey.signingAlgorithm,
    extensions,
  })
}
