// Client certificates from a TLS-terminating load balancer (docs/revocation.md → "Load
// balancer mode"). The header counts only on connections from a configured trusted proxy;
// there the TLS-level certificate is ignored. The certificate is then judged like one from
// the gateway's own handshake: a path to a configured trust anchor with every signature,
// validity period and CA constraint checked (RFC 5280 §6.1, the parts OpenSSL applies to
// these chains), and the same key-strength and EKU checks as src/checks/client-cert.ts.
import { createHash, X509Certificate } from 'node:crypto'
import { BlockList, isIP } from 'node:net'
import { AsnConvert } from '@peculiar/asn1-schema'
import { BasicConstraints, Certificate, id_ce_basicConstraints } from '@peculiar/asn1-x509'
import { createLru } from '../util/lru.ts'
import type { PeerCertificateVerdict } from '../types.ts'
import { keyProblem, toClientCert, usageProblem } from '../x509.ts'

export interface ForwardedClientCertSettings {
  /** Lower-case header name, e.g. x-client-cert. */
  readonly headerName: string
  /** Addresses and CIDR ranges of the proxies allowed to send the header. */
  readonly trustedProxies: readonly string[]
  /** Self-signed trust anchors (listener.tls.clientCaFile). */
  readonly anchors: readonly X509Certificate[]
  /** Configured intermediates (listener.tls.clientIntermediatesFile). */
  readonly intermediates: readonly X509Certificate[]
  readonly minRsaBits: number
  readonly cacheSize?: number
}

export interface ForwardedClientCert {
  isTrustedProxy(address: string | undefined): boolean
  /** The verdict for a request from a trusted proxy; undefined for anyone else (the handshake counts). */
  verdictFor(remoteAddress: string | undefined, rawHeaders: readonly string[], nowMs: number): PeerCertificateVerdict | undefined
}

const MAX_CERTIFICATES = 10
const MAX_PATH = 10

// Extensions whose criticality this path check understands; any other critical one refuses
// the certificate, as OpenSSL would (name and policy constraints are not evaluated here).
const UNDERSTOOD_CRITICAL = new Set([
  '2.5.29.15', // keyUsage (checkIssued checks keyCertSign)
  '2.5.29.19', // basicConstraints
  '2.5.29.37', // extKeyUsage
  '2.5.29.17', // subjectAltName
  '2.5.29.32', // certificatePolicies (no explicit policy is required)
  '2.5.29.14', // subjectKeyIdentifier
  '2.5.29.35', // authorityKeyIdentifier
])

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g

/** PEM, URL-encoded PEM, RFC 9440 `:base64:` or bare base64 DER; the first certificate is the client's. */
export function parseForwardedCertificates(value: string): X509Certificate[] {
  let text = value.trim()
  if (text.length === 0) throw new Error('empty certificate header')
  if (/^:[A-Za-z0-9+/=]+:$/.test(text)) return [new X509Certificate(Buffer.from(text.slice(1, -1), 'base64'))]
  if (text.includes('%')) text = decodeURIComponent(text)
  const blocks = [...text.matchAll(PEM_BLOCK)].map((match) => match[1]!.replace(/\s+/g, ''))
  if (blocks.length === 0) {
    if (!/^[A-Za-z0-9+/=\s]+$/.test(text)) throw new Error('certificate header is neither PEM nor base64')
    blocks.push(text.replace(/\s+/g, ''))
  }
  if (blocks.length > MAX_CERTIFICATES) throw new Error(`more than ${MAX_CERTIFICATES} certificates in the header`)
  return blocks.map((block) => new X509Certificate(Buffer.from(block, 'base64')))
}

function extensionsOf(cert: X509Certificate) {
  return AsnConvert.parse(cert.raw, Certificate).tbsCertificate.extensions ?? []
}

function criticalProblem(cert: X509Certificate): string | undefined {
  const unknown = extensionsOf(cert).find((e) => e.critical && !UNDERSTOOD_CRITICAL.has(e.extnID))
  return unknown ? `unsupported critical extension ${unknown.extnID} in ${cert.subject.split('\n').join(', ')}` : undefined
}

function validityProblem(cert: X509Certificate, nowMs: number): string | undefined {
  if (nowMs < cert.validFromDate.getTime()) return `${cert.subject.split('\n').join(', ')} is not yet valid`
  if (nowMs > cert.validToDate.getTime()) return `${cert.subject.split('\n').join(', ')} has expired`
  return undefined
}

/** RFC 5280 §4.2.1.9: a CA, whose path length allows `below` intermediates under it. */
function issuerProblem(issuer: X509Certificate, below: number, nowMs: number): string | undefined {
  if (!issuer.ca) return `${issuer.subject.split('\n').join(', ')} is not a CA`
  const constraints = extensionsOf(issuer).find((e) => e.extnID === id_ce_basicConstraints)
  const pathLength = constraints ? AsnConvert.parse(constraints.extnValue.buffer, BasicConstraints).pathLenConstraint : undefined
  if (pathLength !== undefined && below > pathLength) return `path length constraint of ${issuer.subject.split('\n').join(', ')} exceeded`
  return validityProblem(issuer, nowMs) ?? criticalProblem(issuer)
}

