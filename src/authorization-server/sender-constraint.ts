// What a token issued through the façade is bound to (FAPI 2.0 SP §5.3.2.1-4/-5): the DPoP key of
// the request's proof (RFC 9449 §5), else the connection's certificate (RFC 8705 §3). A request
// with neither gets no token: the façade issues only sender-constrained tokens.
import type { X509Certificate } from 'node:crypto'
import { certificateThumbprint } from '../x509.ts'
import type { DpopProof, PeerCertificateVerdict } from '../types.ts'
import type { ClientAuthenticationMethod } from './client-authentication/authenticate.ts'
import { oauthRefuse } from './errors.ts'

export type SenderConstraint = { readonly kind: 'dpop'; readonly jkt: string } | { readonly kind: 'mtls'; readonly x5t: string }

export function senderConstraintOf(
  proof: DpopProof | undefined,
  peer: PeerCertificateVerdict,
  peerCertificate: X509Certificate | undefined,
  method: ClientAuthenticationMethod,
): SenderConstraint {
  if (proof) return { kind: 'dpop', jkt: proof.jkt }
  if (peer.kind === 'valid') return { kind: 'mtls', x5t: peer.cert.thumbprint }
  // A self-signed certificate never chains to the client CAs: the client authentication matched it to the partner's registration.
  if (method === 'self_signed_tls_client_auth' && peerCertificate) return { kind: 'mtls', x5t: certificateThumbprint(peerCertificate.raw) }
  return oauthRefuse(
    'AS_SENDER_CONSTRAINT_MISSING',
    peer.kind === 'invalid'
      ? `binding: no DPoP proof, and the certificate is not acceptable (${peer.reason})`
      : 'binding: no DPoP proof and no client certificate',
  )
}
