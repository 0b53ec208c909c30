// Normal form of a DPoP `htu` and of the request URI it is compared with (RFC 9449 §4.3 check 9):
// RFC 3986 §6.2.2 syntax-based and §6.2.3 scheme-based normalisation, query and fragment dropped.
// Parsing is strict RFC 3986 first, because WHATWG URL accepts much that is not a URI
// ("https:host", backslashes, whitespace) and rewrites some hosts (`010.0.0.1` -> `8.0.0.1`).

const ABSOLUTE_URI = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(?:[?#][\x21-\x7e]*)?$/
const IP_LITERAL = /^\[[0-9A-Fa-f:.]+\]$/
const REG_NAME = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+$/
const PORT = /^[0-9]*$/
const PATH = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*$/
const UNRESERVED = /^[A-Za-z0-9\-._~]$/
const PERCENT_ENCODED = /%([0-9A-Fa-f]{2})/g

/** RFC 3986 §6.2.2.2: decode unreserved characters, upper-case the hex digits of the rest. */
function normalizePercentEncoding(text: string): string {
  return text.replace(PERCENT_ENCODED, (_match, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16))
    return UNRESERVED.test(char) ? char : `%${hex.toUpperCase()}`
  })
}

function splitAuthority(authority: string): { host: string; port: string } | undefined {
  if (authority.includes('@')) return undefined // RFC 9110 §4.2.4: userinfo is not allowed in http(s) URIs
  const portStart = authority.startsWith('[') ? authority.indexOf(':', authority.indexOf(']')) : authority.indexOf(':')
  const host = portStart === -1 ? authority : authority.slice(0, portStart)
  const port = portStart === -1 ? '' : authority.slice(portStart + 1)
  if (!PORT.test(port)) return undefined
  if (!IP_LITERAL.test(host) && !REG_NAME.test(host)) return undefined
  return { host, port }
}

/**
 * `scheme://host[:port]/path` in normal form, or undefined when `uri` is not an absolute
 * http(s) URI. Scheme and host are lower-cased, the default port and dot-segments removed,
 * percent-encoding normalised, an empty path becomes "/".
 */
export function normalizeHtu(uri: string): string | undefined {
  if (typeof uri !== 'string') return undefined
  const match = ABSOLUTE_URI.exec(uri)
  if (!match) return undefined
  const [, rawScheme = '', authority = '', rawPath = ''] = match
  const scheme = rawScheme.toLowerCase()
  if (scheme !== 'https' && scheme !== 'http') return undefined
  const parts = splitAuthority(authority)
  if (!parts || !PATH.test(rawPath)) return undefined

  const isIpLiteral = parts.host.startsWith('[')
  const host = isIpLiteral ? parts.host : normalizePercentEncoding(parts.host).toLowerCase()
  const path = normalizePercentEncoding(rawPath)

  let url: URL
  try {
    url = new URL(`${scheme}://${host}${parts.port === '' ? '' : `:${parts.port}`}${path}`)
  } catch {
    return undefined
  }
  // WHATWG re-serialises IPv6 literals canonically (same address); any other rewrite of a host
  // (IPv4 shorthand, octal, IDNA mapping) is not an RFC 3986 equivalence, so refuse it.
  if (!isIpLiteral && url.hostname !== host) return undefined
  return `${url.protocol}//${url.host}${url.pathname}`
}
