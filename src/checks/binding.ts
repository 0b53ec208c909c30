// Sender-constraint checks: which binding the token carries, whether the route accepts
// it, and whether the presented certificate matches (RFC 8705 §3, RFC 9449 §7.1).
import { equalInConstantTime } from '../util/constant-time.ts'
import { GatewayError, refuse } from '../errors.ts'
import type { Route } from '../routes/route-table.ts'
import type { AccessToken, ClientCert, PresentedToken } from '../types.ts'

export type TokenBindingKind = 'dpop' | 'mtls' | 'unbound'

/** RFC 9449 §6.2: an introspected token is DPoP-bound when token_type says so, or by cnf.jkt. */
function isDpopBound(token: AccessToken): boolean {
  return token.binding.jkt !== undefined || token.tokenType?.toLowerCase() === 'dpop'
}

/**
 * Decides how the token must be proven and checks the certificate binding.
 * Returns 'dpop' when a DPoP proof must be checked next.
 */
export function checkBinding(route: Route, presented: PresentedToken, token: AccessToken, cert: ClientCert | undefined): TokenBindingKind {
  const dpopBound = isDpopBound(token)
  const certBound = token.binding.x5t !== undefined

  if (dpopBound) {
    if (presented.scheme !== 'DPoP') refuse('GW_TOKEN_DOWNGRADE', 'DPoP-bound token sent with Bearer')
    if (token.binding.jkt === undefined) refuse('GW_TOKEN_INVALID', 'token_type DPoP without cnf.jkt')
    if (!route.acceptsDpop) refuse('GW_BINDING_NOT_ALLOWED', `route ${route.name} does not accept DPoP-bound tokens`)
  } else if (presented.scheme === 'DPoP') {
    refuse('GW_TOKEN_SCHEME_MISMATCH', 'DPoP scheme with a token that is not DPoP-bound')
  }

  if (certBound) {
    if (!dpopBound && !route.acceptsBearer) refuse('GW_BINDING_NOT_ALLOWED', `route ${route.name} does not accept certificate-bound tokens`)
    if (cert === undefined) refuse('GW_CERT_BINDING_MISMATCH', 'certificate-bound token without a client certificate')
    if (!equalInConstantTime(cert.thumbprint, token.binding.x5t!)) refuse('GW_CERT_BINDING_MISMATCH', 'x5t#S256 does not match the client certificate')
  }

  if (!dpopBound && !certBound && route.binding !== 'none') refuse('GW_TOKEN_UNBOUND')
  if (route.binding === 'mtls' && !certBound) refuse('GW_BINDING_NOT_ALLOWED', `route ${route.name} requires a certificate-bound token`)
  return dpopBound ? 'dpop' : certBound ? 'mtls' : 'unbound'
}

/**
 * RFC 9449 §7.1 check 12b: the proof key (its RFC 7638 thumbprint) is the key the token is bound to.
 * Made by the proof check before the signature; the refusal names the key that was presented.
 */
export function checkProofKeyBinding(boundJkt: string | undefined, proofJkt: string): void {
  if (boundJkt === undefined || !equalInConstantTime(proofJkt, boundJkt)) {
    throw new GatewayError('GW_DPOP_BINDING_MISMATCH', { detail: 'cnf.jkt does not match the proof key', keyThumbprint: proofJkt })
  }
}
