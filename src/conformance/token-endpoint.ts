// The client side of an RFC 6749 §4.4 client-credentials grant at a real authorization
// server, as a FAPI 2.0 partner makes it: private_key_jwt (OIDC Core §9, audience = the
// issuer, FAPI 2.0 SP §5.3.2.1-8) or tls_client_auth (RFC 8705 §2), and a DPoP-bound
// (RFC 9449 §5, with the §8 nonce retry) or certificate-bound (RFC 8705 §3) access token.
import type { Clock } from '../types.ts'
import { asksForNonce, isNonce } from './challenges.ts'
import { CLIENT_ASSERTION_TYPE, signClientAssertion } from './client-assertion.ts'
import { headerValues, sendHttp, describeFailure, type HttpOutcome, type HttpRequest, type TlsIdentity } from './http.ts'
import { validProof, type DpopKey, type ProofAlgorithm } from './proofs.ts'

export type ClientAuthentication =
  | { readonly method: 'private_key_jwt'; readonly signingKeyPem: string; readonly alg: ProofAlgorithm; readonly kid: string | undefined }
  | { readonly method: 'tls_client_auth' }

export interface TokenClient {
  readonly clientId: string
  readonly auth: ClientAuthentication
  /** The TLS client certificate: needed for tls_client_auth and for certificate-bound tokens; presented whenever given. */
  readonly identity: TlsIdentity | undefined
}

export interface TokenEndpointSettings {
  readonly endpoint: string
  /** The authorization server's issuer identifier: the only `aud` of client assertions. */
  readonly issuer: string
  readonly scope: string | undefined
  readonly caPem: string | undefined
  readonly timeoutMs: number
  readonly now: Clock
}

export type TokenRequestBinding = { readonly kind: 'dpop'; readonly key: DpopKey } | { readonly kind: 'mtls' }

export interface TokenExchange {
  readonly request: HttpRequest
  readonly outcome: HttpOutcome
}

export interface ObtainedToken {
  readonly accessToken: string
  readonly tokenType: 'DPoP' | 'Bearer'
}

export interface TokenEndpointHooks {
  /** Every value that must be kept out of reports, as soon as it exists. */
  readonly onSecret: (secret: string) => void
  readonly onExchange: (exchange: TokenExchange) => void
}

export class TokenEndpointError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'TokenEndpointError'
  }
}

// RFC 9449 §8: the client retries with the nonce; twice is what the conformance suite allows.
const MAX_NONCE_RETRIES = 2

export function errorOf(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: unknown; error_description?: unknown }
    if (typeof parsed.error === 'string') return `${parsed.error}${typeof parsed.error_description === 'string' ? ` (${parsed.error_description})` : ''}`
  } catch {
    // not JSON
  }
  return 'no OAuth error in the body'
}

/** RFC 9449 §4.2: `htu` is the endpoint URI without query and fragment. */
export function htuOf(endpoint: string): string {
  const url = new URL(endpoint)
  return `${url.protocol}//${url.host}${url.pathname}`
}

export async function requestClientCredentialsToken(
  settings: TokenEndpointSettings,
  client: TokenClient,
  binding: TokenRequestBinding,
  hooks: TokenEndpointHooks,
): Promise<ObtainedToken> {
  // Presented whenever there is one: mTLS ecosystems may require it in the handshake even for DPoP-bound tokens.
  const useCertificate = client.identity !== undefined
  if ((client.auth.method === 'tls_client_auth' || binding.kind === 'mtls') && client.identity === undefined) {
    throw new TokenEndpointError(
      `client ${client.clientId}: ${client.auth.method === 'tls_client_auth' ? 'tls_client_auth' : 'a certificate-bound token'} needs a client certificate`,
    )
  }
  let nonce: string | undefined
  for (let attempt = 0; ; attempt++) {
    const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: client.clientId })
    if (settings.scope !== undefined) form.set('scope', settings.scope)
    if (client.auth.method === 'private_key_jwt') {
      const assertion = await signClientAssertion(client.clientId, client.auth, settings.issuer, Math.floor(settings.now() / 1000))
      hooks.onSecret(assertion)
      form.set('client_assertion_type', CLIENT_ASSERTION_TYPE)
      form.set('client_assertion', assertion)
    }
    const headers: [string, string][] = [
      ['Content-Type', 'application/x-www-form-urlencoded'],
      ['Accept', 'application/json'],
    ]
    if (binding.kind === 'dpop') {
      const proof = await validProof({
        key: binding.key,
        htm: 'POST',
        htu: htuOf(settings.endpoint),
        accessToken: undefined,
        nonce,
        iat: Math.floor(settings.now() / 1000),
      })
      hooks.onSecret(proof)
      headers.push(['DPoP', proof])
    }
    const request: HttpRequest = {
      method: 'POST',
      url: settings.endpoint,
      headers,
      body: form.toString(),
      ...(useCertificate && { identity: client.identity }),
    }
    const outcome = await sendHttp(request, { caPem: settings.caPem, servername: undefined, timeoutMs: settings.timeoutMs, now: settings.now })
    hooks.onExchange({ request, outcome })
    if (outcome.kind === 'failure') throw new TokenEndpointError(`token endpoint ${settings.endpoint}: ${describeFailure(outcome)}`)

    if (binding.kind === 'dpop' && asksForNonce(outcome.status, outcome.rawHeaders, outcome.body)) {
      const nonces = headerValues(outcome.rawHeaders, 'dpop-nonce')
      if (nonces.length !== 1 || !isNonce(nonces[0]!))
        throw new TokenEndpointError('token endpoint asked for a DPoP nonce without exactly one valid DPoP-Nonce header (RFC 9449 §8.1)')
      if (attempt >= MAX_NONCE_RETRIES) throw new TokenEndpointError(`token endpoint still asks for a DPoP nonce after ${MAX_NONCE_RETRIES} retries`)
      nonce = nonces[0]
      continue
    }
    if (outcome.status !== 200) throw new TokenEndpointError(`token endpoint answered ${outcome.status}: ${errorOf(outcome.body)}`)

    let parsed: { access_token?: unknown; token_type?: unknown; refresh_token?: unknown }
    try {
      parsed = JSON.parse(outcome.body) as typeof parsed
    } catch {
      throw new TokenEndpointError('token endpoint answered 200 without a JSON body')
    }
    if (typeof parsed.refresh_token === 'string') hooks.onSecret(parsed.refresh_token)
    if (typeof parsed.access_token !== 'string' || parsed.access_token.length === 0) throw new TokenEndpointError('token response has no access_token')
    hooks.onSecret(parsed.access_token)
    const expected = binding.kind === 'dpop' ? 'DPoP' : 'Bearer'
    // RFC 9449 §5: a DPoP-bound token is issued with token_type DPoP; the scheme name is case-insensitive (RFC 6749 §7.1).
    if (typeof parsed.token_type !== 'string' || parsed.token_type.toLowerCase() !== expected.toLowerCase()) {
      throw new TokenEndpointError(`token_type is ${JSON.stringify(parsed.token_type)}, expected ${expected}${binding.kind === 'dpop' ? ' (RFC 9449 §5)' : ''}`)
    }
    return { accessToken: parsed.access_token, tokenType: expected }
  }
}
