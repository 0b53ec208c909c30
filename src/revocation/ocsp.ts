// OCSP (RFC 6960) requests and the acceptance of responses (RFC 6960 §3.2, §4.2.2.2),
// built and parsed with @peculiar/asn1-ocsp. Anything short of a verified, fresh,
// matching answer throws RevocationUnavailable: it is never turned into a status.
import { createHash, randomBytes } from 'node:crypto'
import { AsnConvert, OctetString } from '@peculiar/asn1-schema'
import { AlgorithmIdentifier, CRLReasons, Extension } from '@peculiar/asn1-x509'
import {
  BasicOCSPResponse,
  CertID,
  id_kp_OCSPSigning,
  id_pkix_ocsp_basic,
  id_pkix_ocsp_nonce,
  OCSPRequest,
  OCSPResponse,
  OCSPResponseStatus,
  Request,
  TBSRequest,
  type SingleResponse,
} from '@peculiar/asn1-ocsp'
import { readCertificateFacts, serialFromBytes, type CertificateFacts } from './certificate-facts.ts'
import { verifySignedData } from './signature.ts'
import { RevocationUnavailable, type KnownStatus } from './types.ts'

export type OcspHashAlgorithm = 'sha1' | 'sha256'

const HASH_OIDS: Readonly<Record<string, string>> = {
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
}
const HASH_BY_OID: Readonly<Record<string, string>> = Object.fromEntries(Object.entries(HASH_OIDS).map(([name, oid]) => [oid, name]))

const NONCE_BYTES = 32

export interface BuiltOcspRequest {
  readonly der: Buffer
  /** The nonce extension's extnValue as sent, when a nonce was asked for (RFC 8954). */
  readonly nonceExtension: Buffer | undefined
}

function hash(algorithm: string, data: Uint8Array): Buffer {
  return createHash(algorithm).update(data).digest()
}

function certId(cert: CertificateFacts, issuer: CertificateFacts, algorithm: string): CertID {
  return new CertID({
    hashAlgorithm: new AlgorithmIdentifier({ algorithm: HASH_OIDS[algorithm]!, parameters: null }),
    // RFC 6960 §4.1.1: the issuer's name as it appears in the checked certificate, and its key bits.
    issuerNameHash: new OctetString(hash(algorithm, cert.issuerDer)),
    issuerKeyHash: new OctetString(hash(algorithm, issuer.publicKeyBits)),
    serialNumber: new Uint8Array(cert.serialBytes).buffer,
  })
}

export function buildOcspRequest(
  cert: CertificateFacts,
  issuer: CertificateFacts,
  options: { hashAlgorithm: OcspHashAlgorithm; nonce: boolean },
): BuiltOcspRequest {
  const nonceExtension = options.nonce ? Buffer.from(AsnConvert.serialize(new OctetString(randomBytes(NONCE_BYTES)))) : undefined
  const request = new OCSPRequest({
    tbsRequest: new TBSRequest({
      requestList: [new Request({ reqCert: certId(cert, issuer, options.hashAlgorithm) })],
      ...(nonceExtension && {
        requestExtensions: [new Extension({ extnID: id_pkix_ocsp_nonce, critical: false, extnValue: new OctetString(nonceExtension) })],
      }),
    }),
  })
  return { der: Buffer.from(AsnConvert.serialize(request)), nonceExtension }
}

export interface OcspExpectation {
  readonly cert: CertificateFacts
  readonly issuer: CertificateFacts
  /** Required in the response when set. */
  readonly nonceExtension: Buffer | undefined
  readonly nowMs: number
  /** Tolerance for thisUpdate ahead of our clock and for the responder certificate's validity. */
  readonly clockSkewMs: number
  /** How long an answer without nextUpdate counts as fresh after its thisUpdate. */
  readonly defaultValidityMs: number
}

export type OcspVerdict = { readonly kind: 'status'; readonly known: KnownStatus } | { readonly kind: 'unknown'; readonly detail: string }

function parse<T>(der: ArrayBuffer | Uint8Array, type: new () => T, what: string): T {
  try {
    return AsnConvert.parse(der, type)
  } catch (error) {
    throw new RevocationUnavailable(`${what} is not valid DER`, { cause: error })
  }
}

function matchesCertId(id: CertID, cert: CertificateFacts, issuer: CertificateFacts): boolean {
  const algorithm = HASH_BY_OID[id.hashAlgorithm.algorithm]
  if (!algorithm) return false
  return (
    serialFromBytes(id.serialNumber) === cert.serial &&
    hash(algorithm, cert.issuerDer).equals(Buffer.from(id.issuerNameHash.buffer)) &&
    hash(algorithm, issuer.publicKeyBits).equals(Buffer.from(id.issuerKeyHash.buffer))
  )
}

function identifiesSigner(response: BasicOCSPResponse, candidate: CertificateFacts): boolean {
  const responderId = response.tbsResponseData.responderID
  if (responderId.byKey) return hash('sha1', candidate.publicKeyBits).equals(Buffer.from(responderId.byKey.buffer))
  if (responderId.byName) return Buffer.from(AsnConvert.serialize(responderId.byName)).equals(candidate.subjectDer)
  return false
}

