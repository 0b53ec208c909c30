// The legacy token endpoint's answer, read for what the façade needs: a token it can bind, or an
// RFC 6749 §5.2 error it can pass on. Nothing else of the answer reaches the partner.
import { decodeJwt } from 'jose'
import { OAuthError, oauthRefuse } from './errors.ts'
import type { LegacyAnswer } from './legacy-client.ts'

export interface LegacyTokens {
  readonly accessToken: string
  readonly refreshToken: string | undefined
  readonly idToken: string | undefined
  /** Seconds; from expires_in, else the JWT's exp, else undefined. */
  readonly expiresIn: number | undefined
  readonly scope: string | undefined
  /** The subject, when the access token is a JWT that names one. */
  readonly sub: string | undefined
  /** `refresh_expires_in`, which some servers send. */
  readonly refreshExpiresIn: number | undefined
}

const PASSED_ON = new Set(['invalid_request', 'invalid_grant', 'invalid_scope', 'unauthorized_client'] as const)
type PassedOn = typeof PASSED_ON extends Set<infer T> ? T : never

function positiveSeconds(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.floor(value) : undefined
}

function jwtClaims(token: string): { exp?: number; sub?: string } {
  if (token.split('.').length !== 3) return {}
  try {
    const claims = decodeJwt(token)
    return { exp: claims.exp, sub: typeof claims.sub === 'string' ? claims.sub : undefined }
  } catch {
    return {}
  }
}

/** Throws OAuthError for an error answer or one the façade cannot bind. */
export function readLegacyTokens(answer: LegacyAnswer, nowMs: number): LegacyTokens {
  const { status, body } = answer
  if (status >= 400 && status < 500) {
    const error = typeof body.error === 'string' ? body.error : undefined
    if (error === 'invalid_client') oauthRefuse('AS_LEGACY_CREDENTIALS', `legacy: invalid_client (status ${status}): check the legacy client and its secret`)
    if (error === 'unsupported_grant_type') oauthRefuse('AS_GRANT_TYPE_UNSUPPORTED', 'legacy: unsupported_grant_type')
    if (error !== undefined && PASSED_ON.has(error as PassedOn)) {
      throw new OAuthError('AS_LEGACY_REFUSED', { detail: `legacy: ${error}`, passOnError: error as PassedOn })
    }
    oauthRefuse('AS_LEGACY_REFUSED', `legacy: status ${status}, error ${error?.slice(0, 40) ?? 'none'}`)
  }
  if (status !== 200) oauthRefuse('AS_LEGACY_BAD_ANSWER', `legacy: status ${status}`)
  const accessToken = body.access_token
  if (typeof accessToken !== 'string' || accessToken.length === 0) oauthRefuse('AS_LEGACY_BAD_ANSWER', 'legacy: no access_token')
  const tokenType = body.token_type
  // The legacy server issues Bearer tokens; binding them is the façade's job, so any other type is not understood.
  if (typeof tokenType !== 'string' || tokenType.toLowerCase() !== 'bearer') oauthRefuse('AS_LEGACY_BAD_ANSWER', 'legacy: token_type is not Bearer')
  const claims = jwtClaims(accessToken)
  const fromExp = claims.exp === undefined ? undefined : positiveSeconds(claims.exp - Math.floor(nowMs / 1000))
  return {
    accessToken,
    refreshToken: typeof body.refresh_token === 'string' && body.refresh_token.length > 0 ? body.refresh_token : undefined,
    idToken: typeof body.id_token === 'string' ? body.id_token : undefined,
    expiresIn: positiveSeconds(body.expires_in) ?? fromExp,
    scope: typeof body.scope === 'string' ? body.scope : undefined,
    sub: claims.sub,
    refreshExpiresIn: positiveSeconds(body.refresh_expires_in),
  }
}
