// A token of an issuer behind the authorization-server façade carries no binding: the gateway's record of its
// issue (src/tokens/binding-registry.ts) is its binding, and fills in what the legacy token does not say.
import { refuse } from '../errors.ts'
import { parseBindingRecord } from '../tokens/binding-registry.ts'
import type { AccessToken, TokenBinding } from '../types.ts'

function sameOrAbsent(fromToken: string | undefined, fromRecord: string | undefined): boolean {
  return fromToken === undefined || fromToken === fromRecord
}

/**
 * The token as the record completes it; refused when the gateway did not issue it (no record, a corrupt one, one for
 * another issuer or a refresh token's: GW_TOKEN_UNREGISTERED) or when the record has expired.
 * - binding: the record's (a legacy `cnf`, should there be one, must agree with it);
 * - scopes: what the legacy server granted through the gateway (the record), narrowed to what the token or its
 *   introspection still says when it says anything;
 * - clientId: the partner's at the gateway (the token's client_id is the legacy client, possibly shared by partners);
 * - sub: the token's, else the record's; exp: the earlier of both.
 */
export function applyBindingRecord(token: AccessToken, stored: string | undefined, nowMs: number): AccessToken {
  const record = parseBindingRecord(stored) ?? refuse('GW_TOKEN_UNREGISTERED', 'record: none for this token')
  if (record.kind !== 'access_token') refuse('GW_TOKEN_UNREGISTERED', 'record: a refresh token')
  if (record.issuerName !== token.issuerName) refuse('GW_TOKEN_UNREGISTERED', `record: written for issuer ${record.issuerName}`)
  if (record.expiresAt * 1000 <= nowMs) refuse('GW_TOKEN_EXPIRED', 'exp: the binding record has expired')
  if (!sameOrAbsent(token.binding.jkt, record.jkt) || !sameOrAbsent(token.binding.x5t, record.x5t)) {
    refuse('GW_TOKEN_INVALID', 'cnf: differs from the binding record')
  }
  const granted = new Set(record.scope.split(' ').filter((scope) => scope !== ''))
  const scopes = token.scopes.size === 0 ? granted : new Set([...token.scopes].filter((scope) => granted.has(scope)))
  const binding: TokenBinding = { ...(record.jkt && { jkt: record.jkt }), ...(record.x5t && { x5t: record.x5t }) }
  return {
    ...token,
    sub: token.sub ?? record.sub,
    clientId: record.clientId,
    scopes,
    exp: token.exp === undefined ? record.expiresAt : Math.min(token.exp, record.expiresAt),
    binding,
    // The binding is the record's; a legacy token_type says nothing about it.
    tokenType: undefined,
  }
}
