// A real legacy OAuth 2.0 server for the authorization-server façade's tests and demo: oidc-provider configured as a
// ten-year-old product would be. Plain OAuth 2.0 with client secrets (client_secret_basic, client_secret_post),
// no DPoP, no PAR, no mTLS, PKCE not required; opaque access tokens, or unbound JWTs as a second configuration.
// Served over HTTPS on 127.0.0.1 with a server certificate from the dev PKI; records what it was asked (never a
// secret) and can be made to hang or go down.
import { createServer, type Server } from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { EventEmitter, once } from 'node:events'
import { exportJWK, generateKeyPair } from 'jose'
import { Agent, request } from 'undici'
import { chainPem, createDevPki, type DevPki } from './pki.ts'

// oidc-provider announces its development defaults (in-memory adapter, development interactions, ...) on the
// console; tests do not want them. Only its own prefixed lines are dropped.
function silenceOidcProvider(): void {
  const marker = Symbol.for('fapi-gateway.test.oidc-provider-silenced')
  const global = globalThis as Record<symbol, unknown>
  if (global[marker]) return
  global[marker] = true
  for (const level of ['info', 'warn'] as const) {
    const original = console[level].bind(console)
    console[level] = (...args: unknown[]) => {
      if (typeof args[0] === 'string' && args[0].replace(/^\x1b\[[0-9;]*m/, '').startsWith('oidc-provider ')) return
      original(...args)
    }
  }
}
silenceOidcProvider()
const { default: Provider } = await import('oidc-provider')

export interface LegacyClientRegistration {
  readonly clientId: string
  readonly clientSecret: string
  /** How the client authenticates at the token, introspection and revocation endpoints. Default client_secret_basic. */
  readonly authentication?: 'client_secret_basic' | 'client_secret_post'
  /** Default ['client_credentials']. */
  readonly grantTypes?: readonly ('client_credentials' | 'authorization_code' | 'refresh_token')[]
  readonly scopes?: readonly string[]
  readonly redirectUris?: readonly string[]
}

export interface LegacyServerOptions {
  readonly clients: readonly LegacyClientRegistration[]
  /** Opaque access tokens (default), or JWTs signed with the key published at jwksUri, with no cnf. */
  readonly accessTokenFormat?: 'opaque' | 'jwt'
  /** Lifetime of access tokens in seconds. Default 300. */
  readonly accessTokenTtlSeconds?: number
  /** The resource every access token is issued for (its aud). Default https://api.bank.example. */
  readonly resource?: string
  /** The PKI whose server certificate it presents (a new one when not given). */
  readonly pki?: DevPki
}

export interface LegacyRequest {
  readonly method: string
  /** The path without the query. */
  readonly path: string
  /** The client id from Basic authentication, or the form's client_id. */
  readonly clientId?: string
  readonly grantType?: string
}

export interface LegacyServer {
  /** https://127.0.0.1:<port> */
  readonly url: string
  readonly issuer: string
  readonly tokenEndpoint: string
  readonly revocationEndpoint: string
  readonly introspectionEndpoint: string
  readonly authorizationEndpoint: string
  readonly jwksUri: string
  /** The root CA that issued the server certificate (a CA file for the gateway). */
  readonly caPem: string
  readonly resource: string
  /** Every request received, in order; `requestsTo('/token')` for one endpoint. */
  readonly requests: readonly LegacyRequest[]
  requestsTo(path: string): LegacyRequest[]
  /** Resolves once `count` requests in all have been received (answered or not). */
  received(count: number): Promise<void>
  /** Accepts requests and never answers them, until resume(). */
  hang(): void
  resume(): void
  /** Closes the listener and every connection: the port refuses connections until start(). */
  stop(): Promise<void>
  /** Listens again on the same port. */
  start(): Promise<void>
  close(): Promise<void>
}

const LEGACY_AUTH_METHODS = ['client_secret_basic', 'client_secret_post']

function basicClientId(header: string | undefined): string | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '')
  if (!match) return undefined
  const decoded = Buffer.from(match[1], 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon < 0) return undefined
  try {
    return decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '))
  } catch {
    return undefined
  }
}

