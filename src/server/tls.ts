// The partner-facing TLS surface: FAPI 2.0 SP §5.2.1/§5.2.2 with RFC 9325 (BCP 195),
// and the client-certificate request of RFC 8705 §3.
import { constants } from 'node:crypto'
import type { ServerOptions } from 'node:https'
import { isSelfSigned, parsePemCertificates } from '../x509.ts'

export type ClientCertificateMode = 'require' | 'request' | 'off'

export interface TlsSettings {
  /** Server certificate followed by its intermediates. */
  readonly certPem: string
  readonly keyPem: string
  /** Self-signed trust anchors for client certificates; needed unless clientCertificate is 'off'. */
  readonly clientCaPem: string | undefined
  /** Intermediates usable to build client chains; never trust anchors themselves. */
  readonly clientIntermediatesPem?: string
  /**
   * 'require': a missing or untrusted certificate ends the handshake.
   * 'request': asked for, judged per request by checkClientCert (RFC 8705 §3, FAPI R44).
   * 'off': not asked for (DPoP-only deployments, FAPI R54).
   */
  readonly clientCertificate: ClientCertificateMode
  readonly minVersion?: 'TLSv1.2' | 'TLSv1.3'
}

/** IANA Recommended=Y TLS 1.2 suites with certificates: ECDHE with an AEAD (FAPI 2.0 SP §5.2.2-1, RFC 9325 §4.2). */
export const FAPI_TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':')

/** TLS 1.3 suites (RFC 8446 §9.1). */
export const FAPI_TLS13_CIPHERSUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'].join(':')

// OpenSSL security level 2: no RSA/DH keys below 2048 bits anywhere, whatever OpenSSL's default.
const SECURITY_LEVEL = '@SECLEVEL=2'

export function createTlsOptions(settings: TlsSettings): ServerOptions {
  const base: ServerOptions = {
    cert: settings.certPem,
    key: settings.keyPem,
    // RFC 8996, RFC 9325 §3.1.1: TLS 1.2 and 1.3 only.
    minVersion: settings.minVersion ?? 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    ciphers: `${FAPI_TLS13_CIPHERSUITES}:${FAPI_TLS12_CIPHERS}:${SECURITY_LEVEL}`,
    honorCipherOrder: true,
    ecdhCurve: 'X25519:P-256:P-384',
    // RFC 8705 makes no use of renegotiation; the certificate is asked for in the initial handshake.
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
  }
  if (settings.clientCertificate === 'off') return { ...base, requestCert: false, rejectUnauthorized: false }
  return {
    ...base,
    requestCert: true,
    rejectUnauthorized: settings.clientCertificate === 'require',
    ca: clientTrustStore(settings),
  }
}

/** A client CA bundle that cannot serve as one: `bundle` says which of the two files. */
export class TrustStoreError extends Error {
  readonly bundle: 'anchors' | 'intermediates'
  constructor(bundle: 'anchors' | 'intermediates', message: string) {
    super(message)
    this.name = 'TrustStoreError'
    this.bundle = bundle
  }
}

/** Node prints a distinguished name one attribute a line. */
function oneLine(name: string): string {
  return name.split('\n').join(', ')
}

/**
 * OpenSSL is used without X509_V_FLAG_PARTIAL_CHAIN, so a chain is trusted only when it
 * ends at a self-signed certificate in the store: intermediates placed next to the
 * anchors help build chains but cannot end one. Without an explicit store Node would
 * trust its public web roots, so one is required (RFC 8705 §7.4).
 */
function clientTrustStore(settings: TlsSettings): string[] {
  const anchors = parsePemCertificates(settings.clientCaPem ?? '')
  if (anchors.length === 0)
    throw new TrustStoreError(
      'anchors',
      `has no CA certificate, and client certificates are ${settings.clientCertificate === 'require' ? 'required' : 'requested'}`,
    )
  for (const anchor of anchors) {
    if (!anchor.ca || !isSelfSigned(anchor))
      throw new TrustStoreError(
        'anchors',
        `"${oneLine(anchor.subject)}" is not a self-signed CA certificate; intermediates go in listener.tls.clientIntermediatesFile`,
      )
  }
  const intermediates = parsePemCertificates(settings.clientIntermediatesPem ?? '')
  for (const intermediate of intermediates) {
    if (!intermediate.ca) throw new TrustStoreError('intermediates', `"${oneLine(intermediate.subject)}" is not a CA certificate`)
  }
  return [...anchors, ...intermediates].map((cert) => cert.toString())
}