interface Trust {
  readonly anchors: readonly X509Certificate[]
  readonly intermediates: readonly X509Certificate[]
}

/** Leaf, intermediates, anchor; or the reason no trusted path exists. */
export function verifyForwardedChain(certs: readonly X509Certificate[], trust: Trust, nowMs: number, minRsaBits: number): PeerCertificateVerdict {
  const [leaf, ...sent] = certs
  if (!leaf) return { kind: 'absent' }
  const leafProblem = validityProblem(leaf, nowMs) ?? keyProblem(leaf, minRsaBits) ?? usageProblem(leaf) ?? criticalProblem(leaf)
  if (leafProblem) return { kind: 'invalid', reason: `forwarded certificate: ${leafProblem}` }
  const isAnchor = (cert: X509Certificate) => trust.anchors.some((anchor) => anchor.raw.equals(cert.raw))
  const candidates = [...trust.anchors, ...trust.intermediates, ...sent]
  const path = [leaf]
  let current = leaf
  let lastProblem = 'no issuer among the trust anchors and intermediates'
  while (path.length < MAX_PATH) {
    let issuer: X509Certificate | undefined
    for (const candidate of candidates) {
      if (path.some((c) => c.raw.equals(candidate.raw))) continue
      if (!current.checkIssued(candidate) || !current.verify(candidate.publicKey)) continue
      const problem = issuerProblem(candidate, path.length - 1, nowMs)
      if (problem) {
        lastProblem = problem
        continue
      }
      issuer = candidate
      break
    }
    if (!issuer) return { kind: 'invalid', reason: `forwarded certificate chain: ${lastProblem} (at ${current.subject.split('\n').join(', ')})` }
    path.push(issuer)
    if (isAnchor(issuer)) return { kind: 'valid', cert: toClientCert(leaf, path.slice(1)) }
    current = issuer
  }
  return { kind: 'invalid', reason: 'forwarded certificate chain: too long' }
}

function normaliseAddress(address: string): { address: string; family: 'ipv4' | 'ipv6' } | undefined {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address)
  const plain = mapped ? mapped[1]! : address
  const version = isIP(plain)
  return version === 0 ? undefined : { address: plain, family: version === 4 ? 'ipv4' : 'ipv6' }
}

export function parseTrustedProxies(entries: readonly string[]): BlockList {
  const list = new BlockList()
  for (const entry of entries) {
    const [address, prefix, extra] = entry.split('/')
    const normalised = normaliseAddress(address ?? '')
    if (!normalised || extra !== undefined) throw new Error(`${entry}: not an IP address or CIDR range`)
    if (prefix === undefined) list.addAddress(normalised.address, normalised.family)
    else {
      const bits = Number(prefix)
      if (!/^\d{1,3}$/.test(prefix) || bits > (normalised.family === 'ipv4' ? 32 : 128)) throw new Error(`${entry}: bad prefix length`)
      list.addSubnet(normalised.address, bits, normalised.family)
    }
  }
  return list
}

export function createForwardedClientCert(settings: ForwardedClientCertSettings): ForwardedClientCert {
  const trusted = parseTrustedProxies(settings.trustedProxies)
  const headerName = settings.headerName.toLowerCase()
  const trust: Trust = { anchors: settings.anchors, intermediates: settings.intermediates }
  // Valid verdicts by header value, until the earliest expiry on their path.
  const verdicts = createLru<string, { verdict: PeerCertificateVerdict; until: number }>(settings.cacheSize ?? 1_000)

  function isTrustedProxy(address: string | undefined): boolean {
    const normalised = address ? normaliseAddress(address) : undefined
    return normalised !== undefined && trusted.check(normalised.address, normalised.family)
  }

  function judge(value: string, nowMs: number): PeerCertificateVerdict {
    const key = createHash('sha256').update(value).digest('base64url')
    const cached = verdicts.get(key)
    if (cached && nowMs <= cached.until) return cached.verdict
    let certs: X509Certificate[]
    try {
      certs = parseForwardedCertificates(value)
    } catch (error) {
      return { kind: 'invalid', reason: `forwarded certificate header: ${(error as Error).message}` }
    }
    const verdict = verifyForwardedChain(certs, trust, nowMs, settings.minRsaBits)
    if (verdict.kind === 'valid') {
      const until = Math.min(...verdict.cert.chainDer.map((der) => new X509Certificate(der).validToDate.getTime()))
      verdicts.set(key, { verdict, until })
    }
    return verdict
  }

  return {
    isTrustedProxy,
    verdictFor(remoteAddress, rawHeaders, nowMs) {
      if (!isTrustedProxy(remoteAddress)) return undefined
      const values: string[] = []
      for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
        if (rawHeaders[i]!.toLowerCase() === headerName) values.push(rawHeaders[i + 1]!)
      }
      if (values.length === 0) return { kind: 'absent' }
      if (values.length > 1) return { kind: 'invalid', reason: `more than one ${headerName} header` }
      try {
        return judge(values[0]!, nowMs)
      } catch (error) {
        return { kind: 'invalid', reason: `forwarded certificate: ${(error as Error).message}` }
      }
    },
  }
}
