import type { ClientCert } from '../types.ts'

/** Decides whether a validated client certificate has been revoked (RFC 8705 §2.1 leaves how to the deployment). */
export interface RevocationChecker {
  /** Resolves when the certificate is not revoked; throws GW_CLIENT_CERT_REVOKED or GW_REVOCATION_UNAVAILABLE. */
  check(cert: ClientCert): Promise<void>
}

// OCSP and CRL checking arrive with the revocation issue; until then nothing is checked.
export const noRevocationCheck: RevocationChecker = Object.freeze({
  async check(_cert: ClientCert): Promise<void> {},
})
