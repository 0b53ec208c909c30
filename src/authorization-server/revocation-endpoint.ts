// Token revocation (RFC 7009) in front of the legacy server's: the gateway's own record ends the
// token at once (its binding removed, an access token added to the revoked list the resource side
// reads), then the legacy server is asked too, with the legacy client the token was issued to.
// For a legacy JWT access token, which the legacy server cannot revoke, the record is what ends it.
import type { X509Certificate } from 'node:crypto'
import type { BindingRegistry } from '../tokens/binding-registry.ts'
import type { RevokedTokenList } from '../tokens/revoked-tokens.ts'
import type { Logger, PeerCertificateVerdict } from '../types.ts'
import type { ClientAuthenticator } from './client-authentication/authenticate.ts'
import { OAuthError, oauthRefuse } from './errors.ts'
import type { LegacyClient } from './legacy-client.ts'
import type { PartnerRegistry } from './partners.ts'
import { hashToken } from '../checks/credentials.ts'
import type { TokenRequestFacts } from './token-endpoint.ts'

export interface RevocationRequest {
  readonly params: ReadonlyMap<string, string>
  readonly authorization: string | undefined
  readonly peer: PeerCertificateVerdict
  readonly peerCertificate: X509Certificate | undefined
  readonly nowMs: number
}

export interface RevocationDeps {
  readonly authenticator: ClientAuthenticator
  readonly partners: PartnerRegistry
  readonly legacy: LegacyClient
  readonly legacyRevocation: boolean
  readonly bindings: BindingRegistry
  readonly revokedTokens: RevokedTokenList
  readonly logger: Logger
}

export type RevocationOutcome = 'revoked' | 'unknown_token'

export async function answerRevocationRequest(request: RevocationRequest, deps: RevocationDeps, facts: TokenRequestFacts): Promise<RevocationOutcome> {
  const { partner } = await deps.authenticator.authenticate({
    params: request.params,
    authorization: request.authorization,
    peer: request.peer,
    peerCertificate: request.peerCertificate,
    nowMs: request.nowMs,
  })
  facts.clientId = partner.clientId
  const token = request.params.get('token')
  if (token === undefined) oauthRefuse('AS_REQUEST_MALFORMED', 'token: missing')
  const tokenHash = hashToken(token)
  let record
  try {
    record = await deps.bindings.lookup(tokenHash)
  } catch (error) {
    throw new OAuthError('AS_STORE_UNAVAILABLE', { detail: 'bindings: lookup failed', cause: error })
  }
  // RFC 7009 §2.2: an invalid or unknown token is not an error; the gateway never issued it, so there is nothing to end.
  if (record === undefined) return 'unknown_token'
  // RFC 7009 §2.1: the token must have been issued to the client asking.
  if (record.clientId !== partner.clientId) oauthRefuse('AS_GRANT_INVALID', 'token: issued to another client')

  const remainingMs = Math.max(1_000, record.expiresAt * 1000 - request.nowMs)
  try {
    if (record.kind === 'access_token') await deps.revokedTokens.revoke(tokenHash, remainingMs)
    await deps.bindings.remove(tokenHash)
  } catch (error) {
    throw new OAuthError('AS_STORE_UNAVAILABLE', { detail: 'bindings: the token could not be ended', cause: error })
  }

  const credentials = deps.partners.legacyCredentials(record.legacyClientId)
  if (deps.legacyRevocation && credentials) {
    const params = new URLSearchParams({ token, token_type_hint: record.kind })
    // The gateway's record already ends the token for every partner-facing use; the legacy server's answer is logged only.
    await deps.legacy.revoke(params, credentials).then(
      (answer) => {
        if (answer.status !== 200) deps.logger.warn({ clientId: partner.clientId, status: answer.status }, 'legacy server did not revoke the token')
      },
      (error: unknown) =>
        deps.logger.warn({ clientId: partner.clientId, code: (error as OAuthError).code, detail: (error as OAuthError).detail }, 'legacy revocation failed'),
    )
  }
  return 'revoked'
}
