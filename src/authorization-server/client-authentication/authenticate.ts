// Partner client authentication at the façade's endpoints (FAPI 2.0 SP §5.3.2.1-6): private_key_jwt
// (RFC 7523, OIDC Core §9), tls_client_auth and self_signed_tls_client_auth (RFC 8705 §2).
// client_secret_* and unauthenticated requests are refused with invalid_client.
import type { X509Certificate } from 'node:crypto'
import type { PeerCertificateVerdict } from '../../types.ts'
import type { ReplayStore } from '../../replay/store.ts'
import type { Partner, PartnerRegistry } from '../partners.ts'

export type ClientAuthenticationMethod = 'private_key_jwt' | 'tls_client_auth' | 'self_signed_tls_client_auth'

export interface ClientAuthenticationInput {
  /** The form parameters, each present at most once (duplicates were refused before). */
  readonly params: ReadonlyMap<string, string>
  /** The Authorization header, if sent (a partner trying client_secret_basic). */
  readonly authorization: string | undefined
  /** The listener's verdict on the connection's certificate (chain to the configured client CAs). */
  readonly peer: PeerCertificateVerdict
  /** The connection's leaf certificate whatever its chain, for self_signed_tls_client_auth. */
  readonly peerCertificate: X509Certificate | undefined
  readonly nowMs: number
}

export interface AuthenticatedClient {
  readonly partner: Partner
  readonly method: ClientAuthenticationMethod
}

export interface ClientAuthenticatorSettings {
  /** The façade's issuer: the one accepted `aud` of a client assertion (FAPI 2.0 SP §5.3.2.1-8). */
  readonly issuer: string
  readonly clockToleranceSeconds: number
  readonly maxLifetimeSeconds: number
}

export interface ClientAuthenticatorDeps {
  readonly partners: PartnerRegistry
  /** Assertion jti single use, shared by replicas (claim(key, ttlMs)). */
  readonly store: ReplayStore
}

export interface ClientAuthenticator {
  /** Throws OAuthError (AS_CLIENT_*) on every failure; AS_STORE_UNAVAILABLE when the jti cannot be claimed. */
  authenticate(input: ClientAuthenticationInput): Promise<AuthenticatedClient>
  close(): void
}
