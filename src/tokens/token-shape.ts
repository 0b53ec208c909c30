// What a token of one issuer can look like, checked before the string costs a call to its
// introspection endpoint: a string that cannot be one of its tokens is refused locally.
import { refuse } from '../errors.ts'

export const tokenCharsets = {
  /** RFC 6750 §2.1: what the Authorization header accepts at all. */
  b64token: /^[A-Za-z0-9\-._~+/]+=*$/,
  base64url: /^[A-Za-z0-9_-]+$/,
  hex: /^[0-9A-Fa-f]+$/,
  alphanumeric: /^[A-Za-z0-9]+$/,
} as const

export type TokenCharset = keyof typeof tokenCharsets

export interface TokenShape {
  readonly minLength: number
  readonly maxLength: number
  /** Applies to what follows the prefix. */
  readonly charset: TokenCharset
  readonly prefix?: string
}

export const defaultTokenShape: TokenShape = { minLength: 1, maxLength: 4096, charset: 'b64token' }

/** Refuses with GW_TOKEN_INVALID a string that is not of this shape (the lengths count the prefix). */
export function checkTokenShape(token: string, shape: TokenShape): void {
  if (token.length < shape.minLength) refuse('GW_TOKEN_INVALID', `shape: shorter than ${shape.minLength} characters`)
  if (token.length > shape.maxLength) refuse('GW_TOKEN_INVALID', `shape: longer than ${shape.maxLength} characters`)
  const prefix = shape.prefix ?? ''
  if (!token.startsWith(prefix)) refuse('GW_TOKEN_INVALID', "shape: without the issuer's prefix")
  if (!tokenCharsets[shape.charset].test(token.slice(prefix.length))) refuse('GW_TOKEN_INVALID', `shape: not ${shape.charset}`)
}
