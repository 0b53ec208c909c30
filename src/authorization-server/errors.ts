// The authorization-server façade's refusals, answered in the OAuth form of RFC 6749 §5.2 (and
// RFC 9449 §5, §8, RFC 7009 §2.2.1), not the resource form of src/errors.ts: at a token endpoint a
// bad DPoP proof is a 400, and `invalid_client` is the answer to every failed client
// authentication. src/respond.ts turns a code into its answer; docs/errors.md lists them all,
// kept in step by test/unit/authorization-server/errors.test.ts.

export type OAuthErrorValue =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'invalid_dpop_proof'
  | 'use_dpop_nonce'
  | 'unsupported_token_type'
  | 'unsupported_response_type'
  | 'invalid_request_object'
  | 'invalid_request_uri'
  | 'temporarily_unavailable'
  | 'server_error'

export interface OAuthErrorSpec {
  readonly status: number
  readonly error: OAuthErrorValue
  readonly description: string
}

export const oauthCatalogue = {
  AS_METHOD_NOT_ALLOWED: { status: 405, error: 'invalid_request', description: 'This method is not allowed at this endpoint.' },
  AS_REQUEST_MALFORMED: { status: 400, error: 'invalid_request', description: 'The request is malformed.' },
  AS_BODY_TOO_LARGE: { status: 413, error: 'invalid_request', description: 'The request body is too large.' },
  AS_RATE_LIMITED: { status: 429, error: 'temporarily_unavailable', description: 'Too many requests; try again shortly.' },

  AS_CLIENT_AUTH_MISSING: { status: 401, error: 'invalid_client', description: 'Client authentication is required.' },
  AS_CLIENT_AUTH_METHOD: { status: 401, error: 'invalid_client', description: 'This client authentication method is not accepted.' },
  AS_CLIENT_UNKNOWN: { status: 401, error: 'invalid_client', description: 'Client authentication failed.' },
  AS_CLIENT_ASSERTION_INVALID: { status: 401, error: 'invalid_client', description: 'The client assertion is invalid.' },
  AS_CLIENT_ASSERTION_REPLAY: { status: 401, error: 'invalid_client', description: 'The client assertion has already been used.' },
  AS_CLIENT_CERTIFICATE_INVALID: { status: 401, error: 'invalid_client', description: 'The TLS client certificate does not authenticate this client.' },

  AS_GRANT_TYPE_UNSUPPORTED: { status: 400, error: 'unsupported_grant_type', description: 'This grant type is not supported.' },
  AS_GRANT_TYPE_NOT_ALLOWED: { status: 400, error: 'unauthorized_client', description: 'This client may not use this grant type.' },
  AS_SCOPE_NOT_ALLOWED: { status: 400, error: 'invalid_scope', description: 'A requested scope is not allowed for this client.' },
  AS_GRANT_INVALID: { status: 400, error: 'invalid_grant', description: 'The grant is invalid, expired or was issued to another client.' },
  AS_SENDER_CONSTRAINT_MISSING: {
    status: 400,
    error: 'invalid_request',
    description: 'Tokens are issued only sender-constrained: send a DPoP proof or use a TLS client certificate.',
  },

  AS_DPOP_INVALID: { status: 400, error: 'invalid_dpop_proof', description: 'The DPoP proof is invalid.' },
  AS_DPOP_NONCE: { status: 400, error: 'use_dpop_nonce', description: 'Authorization server requires nonce in DPoP proof.' },
  AS_DPOP_REPLAY: { status: 400, error: 'invalid_dpop_proof', description: 'The DPoP proof has already been used.' },

  AS_RESPONSE_TYPE_UNSUPPORTED: {
    status: 400,
    error: 'unsupported_response_type',
    description: 'Only the authorization code flow (response_type=code) is supported.',
  },
  AS_REDIRECT_URI_INVALID: { status: 400, error: 'invalid_request', description: 'The redirect_uri is missing or not registered for this client.' },
  AS_PKCE_INVALID: { status: 400, error: 'invalid_request', description: 'PKCE with code_challenge_method S256 is required.' },
  AS_REQUEST_OBJECT_INVALID: { status: 400, error: 'invalid_request_object', description: 'The request object is invalid.' },
  AS_REQUEST_URI_INVALID: {
    status: 400,
    error: 'invalid_request_uri',
    description: 'The request_uri is unknown, expired, already used or not for this client.',
  },
  AS_AUTHORIZATION_STATE_INVALID: {
    status: 400,
    error: 'invalid_request',
    description: 'This authorization response does not belong to a request in progress.',
  },

  AS_TOKEN_TYPE_UNSUPPORTED: { status: 400, error: 'unsupported_token_type', description: 'This token type cannot be revoked here.' },

  AS_LEGACY_REFUSED: { status: 400, error: 'invalid_request', description: 'The authorization server refused the request.' },
  AS_LEGACY_CREDENTIALS: { status: 500, error: 'server_error', description: 'The gateway could not authenticate to the authorization server.' },
  AS_LEGACY_BAD_ANSWER: { status: 502, error: 'server_error', description: 'The authorization server gave an answer the gateway cannot use.' },
  AS_LEGACY_UNAVAILABLE: { status: 503, error: 'temporarily_unavailable', description: 'The authorization server cannot be reached.' },
  AS_LEGACY_TIMEOUT: { status: 504, error: 'temporarily_unavailable', description: 'The authorization server did not answer in time.' },
  AS_STORE_UNAVAILABLE: { status: 503, error: 'temporarily_unavailable', description: 'The gateway cannot reach its state store.' },
  AS_INTERNAL: { status: 500, error: 'server_error', description: 'The gateway failed to process the request.' },
} as const satisfies Record<string, OAuthErrorSpec>

