// A real HTTPS authorization-server stand-in for token tests: serves a JWKS and an introspection
// endpoint on 127.0.0.1:0 with the dev PKI server certificate (chain: server + intermediate).
import { createServer, type Server } from 'node:https'
import type { IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose'
import type { DevPki } from '../../../dev/pki.ts'

export interface IntrospectionCall {
  readonly headers: IncomingHttpHeaders
  readonly form: URLSearchParams
}

export interface IntrospectionReply {
  readonly status?: number
  readonly contentType?: string
  readonly body: unknown
}

export interface IssuerServer {
  readonly origin: string
  readonly jwksUri: string
  readonly introspectionEndpoint: string
  jwks: { keys: JWK[] }
  jwksStatus: number
  jwksRequests: number
  readonly introspectionCalls: IntrospectionCall[]
  introspect: (call: IntrospectionCall) => IntrospectionReply | Promise<IntrospectionReply>
  stop(): Promise<void>
}

export async function startIssuerServer(pki: DevPki): Promise<IssuerServer> {
  const state: IssuerServer = {
    origin: '',
    jwksUri: '',
    introspectionEndpoint: '',
    jwks: { keys: [] },
    jwksStatus: 200,
    jwksRequests: 0,
    introspectionCalls: [],
    introspect: () => ({ body: { active: false } }),
    stop: async () => undefined,
  }
  const server: Server = createServer({ key: pki.server.keyPem, cert: [pki.server.certPem, pki.intermediate.certPem].join('\n') }, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      void (async () => {
        if (req.method === 'GET' && req.url === '/jwks') {
          state.jwksRequests++
          res.writeHead(state.jwksStatus, { 'content-type': 'application/jwk-set+json' })
          res.end(JSON.stringify(state.jwks))
          return
        }
        if (req.method === 'POST' && req.url === '/introspect') {
          const call = { headers: req.headers, form: new URLSearchParams(Buffer.concat(chunks).toString()) }
          state.introspectionCalls.push(call)
          const reply = await state.introspect(call)
          res.writeHead(reply.status ?? 200, { 'content-type': reply.contentType ?? 'application/json' })
          res.end(typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body))
          return
        }
        res.writeHead(404).end()
      })()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const origin = `https://127.0.0.1:${port}`
  return Object.assign(state, {
    origin,
    jwksUri: `${origin}/jwks`,
    introspectionEndpoint: `${origin}/introspect`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  })
}

export interface SigningKey {
  readonly alg: string
  readonly kid: string
  readonly privateKey: CryptoKey
  readonly publicJwk: JWK
}

export async function createSigningKey(alg: 'PS256' | 'ES256' | 'EdDSA' | 'RS256', kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' && { crv: 'Ed25519' }) })
  return { alg, kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid } }
}

export interface TokenOptions {
  readonly header?: Record<string, unknown>
  readonly claims?: Record<string, unknown>
}

export const issuerId = 'https://as.example.test'
export const audienceId = 'https://api.example.test'

/** An RFC 9068 access token: typ at+jwt, iss, aud, exp 5 min after nowMs, iat, cnf.jkt. */
export function signAccessToken(key: SigningKey, nowMs: number, options: TokenOptions = {}): Promise<string> {
  const now = Math.floor(nowMs / 1000)
  const claims = {
    iss: issuerId,
    aud: audienceId,
    sub: 'user-1',
    client_id: 'client-1',
    scope: 'accounts payments',
    jti: `jti-${Math.random()}`,
    iat: now,
    exp: now + 300,
    cnf: { jkt: 'thumbprint-1' },
    ...options.claims,
  }
  for (const [name, value] of Object.entries(claims)) if (value === undefined) delete (claims as Record<string, unknown>)[name]
  const header = { alg: key.alg, kid: key.kid, typ: 'at+jwt', ...options.header }
  for (const [name, value] of Object.entries(header)) if (value === undefined) delete (header as Record<string, unknown>)[name]
  return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(key.privateKey)
}
