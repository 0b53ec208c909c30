// The authorization_code grant with the front channel on (issue 14): the code is one the gateway issued
// at its callback, standing for the legacy server's. Before the legacy code is redeemed (once, never
// retried), the gateway's code must be known and unexpired, used for the first time, the client's, sent
// with the pushed redirect_uri, the PKCE verifier of the pushed challenge and, when it was bound to a
// DPoP key at PAR, a proof by that key (FAPI 2.0 SP §5.3.2.1-11, §5.3.2.2-5/-9; RFC 6749 §4.1.2, §4.1.3;
// RFC 7636 §4.6; RFC 9449 §10). A reused code also ends what its first redemption issued.
import { s256Challenge } from './secrets.ts'
import type { BindingRegistry } from '../../tokens/binding-registry.ts'
import type { RevokedTokenList } from '../../tokens/revoked-tokens.ts'
import { equalInConstantTime } from '../../util/constant-time.ts'
import { OAuthError, oauthRefuse } from '../errors.ts'
import type { Partner } from '../partners.ts'
import type { SenderConstraint } from '../sender-constraint.ts'
import type { FrontChannelState, IssuedCode } from './state.ts'

export interface CodeExchangeDeps {
  readonly state: FrontChannelState
  readonly revokedTokens: RevokedTokenList
  /** The gateway's callback URL: the redirect_uri every legacy code was issued for. */
  readonly callbackUrl: string
}

export interface CodeExchangeInput {
  readonly params: ReadonlyMap<string, string>
  readonly partner: Partner
  readonly constraint: SenderConstraint
  readonly nowMs: number
}

/** FAPI 2.0 SP §5.3.2.1-11: a code lives at most 60 seconds. */
export const MAX_CODE_LIFETIME_MS = 60_000
/** A code issued by a replica whose clock runs slightly ahead is not a code from the future. */
const ISSUED_AT_TOLERANCE_MS = 5_000
/** RFC 7636 §4.1: 43 to 128 unreserved characters. */
const CODE_VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/

/** RFC 7636 §4.6: BASE64URL(SHA-256(ASCII(code_verifier))) equals the stored S256 challenge, compared in constant time. */
export function pkceVerifierMatches(verifier: string, challenge: string): boolean {
  if (!CODE_VERIFIER.test(verifier)) return false
  return equalInConstantTime(s256Challenge(verifier), challenge)
}

function storeFailure(detail: string, cause: unknown): OAuthError {
  return cause instanceof OAuthError ? cause : new OAuthError('AS_STORE_UNAVAILABLE', { detail, cause })
}

/**
 * RFC 6749 §4.1.2: the tokens a reused code's first redemption issued are ended, as the revocation endpoint
 * ends a token: on the revoked list for their remaining life (fallbackTtlMs when their record is gone), and
 * their binding records removed. Throws AS_STORE_UNAVAILABLE when that cannot be done, so that a retry tries again.
 */
async function endFirstRedemption(tokenHashes: readonly string[], bindings: BindingRegistry, deps: CodeExchangeDeps, nowMs: number, fallbackTtlMs: number) {
  try {
    for (const tokenHash of tokenHashes) {
      const record = await bindings.lookup(tokenHash)
      const ttlMs = record === undefined ? fallbackTtlMs : Math.max(1_000, record.expiresAt * 1000 - nowMs)
      await deps.revokedTokens.revoke(tokenHash, ttlMs)
      await bindings.remove(tokenHash)
    }
  } catch (error) {
    throw storeFailure('code_reuse: the tokens of the first redemption could not be revoked', error)
  }
}

/**
 * Redeems the gateway's code for the authenticated partner, or throws the OAuthError that refuses it:
 * AS_REQUEST_MALFORMED (`code` missing), AS_GRANT_INVALID (rules `code`, `code_reuse`, `client_id`,
 * `redirect_uri`, `code_verifier`), AS_DPOP_INVALID (`dpop_jkt`), AS_STORE_UNAVAILABLE.
 * The code is claimed first: a request refused by a later check has used it up.
 */
