// The façade's token endpoint: the partner authenticates to the gateway, the token is made
// sender-constrained, the legacy server issues it to the gateway's legacy client, and the
// gateway records what it is bound to before the partner sees it (issue 13; FAPI 2.0 SP §5.3.2.1).
import type { X509Certificate } from 'node:crypto'
import type { BindingRecord, BindingRegistry } from '../tokens/binding-registry.ts'
// The resource side's own hash of a presented token: a record is found only under exactly that key.
import { hashToken } from '../checks/credentials.ts'
import type { PeerCertificateVerdict } from '../types.ts'
import type { ClientAuthenticator } from './client-authentication/authenticate.ts'
import { OAuthError, oauthRefuse } from './errors.ts'
import { legacyCodeRedemption, redeemGatewayCode, type CodeExchangeDeps } from './front-channel/code-exchange.ts'
import { readLegacyTokens, type LegacyTokens } from './legacy-answer.ts'
import type { LegacyClient } from './legacy-client.ts'
import type { Partner } from './partners.ts'
import { senderConstraintOf, type SenderConstraint } from './sender-constraint.ts'
import { checkTokenRequestProof, type TokenProofDeps } from './token-proof.ts'

export const SUPPORTED_GRANT_TYPES = new Set(['authorization_code', 'refresh_token', 'client_credentials'])

/** The parameters each grant passes on to the legacy server; client authentication never does. */
const LEGACY_PARAMETERS: Readonly<Record<string, readonly string[]>> = {
  client_credentials: ['scope', 'resource'],
  refresh_token: ['refresh_token', 'scope', 'resource'],
  authorization_code: ['code', 'redirect_uri', 'code_verifier', 'resource'],
}

export interface TokenRequest {
  readonly params: ReadonlyMap<string, string>
  readonly authorization: string | undefined
  readonly proofHeaders: readonly string[]
  readonly peer: PeerCertificateVerdict
  readonly peerCertificate: X509Certificate | undefined
  readonly nowMs: number
}

export interface TokenEndpointSettings {
  /** The token endpoint's public URL: the `htu` of its proofs. */
  readonly url: string
  /** The issuers[] entry the resource side accepts these tokens under. */
  readonly resourceIssuer: string
  readonly accessTokenMaxLifetimeSeconds: number
  readonly refreshTokenLifetimeSeconds: number
  readonly openid: boolean
}

export interface TokenEndpointDeps {
  readonly authenticator: ClientAuthenticator
  readonly legacy: LegacyClient
  readonly bindings: BindingRegistry
  readonly proofs: TokenProofDeps
  /**
   * Set when the authorization-code front channel is on (legacy.authorizationEndpoint): an authorization code is
   * then one the gateway issued at its callback, checked and exchanged for the legacy server's; unset, it is passed on.
   */
  readonly frontChannel?: CodeExchangeDeps
}

/** What became known while answering, for the metrics, the event and the access log. */
export interface TokenRequestFacts {
  clientId?: string
  grantType?: string
  keyThumbprint?: string
  certThumbprint?: string
}

export interface TokenAnswer {
  readonly body: Record<string, unknown>
}

/** The scope asked of the legacy server: only scopes registered for the partner; all of them for client_credentials without one. */
function scopeToRequest(partner: Partner, grantType: string, requested: string | undefined): string | undefined {
  if (requested === undefined) return grantType === 'client_credentials' && partner.scopes.size > 0 ? [...partner.scopes].join(' ') : undefined
  const scopes = requested.split(' ').filter(Boolean)
  const refused = scopes.filter((scope) => !partner.scopes.has(scope))
  if (refused.length > 0) oauthRefuse('AS_SCOPE_NOT_ALLOWED', `scope: ${refused.length} scope(s) not registered for the client`)
  return scopes.join(' ')
}

/** RFC 9449 §5 / FAPI 2.0 SP §5.3.2.1-9: a refresh token works only for the client it was issued to. */
async function checkRefreshToken(partner: Partner, refreshToken: string | undefined, bindings: BindingRegistry): Promise<void> {
  if (refreshToken === undefined) oauthRefuse('AS_REQUEST_MALFORMED', 'refresh_token: missing')
  let record: BindingRecord | undefined
  try {
    record = await bindings.lookup(hashToken(refreshToken))
  } catch (error) {
    throw new OAuthError('AS_STORE_UNAVAILABLE', { detail: 'bindings: refresh token lookup failed', cause: error })
  }
  if (record === undefined || record.kind !== 'refresh_token') oauthRefuse('AS_GRANT_INVALID', 'refresh_token: not issued through the gateway')
  if (record.clientId !== partner.clientId) oauthRefuse('AS_GRANT_INVALID', 'refresh_token: issued to another client')
}

function grantedScope(partner: Partner, tokens: LegacyTokens, requested: string | undefined): string {
  // The resource side never grants more than the partner is registered for, whatever the legacy server says.
  const granted = (tokens.scope ?? requested ?? '').split(' ').filter(Boolean)
  return granted.filter((scope) => partner.scopes.has(scope)).join(' ')
}