// Reads the form to record it and hands oidc-provider the same bytes through a replayed request.
async function recordRequest(req: IncomingMessage): Promise<{ record: LegacyRequest; body: Buffer | undefined }> {
  const path = (req.url ?? '/').split('?')[0]
  let body: Buffer | undefined
  let form = new URLSearchParams()
  if (req.method === 'POST' && /^application\/x-www-form-urlencoded/i.test(req.headers['content-type'] ?? '')) {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    body = Buffer.concat(chunks)
    form = new URLSearchParams(body.toString('utf8'))
  }
  const clientId = basicClientId(req.headers.authorization) ?? form.get('client_id') ?? undefined
  const grantType = form.get('grant_type') ?? undefined
  return { record: { method: req.method ?? 'GET', path, ...(clientId && { clientId }), ...(grantType && { grantType }) }, body }
}

// oidc-provider takes an already read body from req.body (its upstream-parser fallback).
function replay(req: IncomingMessage, body: Buffer): void {
  ;(req as IncomingMessage & { body?: Buffer }).body = body
}

export async function startLegacyServer(options: LegacyServerOptions): Promise<LegacyServer> {
  const pki = options.pki ?? (await createDevPki())
  const format = options.accessTokenFormat ?? 'opaque'
  const accessTokenTtl = options.accessTokenTtlSeconds ?? 300
  const resource = options.resource ?? 'https://api.bank.example'
  const allScopes = [...new Set(options.clients.flatMap((client) => client.scopes ?? []))]
  const { privateKey } = await generateKeyPair('ES256', { extractable: true })
  const signingKey = { ...(await exportJWK(privateKey)), kid: 'legacy-1', alg: 'ES256', use: 'sig' }

  const requests: LegacyRequest[] = []
  const arrivals = new EventEmitter()
  const sockets = new Set<Socket>()
  const hanging = new Set<ServerResponse>()
  let hang = false
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined

  const server: Server = createServer({ cert: chainPem(pki.server, pki.intermediate), key: pki.server.keyPem }, (req, res) => {
    recordRequest(req).then(
      ({ record, body }) => {
        requests.push(record)
        arrivals.emit('request')
        if (hang) {
          hanging.add(res)
          return
        }
        if (body) replay(req, body)
        handler!(req, res)
      },
      () => res.destroy(),
    )
  })
  server.on('secureConnection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  const url = `https://127.0.0.1:${port}`

  const provider = new Provider(url, {
    jwks: { keys: [signingKey] },
    clients: options.clients.map((client) => {
      const grantTypes = client.grantTypes ?? ['client_credentials']
      return {
        client_id: client.clientId,
        client_secret: client.clientSecret,
        grant_types: [...grantTypes],
        response_types: grantTypes.includes('authorization_code') ? ['code'] : [],
        redirect_uris: [...(client.redirectUris ?? [])],
        scope: (client.scopes ?? []).join(' ') || undefined,
        token_endpoint_auth_method: client.authentication ?? 'client_secret_basic',
      }
    }),
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    clientAuthMethods: LEGACY_AUTH_METHODS,
    responseTypes: ['code'],
    scopes: ['openid', 'offline_access', ...allScopes],
    pkce: { required: () => false },
    findAccount: async (_ctx: unknown, sub: string) => ({ accountId: sub, claims: async () => ({ sub }) }),
    // A legacy server hands a refresh token to every client allowed the grant.
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(grant: string): boolean }) => client.grantTypeAllowed('refresh_token'),
    ttl: {
      AccessToken: accessTokenTtl,
      ClientCredentials: accessTokenTtl,
      AuthorizationCode: 60,
      RefreshToken: 24 * 60 * 60,
      Grant: 24 * 60 * 60,
      Interaction: 10 * 60,
      Session: 24 * 60 * 60,
      IdToken: 60 * 60,
    },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true, allowedPolicy: async () => true },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx: unknown, client: { clientId: string }, token: { clientId?: string }) => token.clientId === client.clientId,
      },
      dPoP: { enabled: false },
      pushedAuthorizationRequests: { enabled: false },
      mTLS: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      userinfo: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => resource,
        useGrantedResource: async () => true,
        getResourceServerInfo: async () => ({
          scope: allScopes.join(' '),
          audience: resource,
          accessTokenTTL: accessTokenTtl,
          accessTokenFormat: format,
          ...(format === 'jwt' && { jwt: { sign: { alg: 'ES256' } } }),
        }),
      },
    },
  })
  // Koa would print errors of its own to stderr.
  provider.silent = true
  handler = provider.callback()

  async function listen(): Promise<void> {
    server.listen(port, '127.0.0.1')
    await once(server, 'listening')
  }

  function dropHanging(): void {
    for (const res of hanging) res.destroy()
    hanging.clear()
  }

  async function stop(): Promise<void> {
    if (!server.listening) return
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    dropHanging()
    for (const socket of sockets) socket.destroy()
    await closed
  }

  return {
    url,
    issuer: url,
    tokenEndpoint: `${url}/token`,
    revocationEndpoint: `${url}/token/revocation`,
    introspectionEndpoint: `${url}/token/introspection`,
    authorizationEndpoint: `${url}/auth`,
    jwksUri: `${url}/jwks`,
    caPem: pki.root.certPem,
    resource,
    requests,
    requestsTo: (path) => requests.filter((request) => request.path === path),
    async received(count) {
      while (requests.length < count) await once(arrivals, 'request')
    },
    hang() {
      hang = true
    },
    resume() {
      hang = false
      dropHanging()
    },
    stop,
    start: listen,
    close: stop,
  }
}

