// CRL acceptance (RFC 5280 §5, §6.3.3) and the serial index. parseVerifiedCrl is pure so it
// can run on a worker thread for large lists (see crl-parse-worker.ts).
import { AsnConvert } from '@peculiar/asn1-schema'
import {
  CertificateList,
  CRLReason,
  CRLReasons,
  id_ce_cRLNumber,
  id_ce_cRLReasons,
  id_ce_deltaCRLIndicator,
  id_ce_issuingDistributionPoint,
  id_ce_keyUsage,
  IssuingDistributionPoint,
  KeyUsage,
  KeyUsageFlags,
  type Extension,
} from '@peculiar/asn1-x509'
import { serialFromBytes, type CertificateFacts } from './certificate-facts.ts'
import { verifySignedData } from './signature.ts'
import { RevocationUnavailable } from './types.ts'

export interface RevokedEntry {
  readonly revokedAt: number
  readonly reason?: string
}

/** Which certificates a CRL speaks for (RFC 5280 §5.2.5). */
export type CrlScope = 'all' | 'end-entity' | 'ca'

export interface VerifiedCrl {
  readonly thisUpdate: number
  readonly nextUpdate: number
  /** cRLNumber (RFC 5280 §5.2.3), when present: newer CRLs have larger numbers. */
  readonly crlNumber: bigint | undefined
  readonly scope: CrlScope
  /** URIs of the issuing distribution point, when the CRL is partitioned by one. */
  readonly distributionPoint: readonly string[] | undefined
  /** Canonical serial → entry: an O(1) lookup whatever the size of the list. */
  readonly revoked: ReadonlyMap<string, RevokedEntry>
}

const AUTHORITY_KEY_IDENTIFIER = '2.5.29.35'
const ISSUER_ALT_NAME = '2.5.29.18'
const FRESHEST_CRL = '2.5.29.46'
const AUTHORITY_INFO_ACCESS = '1.3.6.1.5.5.7.1.1'
const INVALIDITY_DATE = '2.5.29.24'
const CERTIFICATE_ISSUER = '2.5.29.29'

const UNDERSTOOD_CRL_EXTENSIONS = new Set([
  AUTHORITY_KEY_IDENTIFIER,
  ISSUER_ALT_NAME,
  FRESHEST_CRL,
  AUTHORITY_INFO_ACCESS,
  id_ce_cRLNumber,
  id_ce_issuingDistributionPoint,
])
const UNDERSTOOD_ENTRY_EXTENSIONS = new Set([id_ce_cRLReasons, INVALIDITY_DATE])

const PEM_CRL = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/

/** DER from a DER or PEM CRL file or HTTP body. */
export function crlDer(bytes: Buffer): Buffer {
  const head = bytes.subarray(0, 64).toString('latin1')
  if (!head.includes('-----BEGIN')) return bytes
  const match = PEM_CRL.exec(bytes.toString('latin1'))
  if (!match) throw new RevocationUnavailable('PEM data without an X509 CRL block')
  return Buffer.from(match[1]!.replace(/\s+/g, ''), 'base64')
}

function extensionOf<T>(extension: Extension, type: new () => T): T {
  return AsnConvert.parse(extension.extnValue.buffer, type)
}

/** RFC 5280 §6.3.3 (f): the CRL signer must be allowed to sign CRLs. */
export function crlSignerProblem(issuer: CertificateFacts): string | undefined {
  if (!issuer.isCa) return `${issuer.subject} is not a CA certificate`
  const usage = issuer.extensions.find((e) => e.extnID === id_ce_keyUsage)
  if (usage && !(extensionOf(usage, KeyUsage).toNumber() & KeyUsageFlags.cRLSign)) return `${issuer.subject} key usage lacks cRLSign`
  return undefined
}

function readScope(extension: Extension | undefined): { scope: CrlScope; distributionPoint: string[] | undefined } {
  if (!extension) return { scope: 'all', distributionPoint: undefined }
  const idp = extensionOf(extension, IssuingDistributionPoint)
  // Indirect and reason-partitioned CRLs do not list everything the CA revoked: not complete for us.
  if (idp.indirectCRL) throw new RevocationUnavailable('indirect CRLs are not supported')
  if (idp.onlySomeReasons) throw new RevocationUnavailable('CRLs limited to some reasons are not supported')
  if (idp.onlyContainsAttributeCerts) throw new RevocationUnavailable('attribute-certificate CRL')
  const names = idp.distributionPoint
  const distributionPoint = names ? (names.fullName ?? []).map((n) => n.uniformResourceIdentifier ?? '\u0000non-URI name') : undefined
  return { scope: idp.onlyContainsUserCerts ? 'end-entity' : idp.onlyContainsCACerts ? 'ca' : 'all', distributionPoint }
}

