// X.509 helpers shared by the certificate checks, revocation, the CA and the TLS set-up: thumbprints,
// PEM bundles, the key and usage rules for client certificates (FAPI 2.0 SP §5.4.1, RFC 5280
// §4.2.1.12), and the chain a certificate was issued along.
import { createHash, X509Certificate } from 'node:crypto'
import type { ClientCert } from './types.ts'

export const DEFAULT_MIN_RSA_BITS = 2048
const ACCEPTED_EC_CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1'])
const ID_KP_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2'
const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0'
export const MAX_CHAIN_LENGTH = 10

/** RFC 8705 §3.1 `x5t#S256`: base64url SHA-256 of the certificate's DER. */
export function certificateThumbprint(der: Buffer): string {
  return createHash('sha256').update(der).digest('base64url')
}

/** Every certificate in a PEM bundle (concatenated PEM blocks). */
export function parsePemCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []
  return blocks.map((block) => new X509Certificate(block))
}

export function keyProblem(cert: X509Certificate, minRsaBits: number): string | undefined {
  const key = cert.publicKey
  switch (key.asymmetricKeyType) {
    case 'rsa':
    case 'rsa-pss': {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0
      return bits >= minRsaBits ? undefined : `key: RSA ${bits} bits, at least ${minRsaBits} required`
    }
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve ?? 'unknown'
      return ACCEPTED_EC_CURVES.has(curve) ? undefined : `key: EC curve ${curve} not accepted`
    }
    case 'ed25519':
    case 'ed448':
      return undefined
    default:
      return `key: type ${key.asymmetricKeyType ?? 'unknown'} not accepted`
  }
}

export function usageProblem(cert: X509Certificate): string | undefined {
  if (cert.ca) return 'usage: a CA certificate cannot be a client certificate'
  // RFC 5280 §4.2.1.12: when the extension is present it must allow TLS client authentication.
  const extendedKeyUsage = cert.keyUsage as string[] | undefined
  if (extendedKeyUsage && !extendedKeyUsage.includes(ID_KP_CLIENT_AUTH) && !extendedKeyUsage.includes(ANY_EXTENDED_KEY_USAGE)) {
    return `usage: extended key usage ${extendedKeyUsage.join(',')} lacks clientAuth`
  }
  return undefined
}

export function toClientCert(leaf: X509Certificate, candidates: readonly X509Certificate[]): ClientCert {
  return {
    thumbprint: certificateThumbprint(leaf.raw),
    subject: leaf.subject.split('\n').join(', '),
    issuer: leaf.issuer.split('\n').join(', '),
    serialNumber: leaf.serialNumber,
    notAfter: leaf.validToDate.getTime(),
    chainDer: buildChain(leaf, candidates).map((cert) => cert.raw),
  }
}

/** Leaf first, then each issuer whose signature verifies, up to a self-signed certificate. */
function buildChain(leaf: X509Certificate, candidates: readonly X509Certificate[]): X509Certificate[] {
  const chain = [leaf]
  let current = leaf
  while (chain.length < MAX_CHAIN_LENGTH && !isSelfSigned(current)) {
    const issuer = candidates.find(
      (candidate) => !chain.some((c) => c.raw.equals(candidate.raw)) && current.checkIssued(candidate) && current.verify(candidate.publicKey),
    )
    if (!issuer) break
    chain.push(issuer)
    current = issuer
  }
  return chain
}

export function isSelfSigned(cert: X509Certificate): boolean {
  return cert.checkIssued(cert) && cert.verify(cert.publicKey)
}
