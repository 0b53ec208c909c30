// Partner client authentication at the façade's endpoints (FAPI 2.0 SP §5.3.2.1-6): private_key_jwt
// (RFC 7523, OIDC Core §9), tls_client_auth and self_signed_tls_client_auth (RFC 8705 §2).
// client_secret_* and unauthenticated requests are refused with invalid_client.
import type { X509Certificate } from 'node:crypto'
import type { Clock, Logger, PeerCertificateVerdict } from '../../types.ts'
import type { ReplayStore } from '../../replay/store.ts'
import { OAuthError, oauthRefuse, type OAuthErrorCode } from '../errors.ts'
import type { Partner, PartnerRegistry } from '../partners.ts'
import { createPartnerCertificateSets } from './partner-certificates.ts'
import { createPartnerKeySets } from './partner-keys.ts'
import { assertionClientId, checkAssertionClaims, claimAssertionJti, JWT_BEARER_ASSERTION_TYPE, verifyAssertionSignature } from './private-key-jwt.ts'
import { authenticateSelfSignedTlsClient } from './self-signed-tls-client-auth.ts'
import { authenticateTlsClient } from './tls-client-auth.ts'

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
  /** CA bundle for partners' jwksUri servers; the system roots when absent. */
  readonly partnerJwksCaPem?: string
  /** Least time between two fetches of one partner's jwksUri caused by an unknown key or certificate. Default 30. */
  readonly partnerJwksCooldownSeconds?: number
  /** A partner's fetched key set is fetched again once this old. Default 600. */
  readonly partnerJwksMaxAgeSeconds?: number
}

export interface ClientAuthenticatorDeps {
  readonly partners: PartnerRegistry
  /** Assertion jti single use, shared by replicas (claim(key, ttlMs)). */
  readonly store: ReplayStore
  /** For the jwksUri caches and cool-downs. Default Date.now. */
  readonly now?: Clock
  readonly logger?: Logger
}

export interface ClientAuthenticator {
  /** Throws OAuthError (AS_CLIENT_*) on every failure; AS_STORE_UNAVAILABLE when the jti cannot be claimed. */
  authenticate(input: ClientAuthenticationInput): Promise<AuthenticatedClient>
  close(): void
}

/** The rule of the refusal of an `Authorization: Basic` header: answer it with `WWW-Authenticate: Basic` (RFC 6749 §5.2). */
export const BASIC_CREDENTIALS_RULE = 'basic'

/** Whether the refusal answers client_secret_basic, so the 401 must carry `WWW-Authenticate: Basic`. */
export function needsBasicChallenge(error: OAuthError): boolean {
  return error.code === 'AS_CLIENT_AUTH_METHOD' && error.rule === BASIC_CREDENTIALS_RULE
}

/** Detail labels with an underscore (client_id: …) are not read as rules by OAuthError, so they are named here. */
function refuseParameter(code: OAuthErrorCode, parameter: string, problem: string): never {
  throw new OAuthError(code, { detail: `${parameter}: ${problem}`, rule: parameter })
}

function knownPartner(partners: PartnerRegistry, clientId: string): Partner {
  return partners.get(clientId) ?? oauthRefuse('AS_CLIENT_UNKNOWN', 'client: not registered')
}

function requireMethod(partner: Partner, method: ClientAuthenticationMethod): void {
  const registered = partner.config.authentication.method
  if (registered !== method) oauthRefuse('AS_CLIENT_AUTH_METHOD', `method: registered for ${registered}, used ${method}`)
}

