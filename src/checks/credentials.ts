// Reads the access token from the request, exactly once (RFC 6750 §2, RFC 9449 §7).
// Node's req.headers keeps only one Authorization and joins repeated DPoP headers,
// so everything here works from rawHeaders.
import { createHash } from 'node:crypto'
import { refuse } from '../errors.ts'
import type { AuthScheme, PresentedToken } from '../types.ts'
import { urlencodedHasAccessToken } from './token-fields.ts'

export interface CredentialHeaders {
  readonly authorization: readonly string[]
  readonly dpop: readonly string[]
  readonly interactionId: string | undefined
}

export function readCredentialHeaders(rawHeaders: readonly string[]): CredentialHeaders {
  const authorization: string[] = []
  const dpop: string[] = []
  let interactionId: string | undefined
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!
    switch (name.toLowerCase()) {
      case 'authorization':
        authorization.push(rawHeaders[i + 1]!)
        break
      case 'dpop':
        dpop.push(rawHeaders[i + 1]!)
        break
      case 'x-fapi-interaction-id':
        interactionId ??= rawHeaders[i + 1]
        break
    }
  }
  return { authorization, dpop, interactionId }
}

// RFC 6750 §2.1 b64token.
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'ascii').digest('base64url')
}

/**
 * The token from the single Authorization header. Refuses a token in the query string
 * (RFC 6750 §2.3, FAPI 2.0 SP 5.3.4-2) and more than one header; form bodies are
 * checked once read (src/checks/form-body.ts).
 */
export function checkCredentials(headers: CredentialHeaders, target: string): PresentedToken {
  const queryAt = target.indexOf('?')
  if (queryAt !== -1 && urlencodedHasAccessToken(target.slice(queryAt + 1))) refuse('GW_TOKEN_IN_QUERY', 'access_token in the query string')
  if (headers.authorization.length === 0) refuse('GW_TOKEN_MISSING')
  if (headers.authorization.length > 1) refuse('GW_TOKEN_MULTIPLE', `${headers.authorization.length} Authorization headers`)
  const header = headers.authorization[0]!.trim()
  const space = header.indexOf(' ')
  if (space === -1) refuse('GW_TOKEN_MALFORMED', 'no credentials after the scheme')
  const schemeName = header.slice(0, space).toLowerCase()
  const scheme: AuthScheme | undefined = schemeName === 'dpop' ? 'DPoP' : schemeName === 'bearer' ? 'Bearer' : undefined
  if (scheme === undefined) refuse('GW_TOKEN_MISSING', 'unsupported authorization scheme')
  const value = header.slice(space + 1).trim()
  if (!TOKEN68.test(value) || value.length > 16 * 1024) refuse('GW_TOKEN_MALFORMED', 'credentials are not a b64token')
  return { scheme, value, hash: hashToken(value) }
}
