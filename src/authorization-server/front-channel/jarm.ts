// JARM (JWT Secured Authorization Response Mode, FAPI 2.0 Message Signing §5.4): with response_mode=jwt
// the authorization response is one JWT signed by the gateway's own key, sent as `?response=` on the
// partner's redirect URI (JARM §2.3.4, the query for the code flow). `iss` is inside it, never beside
// it (RFC 9207 §2.4); `aud` is the client and `exp` is short, so a leaked response is soon worthless.
import { OAuthError } from '../errors.ts'
import type { GatewayKeySource, GatewaySigner } from '../keys/key-source.ts'

/** JARM §2.1 recommends at most 10 minutes; the browser is redirected at once, so a minute is plenty. */
export const JARM_LIFETIME_SECONDS = 60
/** JARM registers no media type of its own. */
const JARM_TYP = 'JWT'
/** RFC 9101 §6.1 as the gateway narrows it: the key management algorithms of request objects it decrypts. */
export const REQUEST_OBJECT_ENCRYPTION_ALGORITHMS: readonly string[] = ['RSA-OAEP-256', 'ECDH-ES']
export const REQUEST_OBJECT_ENCRYPTION_ENCODINGS: readonly string[] = ['A256GCM']

/** The parameters of an authorization response, without `iss` (the caller adds it). */
export type ResponseParameters = Readonly<Record<string, string | undefined>>

/** The key that signs now, or undefined when the gateway has none (no key source, or no signing key in it). */
export function currentSigner(keys: GatewayKeySource | undefined, nowMs: number): GatewaySigner | undefined {
  if (keys === undefined) return undefined
  try {
    return keys.signer(nowMs)
  } catch {
    return undefined
  }
}

/** The refusal of response_mode=jwt when the gateway cannot sign; the same one at PAR, the authorization endpoint and the callback. */
export function jarmUnavailable(): OAuthError {
  return new OAuthError('AS_REQUEST_MALFORMED', {
    detail: 'response_mode: jwt (JARM) needs a signing key of the gateway, and none is configured',
    rule: 'response_mode',
  })
}

export interface JarmResponse {
  readonly issuer: string
  readonly clientId: string
  readonly nowMs: number
  readonly parameters: ResponseParameters
}

/** The signed response JWT (JARM §2.1: iss, aud, exp and the response parameters); throws OAuthError when it cannot be signed. */
export async function signAuthorizationResponse(keys: GatewayKeySource | undefined, response: JarmResponse): Promise<string> {
  const signer = currentSigner(keys, response.nowMs)
  if (signer === undefined) throw jarmUnavailable()
  const now = Math.floor(response.nowMs / 1000)
  const claims: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(response.parameters)) if (value !== undefined) claims[name] = value
  Object.assign(claims, { iss: response.issuer, aud: response.clientId, iat: now, exp: now + JARM_LIFETIME_SECONDS })
  try {
    return await signer.sign(claims, JARM_TYP)
  } catch (error) {
    throw new OAuthError('AS_INTERNAL', { detail: `response: the signing key ${signer.kid.slice(0, 64)} failed`, rule: 'response', cause: error })
  }
}

/**
 * What the metadata announces when the gateway has its own keys (JARM §3, RFC 9101 §9.2): response
 * modes with jwt when it can sign (the algorithms of the current signer and of every published signing
 * key, so that a rotation to another algorithm is announced before it signs), request-object encryption
 * with the algorithms of its current decryption keys. Empty without keys.
 */
export function messageSigningMetadata(keys: GatewayKeySource | undefined, nowMs: number): Record<string, readonly string[]> {
  if (keys === undefined) return {}
  const metadata: Record<string, readonly string[]> = {}
  const signer = currentSigner(keys, nowMs)
  if (signer !== undefined) {
    const published = keys
      .publicJwks(nowMs)
      .keys.filter((key) => key.use === 'sig' && typeof key.alg === 'string')
      .map((key) => key.alg as string)
    metadata.response_modes_supported = ['query', 'jwt', 'query.jwt']
    metadata.authorization_signing_alg_values_supported = [...new Set([signer.alg, ...published])]
  }
  const decrypting = keys.decrypters(nowMs).filter((key) => REQUEST_OBJECT_ENCRYPTION_ALGORITHMS.includes(key.alg))
  if (decrypting.length > 0) {
    metadata.request_object_encryption_alg_values_supported = [...new Set(decrypting.map((key) => key.alg))]
    metadata.request_object_encryption_enc_values_supported = REQUEST_OBJECT_ENCRYPTION_ENCODINGS
  }
  return metadata
}