export type OAuthErrorCode = keyof typeof oauthCatalogue

/** The step of the façade that refused (the security event's `fapi.check`). */
export type OAuthCheckName =
  | 'request'
  | 'client-authentication'
  | 'grant'
  | 'dpop'
  | 'sender-constraint'
  | 'legacy'
  | 'state'
  | 'internal'
  | 'authorization-request'
  | 'authorization-response'

export interface OAuthErrorOptions {
  /** Internal detail for logs and security events; never sent to the client. */
  readonly detail?: string
  /** The rule within the check; by default the label the detail starts with (`aud: not the issuer`). */
  readonly rule?: string
  readonly cause?: unknown
  /**
   * A legacy server's own `error` value passed on (RFC 6749 §5.2) in place of the catalogue's,
   * for AS_LEGACY_REFUSED only: invalid_grant, invalid_scope, unauthorized_client, invalid_request.
   */
  readonly passOnError?: 'invalid_request' | 'invalid_grant' | 'invalid_scope' | 'unauthorized_client'
}

const DETAIL_LABEL = /^([a-z][a-z0-9#._ -]{0,39}?): /i

export class OAuthError extends Error {
  readonly code: OAuthErrorCode
  readonly detail: string | undefined
  readonly rule: string | undefined
  readonly passOnError: OAuthErrorOptions['passOnError']

  constructor(code: OAuthErrorCode, options: OAuthErrorOptions = {}) {
    super(options.detail ? `${code}: ${options.detail}` : code, { cause: options.cause })
    this.name = 'OAuthError'
    this.code = code
    this.detail = options.detail
    this.rule = options.rule ?? (options.detail === undefined ? undefined : DETAIL_LABEL.exec(options.detail)?.[1])
    this.passOnError = options.passOnError
  }

  /** The `error` value the client receives. */
  get error(): OAuthErrorValue {
    return this.passOnError ?? oauthCatalogue[this.code].error
  }
}

export function oauthRefuse(code: OAuthErrorCode, detail?: string, cause?: unknown): never {
  throw new OAuthError(code, { detail, cause })
}
