// The TLS client certificate as evidence: OpenSSL validates the chain during the
// handshake; this module adds the checks OpenSSL leaves to the application and turns
// the result into a ClientCert (RFC 8705 §2, §3; RFC 5280 §4.2.1.9, §4.2.1.12).
import { createHash, X509Certificate } from 'node:crypto'
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls'
import { refuse } from '../errors.ts'
import type { ClientCert } from '../types.ts'

export interface ClientCertPolicy {
  /** Smallest RSA modulus accepted (FAPI 2.0 SP §5.4.1). Default 2048. */
  readonly minRsaBits?: number
  /**
   * The configured trust anchors and intermediates. Used only to complete
   * ClientCert.chainDer for revocation checking; trust is decided by OpenSSL.
   */
  readonly issuers?: readonly X509Certificate[]
}

export type PeerCertificateVerdict =
  | { readonly kind: 'absent' }
  | { readonly kind: 'valid'; readonly cert: ClientCert }
  | { readonly kind: 'invalid'; readonly reason: string }

export type ClientCertRequirement = 'required' | 'optional'

const DEFAULT_MIN_RSA_BITS = 2048
const ACCEPTED_EC_CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1'])
const ID_KP_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2'
const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0'
const MAX_CHAIN_LENGTH = 10

/**
 * Judges the certificate a connection presented. Runs once per TLS connection
 * (the caller memoises it per socket); never throws.
 */
export function inspectPeerCertificate(socket: TLSSocket, policy: ClientCertPolicy): PeerCertificateVerdict {
  try {
    const leaf = socket.getPeerX509Certificate()
    if (!leaf) return { kind: 'absent' }
    if (!socket.authorized) return { kind: 'invalid', reason: `chain: ${socket.authorizationError ?? 'not authorized'}` }
    const problem = keyProblem(leaf, policy.minRsaBits ?? DEFAULT_MIN_RSA_BITS) ?? usageProblem(leaf)
    if (problem) return { kind: 'invalid', reason: problem }
    return { kind: 'valid', cert: toClientCert(leaf, issuerCandidates(socket, policy)) }
  } catch (error) {
    return { kind: 'invalid', reason: `inspection failed: ${error instanceof Error ? error.message : String(error)}` }
  }
}

/** Per request: the route's requirement against the connection's verdict. */
export function checkClientCert(verdict: PeerCertificateVerdict, requirement: ClientCertRequirement, nowMs: number): ClientCert | undefined {
  switch (verdict.kind) {
    case 'absent':
      return requirement === 'required' ? refuse('GW_CLIENT_CERT_MISSING') : undefined
    // A certificate that was presented and failed is refused on every route, never ignored.
    case 'invalid':
      return refuse('GW_CLIENT_CERT_INVALID', verdict.reason)
    case 'valid':
      // RFC 5280 §4.1.2.5: a keep-alive connection can outlive the certificate.
      if (nowMs > verdict.cert.notAfter) refuse('GW_CLIENT_CERT_INVALID', `expired at ${new Date(verdict.cert.notAfter).toISOString()}`)
      return verdict.cert
    default:
      return refuse('GW_CLIENT_CERT_INVALID', 'unknown verdict')
  }
}

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

/**
 * Issuers as Node reports them, then the configured ones. On a verified connection
 * Node 24 reports issuers from the trust store but not those the client sent, so only
 * configured certificates reliably complete the chain.
 */
function issuerCandidates(socket: TLSSocket, policy: ClientCertPolicy): X509Certificate[] {
  const reported: X509Certificate[] = []
  let link: DetailedPeerCertificate | undefined = socket.getPeerCertificate(true).issuerCertificate
  while (link?.raw && reported.length < MAX_CHAIN_LENGTH) {
    reported.push(new X509Certificate(link.raw))
    link = link.issuerCertificate === link ? undefined : link.issuerCertificate
  }
  return [...reported, ...(policy.issuers ?? [])]
}

/** Leaf first, then each issuer whose signature verifies, up to a self-signed certificate. */
function buildChain(leaf: X509Certificate, candidates: readonly X509Certificate[]): X509Certificate[] {
  const chain = [leaf]
  let current = leaf
  while (chain.length < MAX_CHAIN_LENGTH && !isSelfSigned(current)) {
    const issuer = candidates.find((candidate) => !chain.some((c) => c.raw.equals(candidate.raw)) && current.checkIssued(candidate) && current.verify(candidate.publicKey))
    if (!issuer) break
    chain.push(issuer)
    current = issuer
  }
  return chain
}

export function isSelfSigned(cert: X509Certificate): boolean {
  return cert.checkIssued(cert) && cert.verify(cert.publicKey)
}
