// `ca crl`: a signed CRL (RFC 5280 §5) of every certificate revoked in the index, with
// reason codes, an authority key identifier and a CRL number that only grows.
import { resolve } from 'node:path'
import { AsnConvert } from '@peculiar/asn1-schema'
import { CRLNumber, id_ce_cRLNumber } from '@peculiar/asn1-x509'
import { wholeSeconds } from './build-certificate.ts'
import { CaError } from './ca-error.ts'
import { writeFileAtomic } from './files.ts'
import { caKeyIdentifier, loadCaSigningKey, openCaStore, REVOCATION_REASONS, updateIndex } from './store.ts'
import { x509 } from './x509.ts'

const DEFAULT_NEXT_UPDATE_HOURS = 24
const MAX_NEXT_UPDATE_HOURS = 24 * 366
const HOUR_MS = 60 * 60 * 1000

export interface PublishCrlOptions {
  readonly dir: string
  /** Where to write the CRL besides the store's crl.pem. */
  readonly outFile?: string
  /** DER is what RFC 5280 §4.2.1.13 distribution points serve over HTTP; PEM is the default. */
  readonly format?: 'pem' | 'der'
  readonly nextUpdateHours?: number
  readonly now: number
}

export interface PublishedCrl {
  readonly crlNumber: number
  readonly pem: string
  readonly der: Buffer
  readonly thisUpdate: Date
  readonly nextUpdate: Date
  readonly revokedCount: number
}

export async function publishCrl(options: PublishCrlOptions): Promise<PublishedCrl> {
  const store = openCaStore(options.dir)
  const hours = options.nextUpdateHours ?? DEFAULT_NEXT_UPDATE_HOURS
  if (!(hours > 0 && hours <= MAX_NEXT_UPDATE_HOURS))
    throw new CaError(`--next-update-hours: must be more than 0 and at most ${MAX_NEXT_UPDATE_HOURS}, not ${hours}`)
  const signingKey = await loadCaSigningKey(store)
  const keyIdentifier = await caKeyIdentifier(store)
  const thisUpdate = wholeSeconds(options.now)
  const nextUpdate = wholeSeconds(options.now + hours * HOUR_MS)
  return updateIndex(store, async (index) => {
    const crlNumber = index.crlNumber + 1
    const revoked = index.certificates.filter((record) => record.status === 'revoked')
    const crl = await x509.X509CrlGenerator.create({
      issuer: store.cert.subjectName,
      thisUpdate,
      nextUpdate,
      signingKey: signingKey.cryptoKey,
      signingAlgorithm: signingKey.signingAlgorithm,
      extensions: [
        new x509.AuthorityKeyIdentifierExtension(keyIdentifier, false),
        new x509.Extension(id_ce_cRLNumber, false, AsnConvert.serialize(new CRLNumber(crlNumber))),
      ],
      entries: revoked.map((record) => ({
        serialNumber: record.serial,
        revocationDate: new Date(record.revokedAt ?? thisUpdate),
        // RFC 5280 §5.3.1: the reason code unspecified SHOULD be absent.
        ...(record.reason !== undefined && record.reason !== 'unspecified' && { reason: REVOCATION_REASONS[record.reason] }),
      })),
    })
    const der = Buffer.from(crl.rawData)
    // OpenSSL reads only the RFC 7468 §5 label.
    const pem = x509.PemConverter.encode(crl.rawData, 'X509 CRL') + '\n'
    writeFileAtomic(store.path('crl'), pem)
    if (options.outFile !== undefined) writeFileAtomic(resolve(options.outFile), options.format === 'der' ? der : pem)
    index.crlNumber = crlNumber
    return { crlNumber, pem, der, thisUpdate, nextUpdate, revokedCount: revoked.length }
  })
}
