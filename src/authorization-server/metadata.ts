// Authorization-server metadata (RFC 8414; OpenID Connect Discovery 1.0 when the legacy server
// issues ID tokens): the gateway is the issuer, its own endpoints, and only FAPI 2.0 values
// (FAPI 2.0 SP §5.3.2.1-1, §5.4.1; RFC 8705 §3.3; RFC 9449 §5.1).

export interface MetadataSettings {
  readonly issuer: string
  /** Where the endpoints are reached: listener.publicBaseUrl. */
  readonly publicBaseUrl: string
  readonly tokenPath: string
  readonly revocationPath: string | undefined
  /** Set when the front channel is on (issue 14): PAR and the authorization endpoint. */
  readonly frontChannel?: { readonly parPath: string; readonly authorizationPath: string; readonly requestObjectRequired: boolean }
  readonly dpopAlgorithms: readonly string[]
  /** Set when the gateway has keys of its own (authorizationServer.keys): its JWKS. */
  readonly jwksPath?: string
  readonly openid: boolean
  /** The operator's further values; never one the gateway sets itself. */
  readonly extra: Readonly<Record<string, string | readonly string[] | boolean>>
}

export const FAPI_SIGNING_ALGORITHMS = ['PS256', 'ES256', 'EdDSA'] as const
export const CLIENT_AUTH_METHODS = ['private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth'] as const

/** Metadata names the gateway sets: the operator's `metadata` may not replace them. */
export const GATEWAY_METADATA_NAMES = [
  'issuer',
  'token_endpoint',
  'revocation_endpoint',
  'token_endpoint_auth_methods_supported',
  'token_endpoint_auth_signing_alg_values_supported',
  'revocation_endpoint_auth_methods_supported',
  'revocation_endpoint_auth_signing_alg_values_supported',
  'grant_types_supported',
  'dpop_signing_alg_values_supported',
  'tls_client_certificate_bound_access_tokens',
  'code_challenge_methods_supported',
  'pushed_authorization_request_endpoint',
  'authorization_endpoint',
  'require_pushed_authorization_requests',
  'response_types_supported',
  'response_modes_supported',
  'authorization_response_iss_parameter_supported',
  'request_object_signing_alg_values_supported',
  'require_signed_request_object',
  'authorization_signing_alg_values_supported',
  'request_object_encryption_alg_values_supported',
  'request_object_encryption_enc_values_supported',
] as const

export const OAUTH_METADATA_PATH = '/.well-known/oauth-authorization-server'
export const OPENID_METADATA_PATH = '/.well-known/openid-configuration'

/** RFC 8414 §3: the well-known suffix goes between the host and the issuer's path; OpenID Discovery §4 appends it. */
export function metadataPaths(settings: Pick<MetadataSettings, 'issuer' | 'openid'>): string[] {
  const issuerPath = new URL(settings.issuer).pathname.replace(/\/$/, '')
  const paths = [`${OAUTH_METADATA_PATH}${issuerPath}`]
  if (settings.openid) paths.push(`${issuerPath}${OPENID_METADATA_PATH}`)
  return paths
}

export function authorizationServerMetadata(settings: MetadataSettings): Record<string, unknown> {
  const at = (path: string) => new URL(path, settings.publicBaseUrl).href
  return {
    ...settings.extra,
    issuer: settings.issuer,
    token_endpoint: at(settings.tokenPath),
    ...(settings.revocationPath !== undefined && {
      revocation_endpoint: at(settings.revocationPath),
      revocation_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
      revocation_endpoint_auth_signing_alg_values_supported: FAPI_SIGNING_ALGORITHMS,
    }),
    token_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
    token_endpoint_auth_signing_alg_values_supported: FAPI_SIGNING_ALGORITHMS,
    grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
    dpop_signing_alg_values_supported: settings.dpopAlgorithms,
    tls_client_certificate_bound_access_tokens: true,
    ...(settings.jwksPath !== undefined && { jwks_uri: at(settings.jwksPath) }),
    code_challenge_methods_supported: ['S256'],
    ...(settings.frontChannel && {
      // FAPI 2.0 SP §5.3.2.2: PAR only, code only, RFC 9207 iss in every authorization response.
      pushed_authorization_request_endpoint: at(settings.frontChannel.parPath),
      authorization_endpoint: at(settings.frontChannel.authorizationPath),
      require_pushed_authorization_requests: true,
      response_types_supported: ['code'],
      response_modes_supported: ['query'],
      authorization_response_iss_parameter_supported: true,
      request_object_signing_alg_values_supported: FAPI_SIGNING_ALGORITHMS,
      ...(settings.frontChannel.requestObjectRequired && { require_signed_request_object: true }),
    }),
  }
}
