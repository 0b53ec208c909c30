// Form bodies, the one kind of body the gateway reads: a client may not send an access token in
// one (RFC 6750 §2.2, FAPI 2.0 SP 5.3.4-2). The headers must leave no doubt which kind of body it
// is and that the gateway reads the bytes as the upstream will, else the request is refused.
import { refuse } from '../errors.ts'
import { multipartHasAccessToken, urlencodedHasAccessToken } from './token-fields.ts'

export type FormKind = 'urlencoded' | 'multipart'

export interface BodyHeaders {
  readonly contentTypes: readonly string[]
  readonly contentEncodings: readonly string[]
}

export function readBodyHeaders(rawHeaders: readonly string[]): BodyHeaders {
  const contentTypes: string[] = []
  const contentEncodings: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase()
    if (name === 'content-type') contentTypes.push(rawHeaders[i + 1]!)
    else if (name === 'content-encoding') contentEncodings.push(rawHeaders[i + 1]!)
  }
  return { contentTypes, contentEncodings }
}

// Charsets in which `access_token` is written with the same octets as in ASCII.
const ASCII_COMPATIBLE = new Set(['utf-8', 'utf8', 'us-ascii', 'ascii', 'iso-8859-1', 'latin1', 'iso-8859-15', 'windows-1252'])

/** `value` split at `sep` outside quoted strings. */
function splitOutsideQuotes(value: string, sep: string): string[] {
  const parts: string[] = []
  let start = 0
  let quoted = false
  for (let i = 0; i < value.length; i++) {
    const c = value[i]
    if (quoted && c === '\\') i++
    else if (c === '"') quoted = !quoted
    else if (c === sep && !quoted) {
      parts.push(value.slice(start, i))
      start = i + 1
    }
  }
  parts.push(value.slice(start))
  return parts
}

/**
 * Which form the body is, if any. Refuses what would let the gateway and the upstream read the
 * body differently: two Content-Type headers (Node keeps the first, others the last) or a list
 * of media types in one; and, on a form, a content coding or a charset that hides field names.
 */
export function formKindOf(headers: BodyHeaders): FormKind | undefined {
  if (headers.contentTypes.length > 1) refuse('GW_REQUEST_MALFORMED', `${headers.contentTypes.length} Content-Type headers`)
  const contentType = headers.contentTypes[0]
  if (contentType === undefined) return undefined
  if (splitOutsideQuotes(contentType, ',').length > 1) refuse('GW_REQUEST_MALFORMED', 'more than one media type in Content-Type')
  const [essence, ...params] = splitOutsideQuotes(contentType, ';')
  const type = essence!.trim().toLowerCase()
  const kind: FormKind | undefined = type === 'application/x-www-form-urlencoded' ? 'urlencoded' : type === 'multipart/form-data' ? 'multipart' : undefined
  if (kind === undefined) return undefined

  if (headers.contentEncodings.length > 1) refuse('GW_REQUEST_MALFORMED', `${headers.contentEncodings.length} Content-Encoding headers on a form body`)
  const codings = (headers.contentEncodings[0] ?? '')
    .split(',')
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== '')
  if (codings.some((coding) => coding !== 'identity'))
    refuse('GW_BODY_ENCODING_UNSUPPORTED', `form body with Content-Encoding ${codings.join(', ').slice(0, 64)}`)
  for (const param of params) {
    const equals = param.indexOf('=')
    if (param.slice(0, equals).trim().toLowerCase() !== 'charset') continue
    const charset = param
      .slice(equals + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1')
      .toLowerCase()
    if (!ASCII_COMPATIBLE.has(charset)) refuse('GW_BODY_ENCODING_UNSUPPORTED', `form body in charset ${charset.slice(0, 32)}`)
  }
  return kind
}

/** Refuses a form body that carries an access_token field. */
export function checkFormBody(kind: FormKind, body: Buffer): void {
  const text = body.toString('latin1')
  if (kind === 'urlencoded' ? urlencodedHasAccessToken(text) : multipartHasAccessToken(text)) refuse('GW_TOKEN_IN_QUERY', `access_token in the ${kind} body`)
}