export interface SignInOptions {
  readonly clientId: string
  readonly redirectUri: string
  readonly scope: string
  /** Whatever login the development login page is given becomes the subject. Default 'alice'. */
  readonly login?: string
  readonly state?: string
}

/**
 * Drives the authorization code flow through oidc-provider's development login and consent pages, as a
 * browser would (following redirects, keeping its cookies), and returns the code sent to the redirect URI.
 */
export async function signInForCode(server: LegacyServer, options: SignInOptions): Promise<string> {
  const agent = new Agent({ connect: { ca: server.caPem } })
  const cookies = new Map<string, string>()
  const keepCookies = (setCookie: string | string[] | undefined) => {
    for (const line of [setCookie ?? []].flat()) {
      const [pair] = line.split(';')
      const at = pair.indexOf('=')
      const name = pair.slice(0, at).trim()
      const value = pair.slice(at + 1).trim()
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) cookies.delete(name)
      else cookies.set(name, value)
    }
  }
  const send = async (target: string, form?: Record<string, string>) => {
    const response = await request(new URL(target, server.url), {
      dispatcher: agent,
      method: form ? 'POST' : 'GET',
      headers: {
        cookie: [...cookies].map(([name, value]) => `${name}=${value}`).join('; '),
        ...(form && { 'content-type': 'application/x-www-form-urlencoded' }),
      },
      body: form && new URLSearchParams(form).toString(),
    })
    keepCookies(response.headers['set-cookie'])
    const text = await response.body.text()
    return { status: response.statusCode, location: response.headers.location as string | undefined, text }
  }
  try {
    const authorization = new URL(server.authorizationEndpoint)
    authorization.search = new URLSearchParams({
      response_type: 'code',
      client_id: options.clientId,
      redirect_uri: options.redirectUri,
      scope: options.scope,
      state: options.state ?? 'state-1',
    }).toString()
    let target = authorization.href
    for (let step = 0; step < 10; step++) {
      if (target.startsWith(options.redirectUri)) {
        const redirected = new URL(target)
        const code = redirected.searchParams.get('code')
        if (!code) throw new Error(`no code in the redirect: ${redirected.searchParams.get('error') ?? 'no error'}`)
        return code
      }
      const page = await send(target)
      if (page.location) {
        target = new URL(page.location, target).href
        continue
      }
      const prompt = /name="prompt" value="(login|consent)"/.exec(page.text)?.[1]
      const action = /<form[^>]* action="([^"]+)"/.exec(page.text)?.[1]
      if (page.status !== 200 || !prompt || !action) throw new Error(`unexpected page (status ${page.status}) at ${new URL(target).pathname}`)
      const submitted = await send(new URL(action, target).href, prompt === 'login' ? { prompt, login: options.login ?? 'alice', password: 'any' } : { prompt })
      if (!submitted.location) throw new Error(`the ${prompt} form was not accepted (status ${submitted.status})`)
      target = new URL(submitted.location, target).href
    }
    throw new Error('too many redirects')
  } finally {
    await agent.close()
  }
}
