// Places besides the Authorization header where a client could slip in an access token:
// a query or form parameter (RFC 6750 §2.2, §2.3) and a multipart/form-data field.
// The test is deliberately wider than any one parser, so that no upstream framework reads
// a token the gateway did not see.

/**
 * `access_token` as upstream frameworks read a field name: any case, surrounding whitespace,
 * PHP's `access.token` / `access token` and `access_token[]`.
 */
export function isAccessTokenName(raw: string): boolean {
  let name = raw.trim().toLowerCase()
  const bracket = name.indexOf('[')
  if (bracket !== -1 && name.indexOf(']', bracket) !== -1) name = name.slice(0, bracket)
  return name.replace(/[ .[]/g, '_') === 'access_token'
}

/** Percent-decoding that never throws; octets become Latin-1 characters, which keeps ASCII exact. */
function percentDecode(value: string): string {
  return value.includes('%') ? value.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))) : value
}

const ACCESS_TOKEN_LENGTH = 'access_token'.length

/** A query string or an application/x-www-form-urlencoded body; `;` separates too (older parsers). */
export function urlencodedHasAccessToken(text: string): boolean {
  for (const pair of text.split(/[&;]/)) {
    const equals = pair.indexOf('=')
    const name = equals === -1 ? pair : pair.slice(0, equals)
    // Decoding only shortens a name: one shorter than access_token cannot be it.
    if (name.length >= ACCESS_TOKEN_LENGTH && isAccessTokenName(percentDecode(name.replaceAll('+', ' ')))) return true
  }
  return false
}

/** RFC 9110 §5.6.6 parameters after the first `;`, with quoted strings unescaped; one pass over `value`. */
function parameters(value: string): [string, string][] {
  const found: [string, string][] = []
  let i = value.indexOf(';')
  while (i !== -1 && i < value.length) {
    let equals = i + 1
    while (equals < value.length && value[equals] !== '=' && value[equals] !== ';') equals++
    if (equals >= value.length) break
    if (value[equals] === ';') {
      i = equals
      continue
    }
    const key = value
      .slice(i + 1, equals)
      .trim()
      .toLowerCase()
    let j = equals + 1
    while (value[j] === ' ' || value[j] === '\t') j++
    let parameter = ''
    if (value[j] === '"') {
      for (j++; j < value.length && value[j] !== '"'; j++) parameter += value[j] === '\\' && j + 1 < value.length ? value[++j] : value[j]
      j = value.indexOf(';', j)
    } else {
      const end = value.indexOf(';', j)
      parameter = value.slice(j, end === -1 ? undefined : end).trim()
      j = end
    }
    found.push([key, parameter])
    i = j
  }
  return found
}

/** Field names a Content-Disposition value gives: `name`, RFC 8187 `name*`, RFC 2231 `name*0`, `name*1*`, … */
function dispositionNames(value: string): string[] {
  const names: string[] = []
  const pieces: [number, string][] = []
  for (const [key, parameter] of parameters(value)) {
    if (key === 'name') names.push(parameter, percentDecode(parameter))
    else if (key === 'name*') names.push(percentDecode(parameter.slice(parameter.lastIndexOf("'") + 1)))
    else {
      const piece = /^name\*(\d+)(\*?)$/.exec(key)
      if (piece) pieces.push([Number(piece[1]), piece[2] === '*' ? percentDecode(parameter.replace(/^[^']*'[^']*'/, '')) : parameter])
    }
  }
  if (pieces.length > 0)
    names.push(
      pieces
        .sort(([a], [b]) => a - b)
        .map(([, piece]) => piece)
        .join(''),
    )
  return names
}

/**
 * A multipart/form-data body (RFC 7578). Every Content-Disposition header line is read, wherever
 * it stands and whatever the boundary: a parser that disagrees with the gateway about where a
 * part begins still finds no access_token field the gateway missed.
 */
export function multipartHasAccessToken(text: string): boolean {
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    if (!/^[ \t]*content-disposition[ \t]*:/i.test(lines[i]!)) continue
    let header = lines[i]!.replace(/\r$/, '')
    // obs-fold: continuation lines start with whitespace.
    while (i + 1 < lines.length && /^[ \t]/.test(lines[i + 1]!)) header += ' ' + lines[++i]!.replace(/\r$/, '').trim()
    if (dispositionNames(header.slice(header.indexOf(':') + 1)).some(isAccessTokenName)) return true
  }
  return false
}
