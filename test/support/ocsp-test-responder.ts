// An OCSP responder whose every answer a test chooses: good/revoked/unknown signed by any
// key, tryLater, an HTML error page, garbage. It counts the requests it received.
import { createHash, sign, type KeyObject } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { AsnConvert, OctetString } from '@peculiar/asn1-schema'
import { AlgorithmIdentifier, Certificate, CRLReason, CRLReasons } from '@peculiar/asn1-x509'
import {
  BasicOCSPResponse,
  CertStatus,
  id_pkix_ocsp_basic,
  id_pkix_ocsp_nonce,
  KeyHash,
  OCSPRequest,
  OCSPResponse,
  OCSPResponseStatus,
  ResponderID,
  ResponseBytes,
  ResponseData,
  RevokedInfo,
  SingleResponse,
} from '@peculiar/asn1-ocsp'

export interface OcspSigner {
  readonly key: KeyObject
  /** The certificate whose key signs; put in `certs` when `include` is set. */
  readonly certDer: Buffer
  readonly include: boolean
}

export interface ResponderBehaviour {
  readonly answer: 'good' | 'revoked' | 'unknown' | 'tryLater' | 'internalError' | 'html' | 'garbage' | 'http-500'
  readonly signer?: OcspSigner
  /** Seconds from now; null for no nextUpdate. Default 300. */
  readonly nextUpdateSeconds?: number | null
  /** Seconds added to now for thisUpdate (negative: in the past). Default -60. */
  readonly thisUpdateSeconds?: number
  readonly echoNonce?: boolean
  /** Holds the answer back this long (to make concurrent requests overlap). */
  readonly delayMs?: number
  /** The responder's clock (tests that move the checker's clock move this one too). */
  readonly now?: () => number
}

export interface TestOcspResponder {
  readonly url: string
  readonly requests: number
  /** Without a signer, answers are signed by the initial one. */
  set(behaviour: ResponderBehaviour): void
  close(): Promise<void>
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.once('end', () => resolve(Buffer.concat(chunks)))
    req.once('error', reject)
  })
}

function outer(status: OCSPResponseStatus, basic?: BasicOCSPResponse): Buffer {
  return Buffer.from(
    AsnConvert.serialize(
      new OCSPResponse({
        responseStatus: status,
        ...(basic && { responseBytes: new ResponseBytes({ responseType: id_pkix_ocsp_basic, response: new OctetString(AsnConvert.serialize(basic)) }) }),
      }),
    ),
  )
}

export function signedAnswer(requestDer: Buffer, behaviour: ResponderBehaviour, signer: OcspSigner): Buffer {
  const request = AsnConvert.parse(requestDer, OCSPRequest)
  const now = behaviour.now?.() ?? Date.now()
  const certId = request.tbsRequest.requestList[0]!.reqCert
  const certStatus =
    behaviour.answer === 'revoked'
      ? new CertStatus({
          revoked: new RevokedInfo({
            revocationTime: new Date(Math.floor(now / 1000) * 1000 - 3_600_000),
            revocationReason: new CRLReason(CRLReasons.keyCompromise),
          }),
        })
      : behaviour.answer === 'unknown'
        ? new CertStatus({ unknown: null })
        : new CertStatus({ good: null })
  const nextUpdate = behaviour.nextUpdateSeconds === null ? undefined : new Date(Math.floor(now / 1000) * 1000 + (behaviour.nextUpdateSeconds ?? 300) * 1000)
  const signerCert = AsnConvert.parse(signer.certDer, Certificate)
  const keyHash = createHash('sha1').update(new Uint8Array(signerCert.tbsCertificate.subjectPublicKeyInfo.subjectPublicKey)).digest()
  const nonce = request.tbsRequest.requestExtensions?.find((e) => e.extnID === id_pkix_ocsp_nonce)
  const data = new ResponseData({
    responderID: new ResponderID({ byKey: new KeyHash(keyHash) }),
    producedAt: new Date(Math.floor(now / 1000) * 1000),
    responses: [
      new SingleResponse({
        certID: certId,
        certStatus,
        thisUpdate: new Date(Math.floor(now / 1000) * 1000 + (behaviour.thisUpdateSeconds ?? -60) * 1000),
        ...(nextUpdate && { nextUpdate }),
      }),
    ],
    ...(behaviour.echoNonce !== false && nonce && { responseExtensions: [nonce] }),
  })
  const tbs = Buffer.from(AsnConvert.serialize(data))
  const basic = new BasicOCSPResponse({
    tbsResponseData: data,
    signatureAlgorithm: new AlgorithmIdentifier({ algorithm: '1.2.840.10045.4.3.2' }),
    signature: new Uint8Array(sign('sha256', tbs, signer.key)).buffer,
    ...(signer.include && { certs: [signerCert] }),
  })
  return outer(OCSPResponseStatus.successful, basic)
}

export async function startTestOcspResponder(initial: ResponderBehaviour & { signer: OcspSigner }): Promise<TestOcspResponder> {
  let behaviour: ResponderBehaviour = initial
  const defaultSigner = initial.signer
  let requests = 0

  async function answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req)
    requests++
    const current = behaviour
    if (current.delayMs) await new Promise((resolve) => setTimeout(resolve, current.delayMs))
    switch (current.answer) {
      case 'html':
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body><h1>Service temporarily unavailable</h1></body></html>')
        return
      case 'http-500':
        res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error')
        return
      case 'garbage':
        res.writeHead(200, { 'content-type': 'application/ocsp-response' }).end(Buffer.from('30 03 0a 01'.replace(/ /g, ''), 'hex'))
        return
      case 'tryLater':
        res.writeHead(200, { 'content-type': 'application/ocsp-response' }).end(outer(OCSPResponseStatus.tryLater))
        return
      case 'internalError':
        res.writeHead(200, { 'content-type': 'application/ocsp-response' }).end(outer(OCSPResponseStatus.internalError))
        return
      default:
        res.writeHead(200, { 'content-type': 'application/ocsp-response' }).end(signedAnswer(body, current, current.signer ?? defaultSigner))
    }
  }

  const server = createServer((req, res) => {
    answer(req, res).catch((error: unknown) => {
      res.writeHead(500).end(String(error))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/ocsp`,
    get requests() {
      return requests
    },
    set(next) {
      behaviour = next
    },
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
