// The evidence each step of the pipeline hands to the next (see src/authorize.ts).

/** Milliseconds since the epoch. Injected everywhere a check needs the time. */
export type Clock = () => number

export type AuthScheme = 'DPoP' | 'Bearer'

/** A client certificate that passed chain, validity, key-strength and EKU checks. */
export interface ClientCert {
  /** base64url(SHA-256(DER)), the RFC 8705 `x5t#S256` value. */
  readonly thumbprint: string
  readonly subject: string
  readonly issuer: string
  readonly serialNumber: string
  readonly notAfter: number
  /** DER of the leaf then each issuer the handshake or configuration supplied, for revocation. */
  readonly chainDer: readonly Buffer[]
}

/** What the request carried in Authorization, read from rawHeaders. */
export interface PresentedToken {
  readonly scheme: AuthScheme
  readonly value: string
  /** base64url(SHA-256(value)): the DPoP `ath`, and the key of every token cache. */
  readonly hash: string
}

export interface TokenBinding {
  /** RFC 9449 `cnf.jkt`. */
  readonly jkt?: string
  /** RFC 8705 `cnf.x5t#S256`. */
  readonly x5t?: string
}

/** An access token that passed signature/introspection, issuer, audience and time checks. */
export interface AccessToken {
  readonly format: 'jwt' | 'opaque'
  /** Name of the configured issuer that vouched for it. */
  readonly issuerName: string
  readonly iss: string
  readonly sub: string | undefined
  readonly clientId: string | undefined
  readonly scopes: ReadonlySet<string>
  readonly audiences: readonly string[]
  /** Seconds since the epoch; undefined only for introspected tokens without exp. */
  readonly exp: number | undefined
  readonly jti: string | undefined
  readonly binding: TokenBinding
  /** RFC 7662 `token_type` when introspected (RFC 9449 §6.2: must be DPoP for DPoP-bound tokens). */
  readonly tokenType: string | undefined
  /**
   * Set for a token of an issuer behind the authorization-server façade (issuers[].facade.validate): its binding
   * comes from the gateway's binding record, read with the replay claim (src/checks/registry-binding.ts). With
   * 'registry' nothing else vouched for it yet: the record alone is its validation.
   */
  readonly facade?: FacadeValidation
}

/** How a token of an issuer behind the façade is validated besides its binding record. */
export type FacadeValidation = 'introspection' | 'jwks' | 'registry'

/** A DPoP proof that passed every RFC 9449 §4.3 check except replay. */
export interface DpopProof {
  /** RFC 7638 thumbprint of the proof key. */
  readonly jkt: string
  readonly jti: string
  /** Seconds since the epoch. */
  readonly iat: number
  readonly htm: string
  readonly htu: string
  readonly nonce: string | undefined
}

export interface Logger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

/** What a connection's certificate (or a load balancer's forwarded one) was judged to be. */
export type PeerCertificateVerdict =
  { readonly kind: 'absent' } | { readonly kind: 'valid'; readonly cert: ClientCert } | { readonly kind: 'invalid'; readonly reason: string }
