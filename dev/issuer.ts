// A development token issuer: publishes its JWKS over HTTPS and mints RFC 9068 access
// tokens bound to a DPoP key or a client certificate. For the demo and the tests only.
import { createServer, type Server } from 'node:https'
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto'
import type { ServerResponse } from 'node:http'
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
  /** Opens POST /mint to holders of this secret, for `fapi-gateway token` in another process. */
  readonly mintSecret?: string
}

/** What POST /mint accepts: a token bound to exactly one of a DPoP key and a certificate. */
export interface MintRequest {
  readonly jkt?: string
  readonly x5t?: string
  readonly scope?: string
  readonly clientId?: string
  readonly sub?: string
}

const THUMBPRINT = /^[A-Za-z0-9_-]{43}$/
const MINT_LIFETIME_SECONDS = 3600

function parseMintRequest(body: string): MintRequest | string {
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch {
    return 'body must be JSON'
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'body must be a JSON object'
  const request = parsed as Record<string, unknown>
  for (const key of Object.keys(request)) if (!['jkt', 'x5t', 'scope', 'clientId', 'sub'].includes(key)) return `unknown field ${JSON.stringify(key)}`
  for (const key of ['scope', 'clientId', 'sub'])
    if (request[key] !== undefined && (typeof request[key] !== 'string' || request[key] === '')) return `${key} must be a non-empty string`
  const bindings = (['jkt', 'x5t'] as const).filter((key) => request[key] !== undefined)
  if (bindings.length !== 1) return 'give exactly one of jkt (DPoP key thumbprint) and x5t (certificate thumbprint)'
  if (typeof request[bindings[0]!] !== 'string' || !THUMBPRINT.test(request[bindings[0]!] as string))
    return `${bindings[0]} must be a base64url SHA-256 thumbprint`
  return request as MintRequest
}

function sameSecret(given: string, expected: string): boolean {
  const digest = (value: string) => createHash('sha256').update(value).digest()
  return timingSafeEqual(digest(given), digest(expected))
}

export async function startDevIssuer(options: DevIssuerOptions): Promise<DevIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
  const kid = randomUUID()
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }
  const opaque = new Map<string, Record<string, unknown>>()
  let jwksRequests = 0
  const host = options.host ?? '127.0.0.1'

  const answer = (res: ServerResponse, status: number, body: Record<string, unknown>) => {
    res.statusCode = status
    res.setHeader('content-type', 'application/json')
    res.setHeader('cache-control', 'no-store')
    res.end(JSON.stringify(body))
  }
  const server: Server = createServer({ cert: options.chainPem, key: options.tls.keyPem, minVersion: 'TLSv1.2' }, (req, res) => {
    if (req.method === 'POST' && req.url === '/mint' && options.mintSecret !== undefined) {
      const secret = options.mintSecret
      if (!sameSecret(req.headers.authorization ?? '', `Bearer ${secret}`)) return answer(res, 401, { error: 'invalid_client' })
      let body = ''
      req.setEncoding('utf8')
      req.on('data', (chunk: string) => {
        body += chunk
        if (body.length > 16_384) req.destroy()
      })
      req.on('end', () => {
        const request = parseMintRequest(body)
        if (typeof request === 'string') return answer(res, 400, { error: 'invalid_request', error_description: request })
        issuer.mint({ ...request, expiresInSeconds: MINT_LIFETIME_SECONDS }).then(
          (token) => answer(res, 200, { access_token: token, token_type: request.jkt ? 'DPoP' : 'Bearer', expires_in: MINT_LIFETIME_SECONDS }),
          () => answer(res, 500, { error: 'server_error' }),
        )
      })
      return
    }
    if (req.method === 'GET' && req.url === '/jwks') {
      jwksRequests++
      res.setHeader('content-type', 'application/jwk-set+json')
      res.end(JSON.stringify({ keys: [publicJwk] }))
      return
    }
    if (req.method === 'POST' && req.url === '/introspect') {
      const expected = options.introspectionClient
      const auth = req.headers.authorization ?? ''
      const basic = expected
        ? 'Basic ' + Buffer.from(`${encodeURIComponent(expected.id)}:${encodeURIComponent(expected.secret)}`).toString('base64')
        : undefined
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
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const base = `https://${host}:${(server.address() as AddressInfo).port}`

  const issuer: DevIssuer = {
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
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
  return issuer
}
