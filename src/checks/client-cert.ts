// The client certificate step: the route's requirement against the verdict on the connection's
// certificate (src/server/peer-certificate.ts, or a trusted load balancer's header).
import { refuse } from '../errors.ts'
import type { ClientCert, PeerCertificateVerdict } from '../types.ts'

export type ClientCertRequirement = 'required' | 'optional'

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
