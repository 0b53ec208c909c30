// `ca revoke`: marks an issued certificate revoked in the index; the OCSP responder sees it
// at its next request, a CRL from the next `ca crl`.
import { CaError } from './ca-error.ts'
import { normaliseSerial, openCaStore, updateIndex, type IssuedRecord, type RevocationReason } from './store.ts'

export interface RevokeOptions {
  readonly dir: string
  readonly serial: string
  readonly reason?: RevocationReason
  readonly now: number
}

export async function revokeCertificate(options: RevokeOptions): Promise<IssuedRecord> {
  const store = openCaStore(options.dir)
  const serial = normaliseSerial(options.serial, '--serial')
  return updateIndex(store, (index) => {
    const record = index.certificates.find((candidate) => candidate.serial === serial)
    if (!record) throw new CaError(`--serial ${options.serial}: no certificate with this serial in ${store.path('index')}`)
    if (record.status === 'revoked')
      throw new CaError(`--serial ${options.serial}: already revoked at ${record.revokedAt ?? '?'} (${record.reason ?? 'unspecified'})`)
    record.status = 'revoked'
    // X.509 times carry whole seconds.
    record.revokedAt = new Date(Math.floor(options.now / 1000) * 1000).toISOString()
    record.reason = options.reason ?? 'unspecified'
    return { ...record }
  })
}
