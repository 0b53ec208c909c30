// The one catalogue of refusals. Every check throws a GatewayError with one of these
// codes; src/respond.ts is the only place a code becomes an HTTP answer.
// The error table of docs/errors.md is kept in step by test/unit/errors.test.ts.

export type Challenge = 'token' | 'dpop' | 'none'

export interface ErrorSpec {
  readonly status: number
  /** OAuth error code for WWW-Authenticate and the JSON body (RFC 6750 §3.1, RFC 9449 §7.1). */
  readonly error?: string
  /**
   * Which challenge carries `error`: 'token' = the scheme the client used (or every
   * scheme the route accepts when it used none), 'dpop' = always the DPoP challenge,
   * 'none' = no WWW-Authenticate at all (not an authentication problem).
   */
  readonly challenge: Challenge
  readonly description: string
}

export const catalogue = {
  GW_REQUEST_MALFORMED: { status: 400, error: 'invalid_request', challenge: 'token', description: 'The request is malformed.' },
  GW_ROUTE_UNKNOWN: { status: 404, challenge: 'none', description: 'No route policy matches this path.' },
  GW_METHOD_NOT_ALLOWED: { status: 405, challenge: 'none', description: 'The route does not allow this method.' },
  GW_HEADER_UNDERSCORE: { status: 400, error: 'invalid_request', challenge: 'token', description: 'Request header names must not contain underscores.' },
  GW_METHOD_OVERRIDE: { status: 400, error: 'invalid_request', challenge: 'token', description: 'Method override parameters are not accepted.' },

  GW_CLIENT_CERT_MISSING: { status: 401, error: 'invalid_token', challenge: 'token', description: 'This route requires a TLS client certificate.' },
  GW_CLIENT_CERT_INVALID: { status: 401, error: 'invalid_token', challenge: 'token', description: 'The TLS client certificate is not acceptable.' },
  GW_CLIENT_CERT_REVOKED: { status: 401, error: 'invalid_token', challenge: 'token', description: 'The TLS client certificate is revoked.' },
  GW_REVOCATION_UNAVAILABLE: { status: 503, challenge: 'none', description: 'The revocation status of the client certificate cannot be determined.' },

  GW_TOKEN_MISSING: { status: 401, challenge: 'token', description: 'An access token is required.' },
  GW_TOKEN_MULTIPLE: { status: 400, error: 'invalid_request', challenge: 'token', description: 'More than one access token or Authorization header was sent.' },
  GW_TOKEN_IN_QUERY: { status: 400, error: 'invalid_request', challenge: 'token', description: 'Access tokens are accepted only in the Authorization header.' },
  GW_TOKEN_MALFORMED: { status: 400, error: 'invalid_request', challenge: 'token', description: 'The Authorization header is malformed.' },
  GW_TOKEN_INVALID: { status: 401, error: 'invalid_token', challenge: 'token', description: 'The access token is invalid.' },
  GW_TOKEN_EXPIRED: { status: 401, error: 'invalid_token', challenge: 'token', description: 'The access token has expired.' },
  GW_TOKEN_INACTIVE: { status: 401, error: 'invalid_token', challenge: 'token', description: 'The access token is not active.' },
  GW_TOKEN_REVOKED: { status: 401, error: 'invalid_token', challenge: 'token', description: 'The access token has been revoked.' },
  GW_TOKEN_AUDIENCE: { status: 401, error: 'invalid_token', challenge: 'token', description: 'The access token is not meant for this API.' },
  GW_TOKEN_UNBOUND: { status: 401, error: 'invalid_token', challenge: 'token', description: 'The access token is not sender-constrained.' },
  GW_TOKEN_UNREGISTERED: { status: 401, error: 'invalid_token', challenge: 'token', description: 'The access token was not issued through this gateway.' },
  GW_TOKEN_DOWNGRADE: { status: 401, error: 'invalid_token', challenge: 'token', description: 'A DPoP-bound access token must be sent with the DPoP scheme.' },
  GW_TOKEN_SCHEME_MISMATCH: {
    status: 401,
    error: 'invalid_token',
    challenge: 'token',
    description: 'The access token is not DPoP-bound and must not be sent with the DPoP scheme.',
  },
  GW_BINDING_NOT_ALLOWED: {
    status: 401,
    error: 'invalid_token',
    challenge: 'token',
    description: 'This route does not accept the way this access token is bound.',
  },
  GW_CERT_BINDING_MISMATCH: {
    status: 401,
    error: 'invalid_token',
    challenge: 'token',
    description: 'The access token is bound to a different client certificate.',
  },
  GW_DPOP_BINDING_MISMATCH: { status: 401, error: 'invalid_token', challenge: 'dpop', description: 'Invalid DPoP key binding.' },
  GW_ISSUER_UNAVAILABLE: { status: 503, challenge: 'none', description: 'The token issuer cannot be reached to validate the access token.' },
  GW_INTROSPECTION_THROTTLED: { status: 429, challenge: 'none', description: 'Too many access tokens from this client address are waiting for introspection.' },
  GW_INTROSPECTION_BUSY: { status: 503, challenge: 'none', description: 'Too many access tokens are waiting for introspection.' },

  GW_DPOP_MISSING: { status: 401, error: 'invalid_dpop_proof', challenge: 'dpop', description: 'A DPoP proof is required.' },
  GW_DPOP_MULTIPLE: { status: 400, error: 'invalid_request', challenge: 'dpop', description: 'More than one DPoP header was sent.' },
  GW_DPOP_INVALID: { status: 401, error: 'invalid_dpop_proof', challenge: 'dpop', description: 'The DPoP proof is invalid.' },
  GW_DPOP_NONCE: { status: 401, error: 'use_dpop_nonce', challenge: 'dpop', description: 'Resource server requires nonce in DPoP proof.' },
  GW_DPOP_REPLAY: { status: 401, error: 'invalid_dpop_proof', challenge: 'dpop', description: 'The DPoP proof has already been used.' },
  GW_REPLAY_STORE_UNAVAILABLE: { status: 503, challenge: 'none', description: 'Replay protection is unavailable.' },

  GW_SCOPE_INSUFFICIENT: { status: 403, error: 'insufficient_scope', challenge: 'token', description: 'The access token lacks a scope this route requires.' },

  GW_HEADERS_TOO_LARGE: { status: 431, challenge: 'none', description: 'The request headers are too large.' },
  GW_REQUEST_TIMEOUT: { status: 408, challenge: 'none', description: 'The request took too long to arrive.' },
  GW_BODY_TOO_LARGE: { status: 413, challenge: 'none', description: 'The request body is too large.' },
  GW_BODY_ENCODING_UNSUPPORTED: {
    status: 415,
    challenge: 'none',
    description: 'A form body must be sent without content coding and in UTF-8 or another ASCII-compatible charset.',
  },
  GW_OVERLOADED: { status: 503, challenge: 'none', description: 'The gateway is at its connection limit.' },
  GW_UPSTREAM_UNAVAILABLE: { status: 502, challenge: 'none', description: 'The upstream service cannot be reached.' },
  GW_UPSTREAM_TIMEOUT: { status: 504, challenge: 'none', description: 'The upstream service did not answer in time.' },
  GW_CLIENT_CLOSED: { status: 499, challenge: 'none', description: 'The client closed the connection before the answer was complete.' },
  GW_INTERNAL: { status: 500, challenge: 'none', description: 'The gateway failed to process the request.' },
} as const satisfies Record<string, ErrorSpec>

