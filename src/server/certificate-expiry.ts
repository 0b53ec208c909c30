// How long the certificates the gateway uses remain valid: a gauge read at scrape time
// (fapi_gateway_certificate_expiry_seconds, which the Helm chart's alert and dashboard use) and a
// cert.near_expiry event, at most once per certificate per day, when fewer than
// listener.tls.expiryWarningDays remain.
import type { X509Certificate } from 'node:crypto'
import { Gauge, type Registry } from 'prom-client'
import type { SecurityEvents } from '../observability/events.ts'
import type { Clock } from '../types.ts'
import type { TlsMaterial } from '../pipeline.ts'
import type { UpstreamClientCertificate } from '../forward/upstream-tls.ts'

const DAY_MS = 24 * 60 * 60 * 1000
const DEFAULT_CHECK_INTERVAL_MS = 60 * 60 * 1000
const MAX_NAME = 64

export interface WatchedCertificate {
  /** The metric label: server, server-chain:<CN>, client-ca:<CN>, client-intermediate:<CN>, upstream-client:<upstream>, upstream-client-chain:<upstream>:<CN>. */
  readonly label: string
  readonly role: 'server' | 'client_ca' | 'upstream_client'
  readonly cert: X509Certificate
}

function commonName(cert: X509Certificate): string {
  const lines = cert.subject.split('\n')
  const cn = lines.find((line) => line.startsWith('CN='))?.slice(3) ?? lines.join(', ')
  return cn.length > MAX_NAME ? cn.slice(0, MAX_NAME) : cn
}

/**
 * The server certificate and its chain, the client trust anchors and intermediates, the gateway's client certificate
 * for each upstream that requires one and its chain; labels made unique by serial.
 */
export function certificatesOf(tls: TlsMaterial, upstreamClients: readonly UpstreamClientCertificate[] = []): WatchedCertificate[] {
  const [server, ...serverChain] = tls.serverChain
  const listed: WatchedCertificate[] = [
    ...(server ? [{ label: 'server', role: 'server' as const, cert: server }] : []),
    ...serverChain.map((cert) => ({ label: `server-chain:${commonName(cert)}`, role: 'server' as const, cert })),
    ...tls.clientAnchors.map((cert) => ({ label: `client-ca:${commonName(cert)}`, role: 'client_ca' as const, cert })),
    ...tls.clientIntermediates.map((cert) => ({ label: `client-intermediate:${commonName(cert)}`, role: 'client_ca' as const, cert })),
    ...upstreamClients.flatMap(({ upstream, chain: [leaf, ...chain] }) => [
      ...(leaf ? [{ label: `upstream-client:${upstream}`, role: 'upstream_client' as const, cert: leaf }] : []),
      ...chain.map((cert) => ({ label: `upstream-client-chain:${upstream}:${commonName(cert)}`, role: 'upstream_client' as const, cert })),
    ]),
  ]
  const counts = new Map<string, number>()
  for (const { label } of listed) counts.set(label, (counts.get(label) ?? 0) + 1)
  // Two CAs with one name (an old and a new one during a rotation) are told apart by serial.
  return listed.map((entry) =>
    (counts.get(entry.label) ?? 0) > 1 ? { ...entry, label: `${entry.label}#${entry.cert.serialNumber.slice(0, 8).toLowerCase()}` } : entry,
  )
}

export interface CertificateExpiryOptions {
  readonly registry: Registry
  readonly certificates: () => readonly WatchedCertificate[]
  /** 0: no events. */
  readonly warningDays: () => number
  readonly now: Clock
  readonly events: Pick<SecurityEvents, 'emit'>
  readonly checkIntervalMs?: number
}

export interface CertificateExpiry {
  /** Emits cert.near_expiry for certificates close to expiry not yet reported today. */
  check(): void
  close(): void
}

export function createCertificateExpiry(options: CertificateExpiryOptions): CertificateExpiry {
  const { now, events } = options
  /** fingerprint → the day (since the epoch) it was last reported. */
  const reported = new Map<string, number>()

  new Gauge({
    name: 'fapi_gateway_certificate_expiry_seconds',
    help: 'Seconds until a certificate the gateway uses expires (negative once expired): the server certificate and its chain, each client CA and intermediate, the client certificate for each upstream.',
    labelNames: ['certificate'],
    registers: [options.registry],
    collect() {
      this.reset()
      const at = now()
      for (const { label, cert } of options.certificates()) this.set({ certificate: label }, Math.round((cert.validToDate.getTime() - at) / 1000))
    },
  })

  function check(): void {
    const warningDays = options.warningDays()
    if (warningDays <= 0) return
    const at = now()
    const today = Math.floor(at / DAY_MS)
    const current = options.certificates()
    for (const { label, role, cert } of current) {
      const notAfter = cert.validToDate.getTime()
      const remainingMs = notAfter - at
      if (remainingMs >= warningDays * DAY_MS || reported.get(cert.fingerprint256) === today) continue
      reported.set(cert.fingerprint256, today)
      const when = new Date(notAfter).toISOString()
      events.emit({
        event: 'cert.near_expiry',
        reason: remainingMs <= 0 ? 'cert.expired' : 'cert.expires_soon',
        certificate: {
          role,
          subject: cert.subject.split('\n').join(', '),
          issuer: cert.issuer.split('\n').join(', '),
          serialNumber: cert.serialNumber,
          notAfter,
        },
        detail: remainingMs <= 0 ? `${label} expired at ${when}` : `${label} expires in ${Math.floor(remainingMs / DAY_MS)} days, at ${when}`,
      })
    }
    const fingerprints = new Set(current.map(({ cert }) => cert.fingerprint256))
    for (const fingerprint of [...reported.keys()]) if (!fingerprints.has(fingerprint)) reported.delete(fingerprint)
  }

  const timer = setInterval(check, options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS)
  timer.unref()
  return { check, close: () => clearInterval(timer) }
}
