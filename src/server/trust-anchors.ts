// A connection keeps the trust decision of its handshake. When a reload removes certificates
// from the client CA bundle or the intermediates, that decision may rest on a certificate no
// longer trusted, so a connection made before is accepted only if its chain, built from the
// configured certificates, still ends at a configured trust anchor. Adding a CA needs no such
// check: what was trusted stays trusted.
import type { ClientCertPolicy } from './peer-certificate.ts'
import type { PeerCertificateVerdict } from '../types.ts'
import { isSelfSigned } from '../x509.ts'

export function trustNarrowed(before: ClientCertPolicy, after: ClientCertPolicy): boolean {
  const kept = new Set((after.issuers ?? []).map((cert) => cert.fingerprint256))
  return (before.issuers ?? []).some((cert) => !kept.has(cert.fingerprint256))
}

/** The verdict for a connection whose handshake was judged under `handshakePolicy`, now that `current` is in force. */
export function recheckAfterTrustChange(verdict: PeerCertificateVerdict, handshakePolicy: ClientCertPolicy, current: ClientCertPolicy): PeerCertificateVerdict {
  if (verdict.kind !== 'valid' || !trustNarrowed(handshakePolicy, current)) return verdict
  const last = verdict.cert.chainDer.at(-1)
  const anchored = last !== undefined && (current.issuers ?? []).some((cert) => cert.raw.equals(last) && isSelfSigned(cert))
  if (anchored) return verdict
  return {
    kind: 'invalid',
    reason: 'chain: verified against a client CA bundle a reload has since reduced, and not confirmed against the current one; reconnect',
  }
}
