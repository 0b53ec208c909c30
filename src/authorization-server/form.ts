// The form body of a token or revocation request (RFC 6749 §3.2, §4.1.3; RFC 7009 §2.1): UTF-8,
// url-encoded, each parameter at most once, a parameter without a value treated as omitted.
import { OAuthError, oauthRefuse } from './errors.ts'

const utf8 = new TextDecoder('utf-8', { fatal: true })

function mediaType(contentType: string): { type: string; charset: string | undefined } {
  const [type = '', ...parameters] = contentType.split(';').map((part) => part.trim())
  const charset = parameters.find((p) => p.toLowerCase().startsWith('charset='))?.slice('charset='.length)
  return { type: type.toLowerCase(), charset: charset?.replace(/^"|"$/g, '').toLowerCase() }
}

export function parseOAuthForm(contentType: string | undefined, body: Buffer): ReadonlyMap<string, string> {
  if (contentType === undefined) oauthRefuse('AS_REQUEST_MALFORMED', 'content-type: missing')
  const { type, charset } = mediaType(contentType)
  if (type !== 'application/x-www-form-urlencoded') oauthRefuse('AS_REQUEST_MALFORMED', 'content-type: not application/x-www-form-urlencoded')
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'us-ascii') oauthRefuse('AS_REQUEST_MALFORMED', `content-type: charset ${charset}`)
  let text: string
  try {
    text = utf8.decode(body)
  } catch (error) {
    throw new OAuthError('AS_REQUEST_MALFORMED', { detail: 'form: not UTF-8', cause: error })
  }
  const params = new Map<string, string>()
  for (const [name, value] of new URLSearchParams(text)) {
    if (value === '') continue
    if (params.has(name)) oauthRefuse('AS_REQUEST_MALFORMED', `form: ${name.slice(0, 40)} sent more than once`)
    params.set(name, value)
  }
  return params
}