function bindingRecords(
  partner: Partner,
  constraint: SenderConstraint,
  tokens: LegacyTokens,
  scope: string,
  settings: TokenEndpointSettings,
  nowMs: number,
): { access: BindingRecord; accessTtlMs: number; refresh: BindingRecord | undefined; refreshTtlMs: number } {
  const now = Math.floor(nowMs / 1000)
  const lifetime = Math.min(tokens.expiresIn ?? settings.accessTokenMaxLifetimeSeconds, settings.accessTokenMaxLifetimeSeconds)
  const common = {
    issuerName: settings.resourceIssuer,
    clientId: partner.clientId,
    legacyClientId: partner.legacy.clientId,
    scope,
    sub: tokens.sub,
    issuedAt: now,
  }
  const binding = constraint.kind === 'dpop' ? { jkt: constraint.jkt } : { x5t: constraint.x5t }
  const refreshLifetime = Math.min(tokens.refreshExpiresIn ?? settings.refreshTokenLifetimeSeconds, settings.refreshTokenLifetimeSeconds)
  return {
    access: { kind: 'access_token', ...common, ...binding, expiresAt: now + lifetime },
    accessTtlMs: lifetime * 1000,
    refresh: tokens.refreshToken === undefined ? undefined : { kind: 'refresh_token', ...common, expiresAt: now + refreshLifetime },
    refreshTtlMs: refreshLifetime * 1000,
  }
}

export async function answerTokenRequest(
  request: TokenRequest,
  settings: TokenEndpointSettings,
  deps: TokenEndpointDeps,
  facts: TokenRequestFacts,
): Promise<TokenAnswer> {
  const { params } = request
  const { partner, method } = await deps.authenticator.authenticate({
    params,
    authorization: request.authorization,
    peer: request.peer,
    peerCertificate: request.peerCertificate,
    nowMs: request.nowMs,
  })
  facts.clientId = partner.clientId

  const grantType = params.get('grant_type')
  if (grantType === undefined) oauthRefuse('AS_REQUEST_MALFORMED', 'grant_type: missing')
  facts.grantType = SUPPORTED_GRANT_TYPES.has(grantType) ? grantType : 'other'
  if (!SUPPORTED_GRANT_TYPES.has(grantType)) oauthRefuse('AS_GRANT_TYPE_UNSUPPORTED', `grant_type: ${grantType.slice(0, 40)}`)
  if (!partner.grantTypes.has(grantType)) oauthRefuse('AS_GRANT_TYPE_NOT_ALLOWED', `grant_type: ${grantType} not registered for the client`)

  const proof = await checkTokenRequestProof({ method: 'POST', url: settings.url, proofHeaders: request.proofHeaders, nowMs: request.nowMs }, deps.proofs)
  const constraint = senderConstraintOf(proof, request.peer, request.peerCertificate, method)
  if (constraint.kind === 'dpop') facts.keyThumbprint = constraint.jkt
  else facts.certThumbprint = constraint.x5t

  let requestedScope = scopeToRequest(partner, grantType, params.get('scope'))
  if (grantType === 'refresh_token') await checkRefreshToken(partner, params.get('refresh_token'), deps.bindings)

  let legacyParams = new URLSearchParams({ grant_type: grantType })
  let gatewayCode: string | undefined
  if (grantType === 'authorization_code' && deps.frontChannel) {
    const fallbackRevocationTtlMs = Math.max(settings.accessTokenMaxLifetimeSeconds, settings.refreshTokenLifetimeSeconds) * 1000
    const redeemed = await redeemGatewayCode({ params, partner, constraint, nowMs: request.nowMs }, deps.frontChannel, deps.bindings, fallbackRevocationTtlMs)
    gatewayCode = redeemed.code
    requestedScope ??= redeemed.issued.scope
    legacyParams = legacyCodeRedemption(redeemed.issued, deps.frontChannel)
  } else {
    for (const name of LEGACY_PARAMETERS[grantType]!) {
      const value = name === 'scope' ? requestedScope : params.get(name)
      if (value !== undefined) legacyParams.set(name, value)
    }
  }
  const tokens = readLegacyTokens(await deps.legacy.token(legacyParams, partner.legacy), request.nowMs)

  const scope = grantedScope(partner, tokens, requestedScope)
  const records = bindingRecords(partner, constraint, tokens, scope, settings, request.nowMs)
  let reusedMeanwhile = false
  const issuedHashes = [hashToken(tokens.accessToken), ...(tokens.refreshToken === undefined ? [] : [hashToken(tokens.refreshToken)])]
  try {
    await deps.bindings.record(issuedHashes[0]!, records.access, records.accessTtlMs)
    if (records.refresh) await deps.bindings.record(issuedHashes[1]!, records.refresh, records.refreshTtlMs)
    // RFC 6749 §4.1.2: a reuse of the code ends these tokens; without this memory it could not, so they are not handed out.
    if (gatewayCode !== undefined && deps.frontChannel) {
      const rememberMs = Math.max(records.accessTtlMs, records.refresh ? records.refreshTtlMs : 0)
      await deps.frontChannel.state.rememberIssued(gatewayCode, issuedHashes, rememberMs)
      reusedMeanwhile = await deps.frontChannel.state.wasReused(gatewayCode)
      if (reusedMeanwhile) {
        for (const hash of issuedHashes) await deps.frontChannel.revokedTokens.revoke(hash, rememberMs)
        for (const hash of issuedHashes) await deps.bindings.remove(hash)
      }
    }
  } catch (error) {
    // Without its record the token is refused everywhere behind the gateway: unusable, so not handed out.
    throw new OAuthError('AS_STORE_UNAVAILABLE', { detail: 'bindings: the token could not be recorded', cause: error })
  }

  // RFC 6749 §4.1.2: the code was presented again while this redemption was at the legacy server; both end here.
  if (reusedMeanwhile) oauthRefuse('AS_GRANT_INVALID', 'code_reuse: redeemed again while its first redemption was under way; its tokens revoked')

  return {
    body: {
      access_token: tokens.accessToken,
      token_type: constraint.kind === 'dpop' ? 'DPoP' : 'Bearer',
      expires_in: Math.round(records.accessTtlMs / 1000),
      ...(scope !== '' && { scope }),
      ...(tokens.refreshToken !== undefined && { refresh_token: tokens.refreshToken }),
      ...(settings.openid && tokens.idToken !== undefined && { id_token: tokens.idToken }),
    },
  }
}
