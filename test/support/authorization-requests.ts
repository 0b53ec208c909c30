// Helpers for the front-channel tests: PKCE pairs and signed request objects (RFC 9101) as a FAPI
// client makes them.
import { createHash, randomBytes } from 'node:crypto'
import { SignJWT, type JWTPayload } from 'jose'
import type { SigningKey } from './client-authentication.ts'

export interface PkcePair {
  readonly verifier: string
  readonly challenge: string
}

/** RFC 7636 §4.1-4.2: a 43-character verifier and its S256 challenge. */
export function pkcePair(): PkcePair {
  const verifier = randomBytes(32).toString('base64url')
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') }
}

export interface RequestObjectOptions {
  /** The JOSE header's typ; undefined leaves it out. Default oauth-authz-req+jwt. */
  readonly typ?: string | undefined
}

/**
 * A request object from clientId to audience, valid from now for 5 minutes, carrying the given
 * authorization parameters; claims set to undefined are left out.
 */
export async function signRequestObject(
  key: SigningKey,
  clientId: string,
  audience: string | string[],
  claims: JWTPayload = {},
  options: RequestObjectOptions = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  const payload: JWTPayload = {
    iss: clientId,
    aud: audience,
    client_id: clientId,
    iat: now,
    nbf: now,
    exp: now + 300,
    jti: randomBytes(16).toString('hex'),
    ...claims,
  }
  for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name]
  const typ = 'typ' in options ? options.typ : 'oauth-authz-req+jwt'
  return new SignJWT(payload).setProtectedHeader({ alg: key.alg, kid: key.kid, ...(typ !== undefined && { typ }) }).sign(key.privateKey)
}
