// The admin listener: health, readiness, metrics, and the revoked-token list.
// Bind it to an internal address; it is never for partners.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { equalInConstantTime } from '../util/constant-time.ts'
import { hashToken } from '../checks/credentials.ts'
import type { SecurityEvents } from '../observability/events.ts'
import type { RevokedTokenList } from '../tokens/revoked-tokens.ts'
import type { Logger } from '../types.ts'

/** A Prometheus registry, or the primary's view of every worker's registries. */
export interface MetricsExposition {
  readonly contentType: string
  metrics(): Promise<string>
}

export interface AdminServerDeps {
  readonly exposition: MetricsExposition
  /** Bearer token that authorizes POST /revoked-tokens; the endpoint is off without one. */
  readonly adminToken: string | undefined
  /** Each dependency and whether it can answer now. */
  readonly ready: () => Record<string, boolean> | Promise<Record<string, boolean>>
  readonly revokedTokens: RevokedTokenList
  readonly events: SecurityEvents
  readonly logger: Logger
}

const MAX_ADMIN_BODY = 16 * 1024
const DEFAULT_REVOCATION_TTL_SECONDS = 24 * 60 * 60
const TOKEN_HASH = /^[A-Za-z0-9_-]{43}$/

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function authorized(req: IncomingMessage, adminToken: string): boolean {
  const presented = Buffer.from(req.headers.authorization ?? '')
  const expected = Buffer.from(`Bearer ${adminToken}`)
  return equalInConstantTime(presented, expected)
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0
  const chunks: Buffer[] = []
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_ADMIN_BODY) throw new Error('body too large')
    chunks.push(chunk)
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8'))
}

/** POST /revoked-tokens {"token": "..."} or {"token_hash": "<base64url sha-256>"}, optional "ttl_seconds". */
async function revokeToken(req: IncomingMessage, res: ServerResponse, deps: AdminServerDeps): Promise<void> {
  if (!deps.adminToken) return json(res, 404, { error: 'not_found', error_description: 'set the admin token to enable this endpoint' })
  if (!authorized(req, deps.adminToken)) return json(res, 401, { error: 'unauthorized' })
  let body: { token?: unknown; token_hash?: unknown; ttl_seconds?: unknown }
  try {
    body = (await readJson(req)) as typeof body
  } catch {
    return json(res, 400, { error: 'invalid_request', error_description: 'body must be a JSON object' })
  }
  const hash = typeof body?.token === 'string' ? hashToken(body.token) : body?.token_hash
  const ttl = body?.ttl_seconds ?? DEFAULT_REVOCATION_TTL_SECONDS
  if (typeof hash !== 'string' || !TOKEN_HASH.test(hash))
    return json(res, 400, { error: 'invalid_request', error_description: 'token or token_hash is required' })
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl <= 0)
    return json(res, 400, { error: 'invalid_request', error_description: 'ttl_seconds must be a positive integer' })
  try {
    await deps.revokedTokens.revoke(hash, ttl * 1000)
  } catch {
    return json(res, 503, { error: 'temporarily_unavailable', error_description: 'the replay store cannot answer' })
  }
  deps.events.emit({ event: 'token.revoked', reason: 'admin', sourceAddress: req.socket.remoteAddress, detail: `token hash ${hash}` })
  json(res, 201, { token_hash: hash, ttl_seconds: ttl })
}

export function createAdminServer(deps: AdminServerDeps): Server {
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method === 'GET' && path === '/healthz') return json(res, 200, { status: 'ok' })
    if (req.method === 'GET' && path === '/readyz') {
      const checks = await deps.ready()
      const ready = Object.values(checks).every(Boolean)
      return json(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready', checks })
    }
    if (req.method === 'GET' && path === '/metrics') {
      const text = await deps.exposition.metrics()
      res.writeHead(200, { 'content-type': deps.exposition.contentType })
      res.end(text)
      return
    }
    if (req.method === 'POST' && path === '/revoked-tokens') return revokeToken(req, res, deps)
    json(res, 404, { error: 'not_found' })
  }
  return createServer({ requestTimeout: 10_000, headersTimeout: 5_000 }, (req, res) => {
    handle(req, res).catch((error: unknown) => {
      deps.logger.error({ err: error }, 'admin request failed')
      if (!res.headersSent) json(res, 500, { error: 'server_error' })
      else res.destroy()
    })
  })
}
