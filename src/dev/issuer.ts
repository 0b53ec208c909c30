// A development token issuer: publishes its JWKS over HTTPS and mints RFC 9068 access
// tokens bound to a DPoP key or a client certificate. For the demo and the tests only.
import { createServer, type Server } from 'node:https'
import { randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose'
import type { Issued } from './pki.ts'

export interface MintOptions {
  readonly sub?: string
  readonly clientId?: string
  readonly scope?: string
  readonly audience?: string | string[]
  readonly jkt?: string
  readonly x5t?: string
  readonly expiresInSeconds?: number
  readonly typ?: string
  readonly issuer?: string
  readonly extraClaims?: Record<string, unknown>
}

export interface DevIssuer {
  readonly issuer: string
  readonly jwksUri: string
  readonly introspectionUri: string
  /** Number of JWKS downloads served. */
  readonly jwksRequests: () => number
  mint(options?: MintOptions): Promise<string>
  /** Registers an opaque token for the introspection endpoint. */
  registerOpaque(token: string, claims: Record<string, unknown>): void
  close(): Promise<void>
}

export interface DevIssuerOptions {
  readonly tls: Issued
  readonly chainPem: string
  readonly audience: string
  readonly host?: string
  readonly port?: number
  /** client_secret_basic credentials the introspection endpoint accepts. */
  readonly introspectionClient?: { id: string; secret: string }
  /** Each introspection answer is sent this much later (a slow authorization server, for the flood bench). */
  readonly introspectionDelayMs?: number
}

export async function startDevIssuer(options: DevIssuerOptions): Promise<DevIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
  const kid = randomUUID()
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }
  const opaque = new Map<string, Record<string, unknown>>()
  let jwksRequests = 0
  const host = options.host ?? '127.0.0.1'

  const server: Server = createServer({ cert: options.chainPem, key: options.tls.keyPem, minVersion: 'TLSv1.2' }, (req, res) => {
    if (req.method === 'GET' && req.url === '/jwks') {
      jwksRequests++
      res.setHeader('content-type', 'application/jwk-set+json')
      res.end(JSON.stringify({ keys: [publicJwk] }))
      return
    }
    if (req.method === 'POST' && req.url === '/introspect') {
      const expected = options.introspectionClient
      const auth = req.headers.authorization ?? ''
      const basic = expected ? 'Basic ' + Buffer.from(`${encodeURIComponent(expected.id)}:${encodeURIComponent(expected.secret)}`).toString('base64') : undefined
      if (!basic || auth !== basic) {
        res.statusCode = 401
        res.end(JSON.stringify({ error: 'invalid_client' }))
        return
      }
      let body = ''
      req.setEncoding('utf8')
      req.on('data', (chunk: string) => (body += chunk))
      req.on('end', () => {
        const token = new URLSearchParams(body).get('token') ?? ''
        const claims = opaque.get(token)
        const answer = () => {
          res.setHeader('content-type', 'application/json')
          res.end(JSON.stringify(claims ? { active: true, ...claims } : { active: false }))
        }
        if (options.introspectionDelayMs) setTimeout(answer, options.introspectionDelayMs)
        else answer()
      })
      return
    }
    res.statusCode = 404
    res.end()
  })
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, host, resolve))
  const base = `https://${host}:${(server.address() as AddressInfo).port}`

  return {
    issuer: base,
    jwksUri: `${base}/jwks`,
    introspectionUri: `${base}/introspect`,
    jwksRequests: () => jwksRequests,
    async mint(mint = {}) {
      const now = Math.floor(Date.now() / 1000)
      const cnf = mint.jkt || mint.x5t ? { ...(mint.jkt && { jkt: mint.jkt }), ...(mint.x5t && { 'x5t#S256': mint.x5t }) } : undefined
      return new SignJWT({
        client_id: mint.clientId ?? 'partner-a',
        scope: mint.scope ?? 'accounts:read',
        ...(cnf && { cnf }),
        ...mint.extraClaims,
      })
        .setProtectedHeader({ alg: 'ES256', typ: mint.typ ?? 'at+jwt', kid })
        .setIssuer(mint.issuer ?? base)
        .setSubject(mint.sub ?? 'customer-1')
        .setAudience(mint.audience ?? options.audience)
        .setIssuedAt(now)
        .setJti(randomUUID())
        .setExpirationTime(now + (mint.expiresInSeconds ?? 300))
        .sign(privateKey as CryptoKey)
    },
    registerOpaque(token, claims) {
      opaque.set(token, claims)
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}
