import type { ClientCert } from '../types.ts'

/** What a route may change in the revocation policy of the certificate's CA (docs/revocation.md). */
export interface RevocationOverride {
  readonly sources?: readonly ('ocsp' | 'crl')[]
  readonly checkIntermediates?: boolean
  readonly onUnavailable?: 'hard-fail' | 'soft-fail'
  readonly maxStalenessSeconds?: number
}

export interface RevocationContext {
  readonly nowMs: number
  /** Route policy name, for events. */
  readonly route?: string
  readonly override?: RevocationOverride
}

/** Decides whether a validated client certificate has been revoked (RFC 8705 §2.1 leaves how to the deployment). */
export interface RevocationChecker {
  /** Resolves when the certificate is not revoked; throws GW_CLIENT_CERT_REVOKED or GW_REVOCATION_UNAVAILABLE. */
  check(cert: ClientCert, context?: RevocationContext): Promise<void>
  /** Stops background refreshes and closes connections. */
  close?(): Promise<void>
}

// Without a `revocation` section nothing is checked (see src/revocation/ for OCSP and CRL).
export const noRevocationCheck: RevocationChecker = Object.freeze({
  async check(_cert: ClientCert, _context?: RevocationContext): Promise<void> {},
})
