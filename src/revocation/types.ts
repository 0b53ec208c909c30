// The vocabulary shared by the OCSP client, the CRL store and the checker.

export type RevocationSource = 'ocsp' | 'crl'

export type CertificateStatus = 'good' | 'revoked'

/** A status a source vouched for, verified. Times are milliseconds since the epoch. */
export interface KnownStatus {
  readonly status: CertificateStatus
  readonly source: RevocationSource
  /** When the source asserted it (OCSP/CRL thisUpdate). */
  readonly thisUpdate: number
  /** Until when it may be relied on without asking again (nextUpdate, bounded). */
  readonly freshUntil: number
  readonly revokedAt?: number
  readonly reason?: string
}

/** What one source said about one certificate. */
export type SourceAnswer =
  | { readonly kind: 'status'; readonly known: KnownStatus }
  /** The responder knows nothing of the certificate (RFC 6960 `unknown`): an answer, but not good. */
  | { readonly kind: 'unknown'; readonly detail: string }
  /** No usable answer; `stale` is the last verified status past its freshness, if any. */
  | { readonly kind: 'unavailable'; readonly detail: string; readonly stale?: KnownStatus }

/** Of the newest good CRL a CA has: its age and size, for the gauges. */
export interface CrlStats {
  readonly ageSeconds: number
  readonly entries: number
}

/** Thrown inside sources for every failure that must end as "unavailable", never as a status. */
export class RevocationUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'RevocationUnavailable'
  }
}

export function unavailableDetail(error: unknown): string {
  if (error instanceof RevocationUnavailable) return error.message
  if (error instanceof Error) return `${error.name}: ${error.message}`
  return String(error)
}
