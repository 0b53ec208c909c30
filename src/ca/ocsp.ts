// OCSP answers for one CA (RFC 6960): parse an OCSPRequest, look each CertID up, and sign a
// BasicOCSPResponse with the CA key or a delegated responder key. Built with
// @peculiar/asn1-ocsp; no HTTP here (see ocsp-responder.ts).
import { createHash, sign } from 'node:crypto'
import { AsnConvert, OctetString } from '@peculiar/asn1-schema'
import {
  BasicOCSPResponse,
  CertStatus,
  KeyHash,
  OCSPRequest,
  OCSPResponse,
  OCSPResponseStatus,
  ResponderID,
  ResponseBytes,
  ResponseData,
  RevokedInfo,
  SingleResponse,
  id_pkix_ocsp_basic,
  id_pkix_ocsp_nonce,
  type CertID,
} from '@peculiar/asn1-ocsp'
import { AlgorithmIdentifier, Certificate, CRLReason, Extension } from '@peculiar/asn1-x509'
import type { SigningKey } from './keys.ts'
import { REVOCATION_REASONS, type RevocationReason } from './store.ts'

/** Hash algorithms a CertID may use (RFC 6960 §4.1.1; SHA-1 is what most clients still send). */
const CERT_ID_HASHES: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
}
const MAX_REQUESTS_PER_MESSAGE = 16
// RFC 8954 §2.1: nonces of 1 to 32 octets are echoed; 0 or more than 128 are malformed.
const MAX_ECHOED_NONCE = 32
const MAX_NONCE = 128

export type CertificateStatus =
  | { readonly status: 'good' }
  | { readonly status: 'revoked'; readonly revokedAt: Date; readonly reason: RevocationReason | undefined }
  | { readonly status: 'unknown' }

export interface OcspSigner {
  readonly signingKey: SigningKey
  /** DER of the signing certificate: the CA's own, or a delegated responder's (sent along in `certs`). */
  readonly certDer: Uint8Array
  readonly delegated: boolean
}

export type OcspOutcome =
  | { readonly responseStatus: 'successful'; readonly answers: readonly { serial: string; status: CertificateStatus['status'] }[] }
  | { readonly responseStatus: 'malformedRequest' | 'unauthorized' | 'internalError'; readonly reason: string }

export interface OcspAnswer {
  readonly der: Buffer
  readonly outcome: OcspOutcome
  /** Whether the answer carries a nonce (then it must not be cached by HTTP caches). */
  readonly nonce: boolean
  readonly nextUpdate: Date | undefined
}

interface IssuerHashes {
  readonly nameHash: Buffer
  readonly keyHash: Buffer
}

/** Hashes of the issuer's name and key as a CertID carries them, per hash algorithm. */
export function createIssuerMatcher(certDer: Uint8Array): (certId: CertID) => boolean {
  const tbs = AsnConvert.parse(certDer, Certificate).tbsCertificate
  const nameDer = Buffer.from(AsnConvert.serialize(tbs.subject))
  const keyBits = Buffer.from(tbs.subjectPublicKeyInfo.subjectPublicKey)
  const cache = new Map<string, IssuerHashes>()
  return (certId) => {
    const hash = CERT_ID_HASHES[certId.hashAlgorithm.algorithm]
    if (!hash) return false
    let hashes = cache.get(hash)
    if (!hashes) {
      hashes = { nameHash: createHash(hash).update(nameDer).digest(), keyHash: createHash(hash).update(keyBits).digest() }
      cache.set(hash, hashes)
    }
    return hashes.nameHash.equals(Buffer.from(certId.issuerNameHash.buffer)) && hashes.keyHash.equals(Buffer.from(certId.issuerKeyHash.buffer))
  }
}

export function serialOf(certId: CertID): string {
  return Buffer.from(certId.serialNumber)
    .toString('hex')
    .replace(/^0+(?=.)/, '')
}

function statusOnly(status: 'malformedRequest' | 'unauthorized' | 'internalError', reason: string): OcspAnswer {
  const der = Buffer.from(AsnConvert.serialize(new OCSPResponse({ responseStatus: OCSPResponseStatus[status] })))
  return { der, outcome: { responseStatus: status, reason }, nonce: false, nextUpdate: undefined }
}

export function internalErrorAnswer(reason: string): OcspAnswer {
  return statusOnly('internalError', reason)
}

export function malformedRequestAnswer(reason: string): OcspAnswer {
  return statusOnly('malformedRequest', reason)
}

function parseRequest(der: Uint8Array): OCSPRequest | string {
  try {
    return AsnConvert.parse(der, OCSPRequest)
  } catch (error) {
    return `not an OCSPRequest (${error instanceof Error ? error.message : String(error)})`
  }
}

