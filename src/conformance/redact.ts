// Keeps secrets out of every report: tokens, proofs, client assertions and keys are shown
// as their first characters only (FAPI 2.0 SP §6.2: whoever reads logs or reports must not
// be able to replay what the runner sent).

export const SHOWN_PREFIX_LENGTH = 12
const ELLIPSIS = '…'

/** Header names whose values carry credentials or per-request secrets. */
const SECRET_HEADERS = new Set(['authorization', 'dpop', 'dpop-nonce', 'cookie', 'set-cookie', 'proxy-authorization'])
/** Form or query parameters that carry credentials. */
const SECRET_PARAMETERS = ['access_token', 'client_assertion', 'refresh_token', 'code', 'client_secret']

// Anything shaped like a JWS/JWT (base64url JSON header, a dot, more base64url).
const JWS_LIKE = /eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)?/g
const PEM_KEY = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g
const MAX_SHOWN_LENGTH = 400

export function truncate(value: string, keep = SHOWN_PREFIX_LENGTH): string {
  return value.length <= keep ? value : value.slice(0, keep) + ELLIPSIS
}

function safeDecode(component: string): string {
  try {
    return decodeURIComponent(component)
  } catch {
    return component
  }
}

export interface Redactor {
  /** Registers a value that must never appear in a report (a token, a proof, an assertion). */
  add(secret: string): void
  /** Free text: known secrets, JWS-shaped strings and PEM private keys are cut down. */
  text(value: string): string
  header(name: string, value: string): string
  /** A URL with secret query parameters truncated. */
  url(url: string): string
}

export function createRedactor(): Redactor {
  const secrets = new Set<string>()
  function text(value: string): string {
    let shown = value.replace(PEM_KEY, '[key redacted]')
    for (const secret of secrets) if (shown.includes(secret)) shown = shown.split(secret).join(truncate(secret))
    shown = shown.replace(JWS_LIKE, (match) => truncate(match))
    return shown.length > MAX_SHOWN_LENGTH ? shown.slice(0, MAX_SHOWN_LENGTH) + ELLIPSIS : shown
  }
  return {
    add(secret) {
      if (secret.length >= 8) secrets.add(secret)
    },
    text,
    header(name, value) {
      return SECRET_HEADERS.has(name.toLowerCase()) ? truncate(value) : text(value)
    },
    url(url) {
      const queryAt = url.indexOf('?')
      if (queryAt === -1) return text(url)
      const [query = '', fragment] = url.slice(queryAt + 1).split('#', 2)
      const shownQuery = query
        .split('&')
        .map((pair) => {
          const equals = pair.indexOf('=')
          const name = equals === -1 ? pair : pair.slice(0, equals)
          return equals !== -1 && SECRET_PARAMETERS.includes(safeDecode(name)) ? `${name}=${truncate(pair.slice(equals + 1))}` : pair
        })
        .join('&')
      return text(`${url.slice(0, queryAt)}?${shownQuery}${fragment === undefined ? '' : `#${fragment}`}`)
    },
  }
}
