// An upstream's TLS files: the trust anchors for its server certificate and the gateway's own
// client certificate and key (mTLS to the upstream). Read at start-up and on every reload; a
// certificate that does not parse or a key that does not match it is a ConfigError naming the key.
import type { X509Certificate } from 'node:crypto'
import { createSecureContext } from 'node:tls'
import { parsePemCertificates } from '../x509.ts'
import { ConfigError, type LoadedConfig } from '../config/load.ts'
import type { UpstreamConfig } from '../config/schema.ts'
import type { UpstreamSettings } from './forward.ts'
import { opensslInWords } from '../util/openssl-words.ts'

export interface UpstreamClientCertificate {
  readonly upstream: string
  /** The client certificate followed by its intermediates. */
  readonly chain: readonly X509Certificate[]
}

export interface UpstreamTls {
  readonly settings: Readonly<Record<string, UpstreamSettings>>
  readonly clientCertificates: readonly UpstreamClientCertificate[]
}

function clientChain(loaded: LoadedConfig, name: string, certPem: string, keyPem: string, certFile: string): X509Certificate[] {
  const key = `upstreams.${name}.certFile`
  let chain: X509Certificate[]
  try {
    chain = parsePemCertificates(certPem)
  } catch (error) {
    throw new ConfigError([`${loaded.file}: ${key}: not a PEM certificate bundle (${(error as Error).message})`])
  }
  if (chain.length === 0) throw new ConfigError([`${loaded.file}: ${key}: no certificate in ${certFile}`])
  try {
    // What a connection to the upstream would do with them: a key that does not match fails here.
    createSecureContext({ cert: certPem, key: keyPem })
  } catch (error) {
    throw new ConfigError([`${loaded.file}: upstreams.${name}.certFile, keyFile: ${opensslInWords(error)}`])
  }
  return chain
}

function upstreamSettings(loaded: LoadedConfig, name: string, upstream: UpstreamConfig): { settings: UpstreamSettings; chain?: X509Certificate[] } {
  const { caFile, certFile, keyFile, ...rest } = upstream
  const caPem = caFile ? loaded.readFile(caFile) : undefined
  if (certFile === undefined || keyFile === undefined) return { settings: { ...rest, caPem } }
  const clientCertPem = loaded.readFile(certFile)
  const clientKeyPem = loaded.readFile(keyFile)
  return { settings: { ...rest, caPem, clientCertPem, clientKeyPem }, chain: clientChain(loaded, name, clientCertPem, clientKeyPem, certFile) }
}

export function readUpstreamTls(loaded: LoadedConfig): UpstreamTls {
  const settings: Record<string, UpstreamSettings> = {}
  const clientCertificates: UpstreamClientCertificate[] = []
  for (const [name, upstream] of Object.entries(loaded.config.upstreams)) {
    const read = upstreamSettings(loaded, name, upstream)
    settings[name] = read.settings
    if (read.chain) clientCertificates.push({ upstream: name, chain: read.chain })
  }
  return { settings, clientCertificates }
}
