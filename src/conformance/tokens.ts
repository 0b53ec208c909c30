// Where the runner's access tokens come from: the authorization server the deployment trusts
// (client credentials at its token endpoint), or, for our own gateway in development, a
// function that mints them in-process with the development issuer.
import { X509Certificate } from 'node:crypto'
import { certificateThumbprint as certificateThumbprintOfDer } from '../x509.ts'
import type { TlsIdentity } from './http.ts'
import type { DpopKey } from './proofs.ts'
import { requestClientCredentialsToken, TokenEndpointError, type TokenClient, type TokenEndpointHooks, type TokenEndpointSettings } from './token-endpoint.ts'

export type ClientRole = 'primary' | 'second' | 'untrusted' | 'expired' | 'revoked'

export type TokenBinding =
  | { readonly kind: 'dpop'; readonly client: ClientRole; readonly key: DpopKey; readonly jkt: string }
  | { readonly kind: 'mtls'; readonly client: ClientRole; readonly identity: TlsIdentity; readonly x5t: string }

export interface IssuedToken {
  readonly accessToken: string
  readonly tokenType: 'DPoP' | 'Bearer'
}

/** Mints an access token bound as asked (development issuer, tests). A bare string is taken as the token. */
export type MintToken = (binding: TokenBinding) => Promise<string | IssuedToken>

export interface TokenSource {
  readonly description: string
  /** Whether tokens can be had for any certificate (the untrusted, expired and revoked ones too). */
  readonly bindsAnyCertificate: boolean
  obtain(binding: TokenBinding, hooks: TokenEndpointHooks): Promise<IssuedToken>
}

/** RFC 8705 §3.1: base64url SHA-256 of the DER of the leaf certificate. */
export function certificateThumbprint(certPem: string): string {
  return certificateThumbprintOfDer(new X509Certificate(certPem).raw)
}

export function createMintedTokenSource(mint: MintToken): TokenSource {
  return {
    description: 'minted in-process (development issuer)',
    bindsAnyCertificate: true,
    async obtain(binding, hooks) {
      const minted = await mint(binding)
      const issued: IssuedToken = typeof minted === 'string' ? { accessToken: minted, tokenType: binding.kind === 'dpop' ? 'DPoP' : 'Bearer' } : minted
      hooks.onSecret(issued.accessToken)
      return issued
    },
  }
}

export function createTokenEndpointSource(settings: TokenEndpointSettings, clients: Partial<Record<ClientRole, TokenClient>>): TokenSource {
  return {
    description: `client credentials at ${settings.endpoint}`,
    bindsAnyCertificate: false,
    async obtain(binding, hooks) {
      const client = clients[binding.client]
      if (!client) throw new TokenEndpointError(`no ${binding.client} client is configured for the token endpoint`)
      const withIdentity: TokenClient = binding.kind === 'mtls' ? { ...client, identity: binding.identity } : client
      return requestClientCredentialsToken(settings, withIdentity, binding.kind === 'dpop' ? { kind: 'dpop', key: binding.key } : { kind: 'mtls' }, hooks)
    },
  }
}