export type ErrorCode = keyof typeof catalogue

/** The step of the pipeline (or the part of the listener) that refused: with the rule, the structured reason. */
export type CheckName =
  'listener' | 'route' | 'client-certificate' | 'revocation' | 'credentials' | 'token' | 'binding' | 'dpop' | 'scope' | 'replay' | 'body' | 'forwarding'

export interface GatewayErrorOptions {
  /** Internal detail for logs and security events; never sent to the client. */
  readonly detail?: string
  /** The rule within the check (`iat`, `htu`, `ocsp`, …); by default the label the detail starts with (`iat: too old`). */
  readonly rule?: string
  readonly cause?: unknown
  /** RFC 7638 thumbprint of the DPoP key presented, when the refusal is about that key (for the security event). */
  readonly keyThumbprint?: string
}

// `iat: too old` → `iat`; `jwk private: has d` → `jwk private`; a detail without a label has no rule.
const DETAIL_LABEL = /^([a-z][a-z0-9#._ -]{0,39}?): /i

export class GatewayError extends Error {
  readonly code: ErrorCode
  readonly detail: string | undefined
  /** What tests and events match on, where the detail is for humans (as jose's claim errors carry `claim`). */
  readonly rule: string | undefined
  readonly keyThumbprint: string | undefined

  constructor(code: ErrorCode, options: GatewayErrorOptions = {}) {
    super(options.detail ? `${code}: ${options.detail}` : code, { cause: options.cause })
    this.name = 'GatewayError'
    this.code = code
    this.detail = options.detail
    this.rule = options.rule ?? (options.detail === undefined ? undefined : DETAIL_LABEL.exec(options.detail)?.[1])
    this.keyThumbprint = options.keyThumbprint
  }
}

export function refuse(code: ErrorCode, detail?: string, cause?: unknown): never {
  throw new GatewayError(code, { detail, cause })
}

export function isGatewayError(value: unknown): value is GatewayError {
  return value instanceof GatewayError
}
