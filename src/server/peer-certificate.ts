// Where a partner's certificate comes from when it is presented in the TLS handshake: OpenSSL
// validates the chain; this adds the checks OpenSSL leaves to the application and turns the
// result into a verdict, once per connection (RFC 8705 §2, §3).
import { X509Certificate } from 'node:crypto'
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls'
import type { PeerCertificateVerdict } from '../types.ts'
import { DEFAULT_MIN_RSA_BITS, keyProblem, MAX_CHAIN_LENGTH, toClientCert, usageProblem } from '../x509.ts'

export interface ClientCertPolicy {
  /** Smallest RSA modulus accepted (FAPI 2.0 SP §5.4.1). Default 2048. */
  readonly minRsaBits?: number
  /**
   * The configured trust anchors and intermediates. Used only to complete
   * ClientCert.chainDer for revocation checking; trust is decided by OpenSSL.
   */
  readonly issuers?: readonly X509Certificate[]
}

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
