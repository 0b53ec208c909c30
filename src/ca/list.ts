// `ca list`: every certificate the CA issued, with its expiry and status.
import { DAY_MS } from './build-certificate.ts'
import { openCaStore, readIndex, type IssuedRecord, type RevocationReason } from './store.ts'

export interface CertificateListing {
  readonly serial: string
  readonly subject: string
  readonly kind: IssuedRecord['kind']
  readonly notBefore: string
  readonly notAfter: string
  /** Whole days until notAfter; negative once expired. */
  readonly daysLeft: number
  readonly status: 'valid' | 'expired' | 'revoked'
  readonly revokedAt?: string
  readonly reason?: RevocationReason
}

export function listCertificates(options: { readonly dir: string; readonly now: number }): CertificateListing[] {
  const store = openCaStore(options.dir)
  return readIndex(store).certificates.map((record) => {
    const notAfter = Date.parse(record.notAfter)
    const status = record.status === 'revoked' ? 'revoked' : notAfter < options.now ? 'expired' : 'valid'
    return {
      serial: record.serial,
      subject: record.subject,
      kind: record.kind,
      notBefore: record.notBefore,
      notAfter: record.notAfter,
      daysLeft: Math.floor((notAfter - options.now) / DAY_MS),
      status,
      ...(record.revokedAt !== undefined && { revokedAt: record.revokedAt }),
      ...(record.reason !== undefined && { reason: record.reason }),
    }
  })
}

export function formatListing(rows: readonly CertificateListing[]): string {
  const header = ['serial', 'subject', 'kind', 'notAfter', 'days left', 'status']
  const lines = rows.map((row) => [
    row.serial,
    row.subject,
    row.kind,
    row.notAfter,
    String(row.daysLeft),
    row.status === 'revoked' ? `revoked ${row.revokedAt ?? ''} (${row.reason ?? 'unspecified'})` : row.status,
  ])
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column]!.length)))
  const render = (cells: string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join('  ')
      .trimEnd()
  return [render(header), render(widths.map((width) => '-'.repeat(width))), ...lines.map(render)].join('\n')
}