function isSameKey(a: CertificateFacts, b: CertificateFacts): boolean {
  return a.keyId === b.keyId && a.subjectDer.equals(b.subjectDer)
}

/** RFC 6960 §4.2.2.2: the CA itself, or a certificate it issued for OCSP signing. */
function responderProblem(responder: CertificateFacts, issuer: CertificateFacts, expectation: OcspExpectation): string | undefined {
  if (!responder.x509.checkIssued(issuer.x509) || !responder.x509.verify(issuer.x509.publicKey)) return 'delegated responder certificate not issued by the CA'
  const usages = responder.x509.keyUsage as string[] | undefined
  if (!usages?.includes(id_kp_OCSPSigning)) return 'delegated responder certificate lacks id-kp-OCSPSigning'
  const { nowMs, clockSkewMs } = expectation
  if (responder.x509.validFromDate.getTime() > nowMs + clockSkewMs || responder.x509.validToDate.getTime() < nowMs)
    return 'delegated responder certificate outside its validity'
  return undefined
}

function signerOf(response: BasicOCSPResponse, expectation: OcspExpectation): CertificateFacts {
  const { issuer } = expectation
  if (identifiesSigner(response, issuer)) return issuer
  let problem = 'no certificate matches the responder ID'
  for (const cert of response.certs ?? []) {
    let candidate: CertificateFacts
    try {
      candidate = readCertificateFacts(Buffer.from(AsnConvert.serialize(cert)))
    } catch {
      continue
    }
    if (!identifiesSigner(response, candidate)) continue
    if (isSameKey(candidate, issuer)) return issuer
    const candidateProblem = responderProblem(candidate, issuer, expectation)
    if (!candidateProblem) return candidate
    problem = candidateProblem
  }
  throw new RevocationUnavailable(`OCSP response signer not accepted: ${problem}`)
}

function nonceOf(response: BasicOCSPResponse): Buffer | undefined {
  const extension = response.tbsResponseData.responseExtensions?.find((e) => e.extnID === id_pkix_ocsp_nonce)
  return extension ? Buffer.from(extension.extnValue.buffer) : undefined
}

function statusOf(single: SingleResponse, expectation: OcspExpectation): OcspVerdict {
  const { nowMs, clockSkewMs, defaultValidityMs } = expectation
  const thisUpdate = single.thisUpdate.getTime()
  if (thisUpdate > nowMs + clockSkewMs) throw new RevocationUnavailable('OCSP thisUpdate is in the future')
  const freshUntil = single.nextUpdate ? single.nextUpdate.getTime() : thisUpdate + defaultValidityMs
  if (freshUntil <= nowMs) throw new RevocationUnavailable(single.nextUpdate ? 'OCSP nextUpdate has passed' : 'OCSP response without nextUpdate is too old')
  const status = single.certStatus
  if (status.revoked) {
    const reason = status.revoked.revocationReason?.reason
    return {
      kind: 'status',
      known: {
        status: 'revoked',
        source: 'ocsp',
        thisUpdate,
        freshUntil,
        revokedAt: status.revoked.revocationTime.getTime(),
        reason: reason === undefined ? undefined : CRLReasons[reason],
      },
    }
  }
  if (status.unknown !== undefined) return { kind: 'unknown', detail: 'OCSP responder answered unknown' }
  if (status.good !== undefined) return { kind: 'status', known: { status: 'good', source: 'ocsp', thisUpdate, freshUntil } }
  throw new RevocationUnavailable('OCSP certStatus missing')
}

/** Accepts a DER OCSPResponse or throws RevocationUnavailable. */
export function verifyOcspResponse(der: Uint8Array, expectation: OcspExpectation): OcspVerdict {
  const outer = parse(der, OCSPResponse, 'OCSP response')
  if (outer.responseStatus !== OCSPResponseStatus.successful) {
    // tryLater, internalError, …: never a status, never cached (RFC 6960 §4.2.1).
    throw new RevocationUnavailable(`OCSP responseStatus ${OCSPResponseStatus[outer.responseStatus] ?? outer.responseStatus}`)
  }
  const bytes = outer.responseBytes
  if (!bytes || bytes.responseType !== id_pkix_ocsp_basic) throw new RevocationUnavailable('OCSP response is not a BasicOCSPResponse')
  const basic = parse(bytes.response.buffer, BasicOCSPResponse, 'BasicOCSPResponse')
  if (!basic.tbsResponseDataRaw) throw new RevocationUnavailable('BasicOCSPResponse without tbsResponseData')
  const signer = signerOf(basic, expectation)
  if (!verifySignedData(basic.signatureAlgorithm, basic.tbsResponseDataRaw, basic.signature, signer.x509.publicKey)) {
    throw new RevocationUnavailable('OCSP response signature does not verify')
  }
  if (expectation.nonceExtension) {
    const nonce = nonceOf(basic)
    if (!nonce || !nonce.equals(expectation.nonceExtension))
      throw new RevocationUnavailable(nonce ? 'OCSP nonce does not match' : 'OCSP response without the requested nonce')
  }
  const single = basic.tbsResponseData.responses.find((r) => matchesCertId(r.certID, expectation.cert, expectation.issuer))
  if (!single) throw new RevocationUnavailable('OCSP response does not cover the certificate')
  return statusOf(single, expectation)
}