export function createClientAuthenticator(settings: ClientAuthenticatorSettings, deps: ClientAuthenticatorDeps): ClientAuthenticator {
  const now = deps.now ?? Date.now
  const jwksOptions = {
    now,
    caPem: settings.partnerJwksCaPem,
    cooldownMs: (settings.partnerJwksCooldownSeconds ?? 30) * 1000,
    maxAgeMs: (settings.partnerJwksMaxAgeSeconds ?? 600) * 1000,
    logger: deps.logger,
  }
  const keySets = createPartnerKeySets(jwksOptions)
  const certificateSets = createPartnerCertificateSets(jwksOptions)

  async function privateKeyJwt(input: ClientAuthenticationInput): Promise<AuthenticatedClient> {
    const assertionType = input.params.get('client_assertion_type')
    const assertion = input.params.get('client_assertion')
    if (assertionType === undefined) refuseParameter('AS_REQUEST_MALFORMED', 'client_assertion_type', 'missing')
    if (assertion === undefined || assertion === '') refuseParameter('AS_REQUEST_MALFORMED', 'client_assertion', 'missing')
    if (assertionType !== JWT_BEARER_ASSERTION_TYPE) refuseParameter('AS_CLIENT_ASSERTION_INVALID', 'client_assertion_type', 'not jwt-bearer')
    const { clientId, claims } = assertionClientId(assertion)
    const formClientId = input.params.get('client_id')
    if (formClientId !== undefined && formClientId !== clientId) refuseParameter('AS_CLIENT_ASSERTION_INVALID', 'client_id', 'differs from the assertion sub')
    const partner = knownPartner(deps.partners, clientId)
    requireMethod(partner, 'private_key_jwt')
    const registration = partner.config.authentication as { jwks?: object; jwksUri?: string }
    await verifyAssertionSignature(assertion, keySets.resolverFor(registration))
    const rememberSeconds = checkAssertionClaims(claims, settings, input.nowMs)
    await claimAssertionJti(deps.store, clientId, claims.jti!, rememberSeconds)
    return { partner, method: 'private_key_jwt' }
  }

  async function selfSignedTlsClientAuth(partner: Partner, input: ClientAuthenticationInput): Promise<void> {
    const registration = partner.config.authentication as { jwks?: object; jwksUri?: string }
    const thumbprintsOf = async (fresh: boolean) => {
      try {
        return await certificateSets.thumbprints(registration, fresh)
      } catch (error) {
        return oauthRefuse('AS_CLIENT_CERTIFICATE_INVALID', "x5c: the partner's jwksUri cannot be fetched", error)
      }
    }
    try {
      authenticateSelfSignedTlsClient(input.peerCertificate, await thumbprintsOf(false), input.nowMs)
    } catch (error) {
      // A certificate rolled over at the partner's jwksUri: look once more (rate limited by the cool-down).
      if (!(error instanceof OAuthError) || error.rule !== 'x5c' || registration.jwksUri === undefined) throw error
      authenticateSelfSignedTlsClient(input.peerCertificate, await thumbprintsOf(true), input.nowMs)
    }
  }

  return {
    async authenticate(input) {
      if (input.authorization !== undefined) {
        if (/^basic(\s|$)/i.test(input.authorization.trimStart()))
          oauthRefuse('AS_CLIENT_AUTH_METHOD', `${BASIC_CREDENTIALS_RULE}: client_secret_basic is not accepted`)
        oauthRefuse('AS_CLIENT_AUTH_METHOD', 'authorization: client authentication by header is not accepted')
      }
      if (input.params.has('client_secret')) refuseParameter('AS_CLIENT_AUTH_METHOD', 'client_secret', 'client_secret_post is not accepted')
      if (input.params.has('client_assertion') || input.params.has('client_assertion_type')) return privateKeyJwt(input)
      const clientId = input.params.get('client_id')
      if (clientId === undefined) refuseParameter('AS_CLIENT_AUTH_MISSING', 'client_id', 'missing, and no client assertion')
      const partner = knownPartner(deps.partners, clientId)
      const method = partner.config.authentication.method
      if (method === 'private_key_jwt') refuseParameter('AS_CLIENT_AUTH_MISSING', 'client_assertion', 'missing')
      if (method === 'tls_client_auth') authenticateTlsClient(input.peer, partner.config.authentication)
      else await selfSignedTlsClientAuth(partner, input)
      return { partner, method }
    },
    close() {
      void keySets.close().catch(() => undefined)
      void certificateSets.close().catch(() => undefined)
    },
  }
}