/** CRLReason (RFC 5280 §5.3.1); the common one-octet DER ENUMERATED is read without a parser round trip. */
function reasonOf(extension: Extension): string | undefined {
  const value = new Uint8Array(extension.extnValue.buffer)
  const code = value.length === 3 && value[0] === 0x0a && value[1] === 0x01 ? value[2]! : extensionOf(extension, CRLReason).reason
  return CRLReasons[code]
}

function readEntries(list: CertificateList): Map<string, RevokedEntry> {
  const revoked = new Map<string, RevokedEntry>()
  for (const entry of list.tbsCertList.revokedCertificates ?? []) {
    let reason: string | undefined
    for (const extension of entry.crlEntryExtensions ?? []) {
      if (extension.extnID === CERTIFICATE_ISSUER) throw new RevocationUnavailable('CRL entry names another certificate issuer (indirect CRL)')
      if (extension.critical && !UNDERSTOOD_ENTRY_EXTENSIONS.has(extension.extnID))
        throw new RevocationUnavailable(`unknown critical CRL entry extension ${extension.extnID}`)
      if (extension.extnID === id_ce_cRLReasons) reason = reasonOf(extension)
    }
    // RFC 5280 §5.3.1: removeFromCRL only has meaning in delta CRLs.
    if (reason === 'removeFromCRL') continue
    revoked.set(serialFromBytes(entry.userCertificate), { revokedAt: entry.revocationDate.getTime().getTime(), ...(reason && { reason }) })
  }
  return revoked
}

function readCrlNumber(extension: Extension): bigint {
  const der = Buffer.from(extension.extnValue.buffer)
  // INTEGER of at most 20 octets: short-form length.
  if (der[0] !== 0x02 || der[1] !== der.length - 2 || der.length < 3 || der.length > 23) throw new RevocationUnavailable('malformed cRLNumber')
  return BigInt(`0x${der.subarray(2).toString('hex')}`)
}

/** Parses, checks issuer, signature and extensions; throws RevocationUnavailable. Times are checked by the caller. */
export function parseVerifiedCrl(der: Uint8Array, issuer: CertificateFacts): VerifiedCrl {
  let list: CertificateList
  try {
    // The node budget grows with the input (a node takes at least two bytes), so big lists parse.
    list = AsnConvert.parse(der, CertificateList, { berOptions: { maxNodes: der.length, maxContentLength: der.length } })
  } catch (error) {
    throw new RevocationUnavailable('CRL is not valid DER', { cause: error })
  }
  const tbs = list.tbsCertList
  if (!list.tbsCertListRaw) throw new RevocationUnavailable('CRL without tbsCertList')
  if (!Buffer.from(AsnConvert.serialize(tbs.issuer)).equals(issuer.subjectDer)) throw new RevocationUnavailable(`CRL issuer is not ${issuer.subject}`)
  if (tbs.signature.algorithm !== list.signatureAlgorithm.algorithm) throw new RevocationUnavailable('CRL signature algorithms disagree')
  const signerProblem = crlSignerProblem(issuer)
  if (signerProblem) throw new RevocationUnavailable(signerProblem)
  if (!verifySignedData(list.signatureAlgorithm, list.tbsCertListRaw, list.signature, issuer.x509.publicKey))
    throw new RevocationUnavailable('CRL signature does not verify')
  // RFC 5280 §5.1.2.5: conforming CRLs carry nextUpdate; without it nothing says when the list is stale.
  if (!tbs.nextUpdate) throw new RevocationUnavailable('CRL without nextUpdate')
  const extensions = tbs.crlExtensions ?? []
  for (const extension of extensions) {
    if (extension.extnID === id_ce_deltaCRLIndicator) throw new RevocationUnavailable('delta CRLs are not supported as complete CRLs')
    if (extension.critical && !UNDERSTOOD_CRL_EXTENSIONS.has(extension.extnID))
      throw new RevocationUnavailable(`unknown critical CRL extension ${extension.extnID}`)
  }
  const numberExtension = extensions.find((e) => e.extnID === id_ce_cRLNumber)
  const { scope, distributionPoint } = readScope(extensions.find((e) => e.extnID === id_ce_issuingDistributionPoint))
  return {
    thisUpdate: tbs.thisUpdate.getTime().getTime(),
    nextUpdate: tbs.nextUpdate.getTime().getTime(),
    crlNumber: numberExtension ? readCrlNumber(numberExtension) : undefined,
    scope,
    distributionPoint,
    revoked: readEntries(list),
  }
}

/** RFC 5280 §6.3.3 (b): whether this CRL is the complete list for `cert`. */
export function crlCovers(crl: VerifiedCrl, cert: CertificateFacts): boolean {
  if (crl.scope === 'end-entity' && cert.isCa) return false
  if (crl.scope === 'ca' && !cert.isCa) return false
  if (crl.distributionPoint === undefined) return true
  return crl.distributionPoint.some((uri) => cert.crlUrls.includes(uri))
}
