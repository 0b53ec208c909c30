// self_signed_tls_client_auth (RFC 8705 §2.2): the connection's certificate, whatever its chain, is one
// the partner registered in the `x5c` of its JWK Set (§2.2.2), compared by SHA-256 of the DER, and
// within its validity period.
import { createHash, type X509Certificate } from 'node:crypto'
import { oauthRefuse } from '../errors.ts'

function certificateInvalid(detail: string): never {
  return oauthRefuse('AS_CLIENT_CERTIFICATE_INVALID', detail)
}

const sha256 = (der: Buffer) => createHash('sha256').update(der).digest('base64url')

/** The SHA-256 thumbprints of the certificate (first x5c entry) of each key of a JWK Set (RFC 7517 §4.7: base64 DER). */
export function registeredCertificateThumbprints(jwks: unknown): Set<string> {
  const thumbprints = new Set<string>()
  const keys = (jwks as { keys?: unknown } | undefined)?.keys
  if (!Array.isArray(keys)) return thumbprints
  for (const jwk of keys) {
    const x5c = (jwk as { x5c?: unknown } | null)?.x5c
    if (!Array.isArray(x5c)) continue
    // The first entry is the key's own certificate; the rest are its issuers, never the client's.
    const [own] = x5c
    if (typeof own === 'string' && /^[A-Za-z0-9+/]+={0,2}$/.test(own)) thumbprints.add(sha256(Buffer.from(own, 'base64')))
  }
  return thumbprints
}

export function authenticateSelfSignedTlsClient(peerCertificate: X509Certificate | undefined, registered: ReadonlySet<string>, nowMs: number): void {
  if (!peerCertificate) certificateInvalid('certificate: none presented')
  if (!registered.has(sha256(peerCertificate.raw))) certificateInvalid('x5c: not a registered certificate')
  if (nowMs < peerCertificate.validFromDate.getTime()) certificateInvalid('validity: not yet valid')
  if (nowMs > peerCertificate.validToDate.getTime()) certificateInvalid('validity: expired')
}