export async function redeemGatewayCode(
  input: CodeExchangeInput,
  deps: CodeExchangeDeps,
  bindings: BindingRegistry,
  fallbackRevocationTtlMs: number,
): Promise<{ readonly code: string; readonly issued: IssuedCode }> {
  const { params, partner, constraint, nowMs } = input
  const code = params.get('code')
  if (code === undefined || code === '') oauthRefuse('AS_REQUEST_MALFORMED', 'code: missing')

  let redeemed: Awaited<ReturnType<FrontChannelState['redeemCode']>>
  let firstIssued: readonly string[] = []
  try {
    redeemed = await deps.state.redeemCode(code)
    // The code's record has expired, but what its first redemption issued is still remembered: a late reuse.
    if (redeemed === undefined) firstIssued = await deps.state.issuedFor(code)
    else if (redeemed.use === 'reused') firstIssued = await deps.state.issuedFor(code)
  } catch (error) {
    throw storeFailure('code: the code could not be redeemed', error)
  }
  if (redeemed === undefined && firstIssued.length === 0) oauthRefuse('AS_GRANT_INVALID', 'code: unknown or expired')
  if (redeemed === undefined || redeemed.use === 'reused') {
    await endFirstRedemption(firstIssued, bindings, deps, nowMs, fallbackRevocationTtlMs)
    oauthRefuse('AS_GRANT_INVALID', `code_reuse: already redeemed; ${firstIssued.length} token(s) of its first redemption revoked`)
  }

  const { issued } = redeemed
  const lifetimeMs = issued.expiresAt - issued.issuedAt
  if (!(lifetimeMs > 0 && lifetimeMs <= MAX_CODE_LIFETIME_MS)) oauthRefuse('AS_GRANT_INVALID', 'code: lifetime over 60 seconds')
  if (nowMs >= issued.expiresAt) oauthRefuse('AS_GRANT_INVALID', 'code: expired')
  if (nowMs < issued.issuedAt - ISSUED_AT_TOLERANCE_MS) oauthRefuse('AS_GRANT_INVALID', 'code: issued in the future')

  if (issued.clientId !== partner.clientId) oauthRefuse('AS_GRANT_INVALID', 'client_id: the code was issued to another client')

  const redirectUri = params.get('redirect_uri')
  if (redirectUri === undefined) oauthRefuse('AS_GRANT_INVALID', 'redirect_uri: missing')
  if (redirectUri !== issued.redirectUri) oauthRefuse('AS_GRANT_INVALID', 'redirect_uri: not the pushed one')

  const verifier = params.get('code_verifier')
  if (verifier === undefined) oauthRefuse('AS_GRANT_INVALID', 'code_verifier: missing')
  if (!CODE_VERIFIER.test(verifier)) oauthRefuse('AS_GRANT_INVALID', 'code_verifier: not 43-128 unreserved characters')
  if (!pkceVerifierMatches(verifier, issued.codeChallenge)) oauthRefuse('AS_GRANT_INVALID', 'code_verifier: does not match the code_challenge')

  if (issued.dpopJkt !== undefined) {
    if (constraint.kind !== 'dpop') oauthRefuse('AS_DPOP_INVALID', 'dpop_jkt: the code is bound to a DPoP key; no proof was sent')
    if (!equalInConstantTime(constraint.jkt, issued.dpopJkt)) oauthRefuse('AS_DPOP_INVALID', 'dpop_jkt: the proof is not by the key the code is bound to')
  }
  return { code, issued }
}

/** The legacy server's own code, redeemed with the callback URL it was issued for and the gateway's PKCE verifier. */
export function legacyCodeRedemption(issued: IssuedCode, deps: CodeExchangeDeps): URLSearchParams {
  const params = new URLSearchParams({ grant_type: 'authorization_code', code: issued.legacyCode, redirect_uri: deps.callbackUrl })
  if (issued.legacyCodeVerifier !== undefined) params.set('code_verifier', issued.legacyCodeVerifier)
  return params
}
