// OCSP stapling for the gateway's own certificate (RFC 6066 §8, RFC 6961 for TLS 1.3's
// per-certificate status): the response is fetched in the background from the responder
// the certificate names in its AIA extension (or listener.tls.ocspStapling.url), verified
// like any OCSP answer (src/revocation/ocsp.ts), cached, refreshed half-way to its
// nextUpdate, and handed to the TLS 'OCSPRequest' event. A handshake never waits for the
// responder: when no fresh good response is held, nothing is stapled.
import type { X509Certificate } from 'node:crypto'
import type { Clock, Logger } from '../types.ts'
import { readCertificateFacts, type CertificateFacts } from '../revocation/certificate-facts.ts'
import { createRevocationHttp, type RevocationHttp } from '../revocation/http-fetch.ts'
import { buildOcspRequest, verifyOcspResponse } from '../revocation/ocsp.ts'
import { unavailableDetail } from '../revocation/types.ts'

export interface StaplingSettings {
  readonly enabled: boolean
  /** Overrides the certificate's AIA OCSP URL. */
  readonly url?: string | undefined
  readonly timeoutMs: number
}

export interface OcspStaplerOptions {
  readonly now: Clock
  readonly logger: Logger
  readonly http?: RevocationHttp
  readonly clockSkewMs?: number
  /** First retry after a failed fetch; doubles up to retryMaxMs. */
  readonly retryMinMs?: number
  readonly retryMaxMs?: number
}

export interface StapleStatus {
  readonly url: string | undefined
  /** When the held response stops being fresh (ms since the epoch), if one is held. */
  readonly freshUntil: number | undefined
  readonly lastProblem: string | undefined
}

export interface OcspStapler {
  /** The server chain (leaf first) in force; a new certificate or URL drops the held response and fetches one. */
  configure(chain: readonly X509Certificate[], settings: StaplingSettings): void
  /** The DER OCSPResponse to staple for this certificate, when a fresh good one is held. */
  staple(certificateDer: Buffer): Buffer | undefined
  /** Fetches now; resolves when that fetch is done (whatever its outcome). */
  refresh(): Promise<void>
  status(): StapleStatus
  close(): Promise<void>
}

interface Target {
  readonly leaf: CertificateFacts
  readonly issuer: CertificateFacts
  readonly url: string
  readonly timeoutMs: number
  readonly key: string
}

interface Held {
  readonly der: Buffer
  readonly leafDer: Buffer
  readonly freshUntil: number
}

const MAX_RESPONSE_BYTES = 1024 * 1024
/** Freshness of a response without nextUpdate, from its thisUpdate. */
const DEFAULT_VALIDITY_MS = 60 * 60 * 1000
const MIN_REFRESH_MS = 1_000

function findIssuer(leaf: X509Certificate, chain: readonly X509Certificate[]): X509Certificate | undefined {
  return chain.find((candidate) => candidate !== leaf && leaf.checkIssued(candidate) && leaf.verify(candidate.publicKey))
}

export function createOcspStapler(options: OcspStaplerOptions): OcspStapler {
  const { now, logger } = options
  const http = options.http ?? createRevocationHttp({ connections: 2 })
  const retryMinMs = options.retryMinMs ?? 5_000
  const retryMaxMs = options.retryMaxMs ?? 5 * 60_000
  let target: Target | undefined
  let held: Held | undefined
  let timer: NodeJS.Timeout | undefined
  let failures = 0
  let lastProblem: string | undefined
  let inFlight: { readonly target: Target; readonly done: Promise<void> } | undefined
  let closed = false

  function schedule(inMs: number): void {
    if (timer) clearTimeout(timer)
    if (closed || !target) return
    timer = setTimeout(() => void refresh(), Math.max(0, inMs))
    timer.unref()
  }

  function failed(problem: string): void {
    failures++
    if (problem !== lastProblem)
      logger.warn(
        { url: target?.url, problem },
        'OCSP stapling: no usable response for the server certificate; handshakes go without a staple until one is fetched',
      )
    lastProblem = problem
    schedule(Math.min(retryMaxMs, retryMinMs * 2 ** (failures - 1)))
  }

  async function fetchFor(current: Target): Promise<void> {
    let body: Buffer
    try {
      const request = buildOcspRequest(current.leaf, current.issuer, { hashAlgorithm: 'sha1', nonce: false })
      body = await http.fetch(current.url, {
        method: 'POST',
        body: request.der,
        contentType: 'application/ocsp-request',
        accept: 'application/ocsp-response',
        timeoutMs: current.timeoutMs,
        maxBytes: MAX_RESPONSE_BYTES,
      })
    } catch (error) {
      if (current === target) failed(unavailableDetail(error))
      return
    }
    if (current !== target) return
    const at = now()
    try {
      const verdict = verifyOcspResponse(body, {
        cert: current.leaf,
        issuer: current.issuer,
        nonceExtension: undefined,
        nowMs: at,
        clockSkewMs: options.clockSkewMs ?? 60_000,
        defaultValidityMs: DEFAULT_VALIDITY_MS,
      })
      if (verdict.kind === 'unknown') return failed(verdict.detail)
      if (verdict.known.status === 'revoked') {
        held = undefined
        logger.error(
          { url: current.url, serial: current.leaf.serial },
          "OCSP stapling: the responder reports the gateway's own certificate REVOKED; replace it",
        )
        return failed('the server certificate is revoked')
      }
      held = { der: body, leafDer: current.leaf.der, freshUntil: verdict.known.freshUntil }
      failures = 0
      lastProblem = undefined
      schedule(Math.max(MIN_REFRESH_MS, (verdict.known.freshUntil - at) / 2))
    } catch (error) {
      failed(unavailableDetail(error))
    }
  }

  function refresh(): Promise<void> {
    const current = target
    if (closed || !current) return Promise.resolve()
    if (inFlight?.target === current) return inFlight.done
    const flight = {
      target: current,
      done: fetchFor(current).finally(() => {
        if (inFlight === flight) inFlight = undefined
      }),
    }
    inFlight = flight
    return flight.done
  }

  return {
    configure(chain, settings) {
      const leaf = chain[0]
      const url = leaf && settings.enabled ? (settings.url ?? readCertificateFacts(leaf.raw).ocspUrls[0]) : undefined
      const key = leaf && url ? `${leaf.fingerprint256}|${url}|${settings.timeoutMs}` : ''
      if (key === (target?.key ?? '')) return
      if (timer) clearTimeout(timer)
      held = undefined
      failures = 0
      lastProblem = undefined
      target = undefined
      if (!leaf || !url) return
      const issuer = findIssuer(leaf, chain)
      if (!issuer) {
        lastProblem = 'the issuer of the server certificate is not in listener.tls.certFile'
        logger.warn({ url }, `OCSP stapling off: ${lastProblem}`)
        return
      }
      target = { leaf: readCertificateFacts(leaf.raw), issuer: readCertificateFacts(issuer.raw), url, timeoutMs: settings.timeoutMs, key }
      void refresh()
    },
    staple(certificateDer) {
      if (!held || held.freshUntil <= now() || !held.leafDer.equals(certificateDer)) return undefined
      return held.der
    },
    refresh,
    status: () => ({ url: target?.url, freshUntil: held?.freshUntil, lastProblem }),
    async close() {
      closed = true
      if (timer) clearTimeout(timer)
      await inFlight?.done.catch(() => undefined)
      await http.close()
    },
  }
}
