// TLS handshake probes with node:tls (OpenSSL 3 inside Node): what the server negotiates
// when the client offers one protocol version or one cipher suite (FAPI 2.0 SP §5.2.1-2,
// §5.2.2-1; RFC 9325). The server certificate is not judged here, only the negotiation.
import { connect, type ConnectionOptions, type SecureVersion } from 'node:tls'
import { classifyFailure, serverName, type TlsIdentity, type TransportFailure } from './http.ts'

export interface ProbeEndpoint {
  readonly host: string
  readonly port: number
  /** SNI; the host when it is a name. */
  readonly servername: string | undefined
  readonly timeoutMs: number
}

export interface TlsOffer {
  readonly minVersion: SecureVersion
  readonly maxVersion: SecureVersion
  /** OpenSSL cipher string for TLS 1.2 and below; Node's default when undefined. */
  readonly ciphers?: string
  readonly identity?: TlsIdentity
}

export type ProbeOutcome =
  | { readonly kind: 'connected'; readonly protocol: string; readonly cipher: string }
  | TransportFailure
  /** This client cannot make the offer at all (its OpenSSL lacks the suite or version). */
  | { readonly kind: 'unavailable'; readonly message: string }

// Errors OpenSSL raises on the client before anything reaches the server.
const CLIENT_SIDE = new Set(['ERR_SSL_NO_PROTOCOLS_AVAILABLE', 'ERR_SSL_NO_CIPHERS_AVAILABLE', 'ERR_SSL_NO_CIPHER_MATCH'])

export function describeOffer(offer: TlsOffer, endpoint: ProbeEndpoint): string {
  const versions = offer.minVersion === offer.maxVersion ? `${offer.minVersion} only` : `${offer.minVersion} to ${offer.maxVersion}`
  const ciphers = offer.ciphers ? `, cipher suites ${offer.ciphers}` : ", the client's default cipher suites"
  return `ClientHello to ${endpoint.host}:${endpoint.port} offering ${versions}${ciphers}${endpoint.servername ? `, SNI ${endpoint.servername}` : ''}`
}

export function probeTls(endpoint: ProbeEndpoint, offer: TlsOffer): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    let settled = false
    const settle = (outcome: ProbeOutcome) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      // A completed handshake is closed cleanly (Finished flushed, then FIN), so the server does not log a reset.
      if (outcome.kind === 'connected') socket?.destroySoon()
      else socket?.destroy()
      resolve(outcome)
    }
    const options: ConnectionOptions = {
      host: endpoint.host,
      port: endpoint.port,
      servername: serverName(endpoint.host, endpoint.servername),
      minVersion: offer.minVersion,
      maxVersion: offer.maxVersion,
      rejectUnauthorized: false,
      ...(offer.ciphers !== undefined && { ciphers: offer.ciphers }),
      ...(offer.identity && { cert: offer.identity.certPem, key: offer.identity.keyPem }),
    }
    let socket: ReturnType<typeof connect> | undefined
    const timer = setTimeout(
      () => settle({ kind: 'failure', code: 'ETIMEDOUT', alert: undefined, reset: false, message: `no handshake within ${endpoint.timeoutMs} ms` }),
      endpoint.timeoutMs,
    )
    try {
      socket = connect(options)
    } catch (error) {
      settle({ kind: 'unavailable', message: (error as Error).message })
      return
    }
    socket.once('secureConnect', () => {
      const cipher = socket!.getCipher()
      settle({ kind: 'connected', protocol: socket!.getProtocol() ?? 'unknown', cipher: cipher.name })
    })
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== undefined && CLIENT_SIDE.has(error.code) && !/SSL alert number/.test(error.message)) {
        settle({ kind: 'unavailable', message: error.message.split('\n')[0]! })
      } else settle(classifyFailure(error))
    })
  })
}