/** The nonce extension to echo, undefined to answer without one, or a string when malformed. */
function nonceOf(request: OCSPRequest): Extension | undefined | string {
  const extension = request.tbsRequest.requestExtensions?.find((candidate) => candidate.extnID === id_pkix_ocsp_nonce)
  if (!extension) return undefined
  const value = Buffer.from(extension.extnValue.buffer)
  let nonceLength = value.length
  try {
    nonceLength = AsnConvert.parse(value, OctetString).byteLength
  } catch {
    // Some clients send the nonce bytes without the inner OCTET STRING; its length is the value's.
  }
  if (nonceLength === 0 || nonceLength > MAX_NONCE) return `nonce of ${nonceLength} octets`
  if (nonceLength > MAX_ECHOED_NONCE) return undefined
  return new Extension({ extnID: id_pkix_ocsp_nonce, critical: false, extnValue: new OctetString(value) })
}

function certStatus(status: CertificateStatus): CertStatus {
  switch (status.status) {
    case 'good':
      return new CertStatus({ good: null })
    case 'revoked':
      return new CertStatus({
        revoked: new RevokedInfo({
          revocationTime: status.revokedAt,
          // RFC 5280 §5.3.1: unspecified is expressed by leaving the reason out.
          ...(status.reason !== undefined && status.reason !== 'unspecified' && { revocationReason: new CRLReason(REVOCATION_REASONS[status.reason]) }),
        }),
      })
    default:
      return new CertStatus({ unknown: null })
  }
}

export interface AnswerContext {
  /** Whether a CertID names this CA (see createIssuerMatcher). */
  readonly matchesIssuer: (certId: CertID) => boolean
  /** Status of a serial (lower-case hex without leading zeros) issued by this CA. */
  readonly lookup: (serial: string) => CertificateStatus
  readonly signer: OcspSigner
  readonly now: number
  /** How long the answer may be relied upon: nextUpdate = thisUpdate + this. */
  readonly validitySeconds: number
}

export function answerOcspRequest(requestDer: Uint8Array, context: AnswerContext): OcspAnswer {
  const request = parseRequest(requestDer)
  if (typeof request === 'string') return statusOnly('malformedRequest', request)
  const list = request.tbsRequest.requestList
  if (list.length === 0 || list.length > MAX_REQUESTS_PER_MESSAGE)
    return statusOnly('malformedRequest', `${list.length} certificates asked for (1 to ${MAX_REQUESTS_PER_MESSAGE})`)
  const nonce = nonceOf(request)
  if (typeof nonce === 'string') return statusOnly('malformedRequest', nonce)
  // RFC 6960 §2.3: a responder answers unauthorized for certificates it is not authoritative for.
  const foreign = list.find((single) => !context.matchesIssuer(single.reqCert))
  if (foreign) return statusOnly('unauthorized', `certificate ${serialOf(foreign.reqCert)} is not from this CA (or its CertID hash algorithm is not supported)`)

  const thisUpdate = new Date(Math.floor(context.now / 1000) * 1000)
  const nextUpdate = new Date(thisUpdate.getTime() + context.validitySeconds * 1000)
  const answers = list.map((single) => ({ certId: single.reqCert, serial: serialOf(single.reqCert), status: context.lookup(serialOf(single.reqCert)) }))
  const signerTbs = AsnConvert.parse(context.signer.certDer, Certificate).tbsCertificate
  const responseData = new ResponseData({
    // RFC 6960 §4.2.2.3: byKey is the SHA-1 of the signer's public key BIT STRING.
    responderID: new ResponderID({ byKey: new KeyHash(createHash('sha1').update(Buffer.from(signerTbs.subjectPublicKeyInfo.subjectPublicKey)).digest()) }),
    producedAt: thisUpdate,
    responses: answers.map((answer) => new SingleResponse({ certID: answer.certId, certStatus: certStatus(answer.status), thisUpdate, nextUpdate })),
    ...(nonce && { responseExtensions: [nonce] }),
  })
  const tbs = AsnConvert.serialize(responseData)
  const key = context.signer.signingKey
  const basic = new BasicOCSPResponse({
    tbsResponseData: responseData,
    signatureAlgorithm: new AlgorithmIdentifier({ algorithm: key.signatureOid, ...(key.nullParameters && { parameters: null }) }),
    signature: new Uint8Array(sign(key.hash, Buffer.from(tbs), { key: key.privateKey, dsaEncoding: 'der' })).buffer,
    ...(context.signer.delegated && { certs: [AsnConvert.parse(context.signer.certDer, Certificate)] }),
  })
  const response = new OCSPResponse({
    responseStatus: OCSPResponseStatus.successful,
    responseBytes: new ResponseBytes({ responseType: id_pkix_ocsp_basic, response: new OctetString(AsnConvert.serialize(basic)) }),
  })
  return {
    der: Buffer.from(AsnConvert.serialize(response)),
    outcome: { responseStatus: 'successful', answers: answers.map(({ serial, status }) => ({ serial, status: status.status })) },
    nonce: nonce !== undefined,
    nextUpdate,
  }
}
