// A partner's client as the demo and the tests play it: TLS with an optional client
// certificate, DPoP proofs signed with its own key, and raw control over the headers.
import { randomUUID } from 'node:crypto'
import { hashToken } from '../checks/credentials.ts'
import { Agent, request } from 'undici'
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose'

export type ProofAlgorithm = 'ES256' | 'PS256' | 'EdDSA'

export interface DpopKey {
  readonly alg: ProofAlgorithm
  readonly privateKey: CryptoKey
  readonly publicJwk: JWK
  /** RFC 7638 thumbprint: what the token's cnf.jkt must say. */
  readonly jkt: string
}

export async function generateDpopKey(alg: ProofAlgorithm = 'ES256'): Promise<DpopKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' && { crv: 'Ed25519' }) })
  const publicJwk = await exportJWK(publicKey)
  return { alg, privateKey, publicJwk, jkt: await calculateJwkThumbprint(publicJwk, 'sha256') }
}

export interface ProofClaims {
  readonly htm: string
  readonly htu: string
  readonly accessToken?: string
  readonly jti?: string
  readonly iat?: number
  readonly nonce?: string
  readonly extraClaims?: Record<string, unknown>
  readonly typ?: string
}

/** RFC 9449 §4.2 `ath`: the same hash the gateway keys its token caches with. */
export const accessTokenHash = hashToken

export async function createProof(key: DpopKey, claims: ProofClaims): Promise<string> {
  return new SignJWT({
    htm: claims.htm,
    htu: claims.htu,
    jti: claims.jti ?? randomUUID(),
    ...(claims.accessToken !== undefined && { ath: accessTokenHash(claims.accessToken) }),
    ...(claims.nonce !== undefined && { nonce: claims.nonce }),
    ...claims.extraClaims,
  })
    .setProtectedHeader({ alg: key.alg, typ: claims.typ ?? 'dpop+jwt', jwk: key.publicJwk })
    .setIssuedAt(claims.iat ?? Math.floor(Date.now() / 1000))
    .sign(key.privateKey)
}

export interface ClientIdentity {
  readonly certPem: string
  readonly keyPem: string
}

export interface PartnerResponse {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: string
  readonly json: Record<string, unknown> | undefined
}

export interface PartnerClient {
  /** Sends raw headers exactly as given (repeated names allowed, as [name, value] pairs). */
  send(method: string, path: string, headers: [string, string][], body?: string): Promise<PartnerResponse>
  close(): Promise<void>
}

/** caPem: the trust anchors for the server certificate; the system's when not given. */
export function createPartnerClient(options: { baseUrl: string; caPem?: string; identity?: ClientIdentity; localAddress?: string }): PartnerClient {
  const agent = new Agent({
    ...(options.localAddress && { localAddress: options.localAddress }),
    connect: {
      ...(options.caPem !== undefined && { ca: options.caPem }),
      ...(options.identity && { cert: options.identity.certPem, key: options.identity.keyPem }),
      rejectUnauthorized: true,
    },
  })
  return {
    async send(method, path, headers, body) {
      const response = await request(options.baseUrl + path, { method: method as 'GET', headers: headers.flat(), body, dispatcher: agent })
      const text = await response.body.text()
      let json: Record<string, unknown> | undefined
      try {
        json = JSON.parse(text) as Record<string, unknown>
      } catch {
        json = undefined
      }
      return { status: response.statusCode, headers: response.headers, body: text, json }
    },
    close: () => agent.close(),
  }
}

/** The `error` parameter of the challenge for a scheme, from WWW-Authenticate. */
export function challengeError(response: PartnerResponse, scheme: 'DPoP' | 'Bearer'): string | undefined {
  const header = response.headers['www-authenticate']
  const values = Array.isArray(header) ? header : header ? [header] : []
  for (const value of values) {
    if (!value.toLowerCase().startsWith(scheme.toLowerCase())) continue
    return /error="([^"]*)"/.exec(value)?.[1]
  }
  return undefined
}
