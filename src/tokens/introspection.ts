// RFC 7662 token introspection: for opaque access tokens, and as a revocation check for JWTs (SP 5.3.4-3).
// The gateway authenticates to the endpoint (RFC 7662 §2.1) with client_secret_basic or private_key_jwt (RFC 7523).
import { createHash, createPrivateKey, randomUUID, type KeyObject } from 'node:crypto'
import { request } from 'undici'
import { SignJWT } from 'jose'
import { isGatewayError, refuse } from '../errors.ts'
import type { AccessToken } from '../types.ts'
import { createLru } from '../util/lru.ts'
import { clientKey, createIntrospectionLimiter, type LimiterRefusal } from './introspection-limiter.ts'
import { createIssuerAgent, requireHttpsUrl, signingAlgorithms } from './jwks.ts'
import { claimsToAccessToken } from './jwt.ts'
import type { TokenShape } from './token-shape.ts'

export type IntrospectionAuth =
  | { readonly method: 'client_secret_basic'; readonly secret: string }
  | { readonly method: 'private_key_jwt'; readonly privateKeyPem: string; readonly alg: string }

export interface IntrospectionSettings {
  readonly endpoint: string
  readonly clientId: string
  readonly auth: IntrospectionAuth
  /** Upper bound on how long an answer is reused; never past the token's exp (RFC 7662 §4). */
  readonly cacheTtlSeconds: number
  readonly caPem?: string
  /** Entries of each cache (active answers, inactive token hashes). Default 10 000. */
  readonly cacheSize?: number
  readonly timeoutMs?: number
  /** How long an active:false answer is reused, by token hash; 0 never. Default 10 s. */
  readonly inactiveCacheTtlSeconds?: number
  /** Connections to the endpoint, and so the calls in flight at once. Default 16. */
  readonly connections?: number
  /** Calls in flight or waiting for one client address. Default 8. */
  readonly maxPendingPerClient?: number
  /** Calls waiting for a free connection; refused at once past this. Default 64. */
  readonly maxQueued?: number
  readonly maxQueueWaitMs?: number
  /** What a string must look like before it is sent (checked by the token verifier). */
  readonly tokenShape?: TokenShape
}

export type IntrospectionRefusal = LimiterRefusal | 'shape'

/** Counts for the metrics; the issuer is its configured name. */
export interface IntrospectionObserver {
  called(issuer: string, outcome: 'active' | 'inactive' | 'failed'): void
  cacheHit(issuer: string, answer: 'active' | 'inactive'): void
  refused(issuer: string, reason: IntrospectionRefusal): void
}

export interface IntrospectionIssuer {
  readonly name: string
  /** Expected `iss` in answers and the `aud` of private_key_jwt client assertions. */
  readonly issuer: string
  readonly clockToleranceSeconds?: number
}

export interface IntrospectionOptions {
  /** When set, `aud` must contain it (GW_TOKEN_AUDIENCE otherwise, also when `aud` is missing). */
  readonly audience?: string
  /** Overrides settings.cacheTtlSeconds, e.g. a shorter TTL for JWT revocation checks. */
  readonly cacheTtlSeconds?: number
  /** The partner's address: bounds its calls in flight (maxPendingPerClient). */
  readonly clientAddress?: string
}

export interface IntrospectionClient {
  /** An active token (GW_TOKEN_INACTIVE otherwise); GW_ISSUER_UNAVAILABLE when no usable answer comes back. */
  introspect(token: string, options: IntrospectionOptions, nowMs: number): Promise<AccessToken>
  stats(): { readonly hits: number; readonly misses: number; readonly requests: number }
  close(): Promise<void>
}

interface Answer {
  readonly token: AccessToken
  readonly receivedAtMs: number
}

const assertionType = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

// RFC 6749 §2.3.1: client_id and secret are form-encoded before Basic encoding.
const formEncode = (value: string) => new URLSearchParams([['', value]]).toString().slice(1)

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function createIntrospectionClient(issuer: IntrospectionIssuer, settings: IntrospectionSettings, observer?: IntrospectionObserver): IntrospectionClient {
  requireHttpsUrl(settings.endpoint, 'introspection endpoint')
  const { auth } = settings
  let signingKey: KeyObject | undefined
  if (auth.method === 'private_key_jwt') {
    if (!signingAlgorithms.has(auth.alg)) throw new TypeError(`introspection client assertion alg ${auth.alg} is not supported`)
    signingKey = createPrivateKey(auth.privateKeyPem)
  }
  const timeoutMs = settings.timeoutMs ?? 5_000
  const toleranceMs = (issuer.clockToleranceSeconds ?? 10) * 1000
  const connections = settings.connections ?? 16
  const agent = createIssuerAgent({ caPem: settings.caPem, timeoutMs, connections })
  const limiter = createIntrospectionLimiter(
    {
      maxInFlight: connections,
      maxPendingPerClient: settings.maxPendingPerClient ?? 8,
      maxQueued: settings.maxQueued ?? 64,
      maxQueueWaitMs: settings.maxQueueWaitMs ?? 1_000,
    },
    (reason) => observer?.refused(issuer.name, reason),
  )
  const closing = new AbortController()
  const answers = createLru<string, Answer>(settings.cacheSize ?? 10_000)
  // Apart from the active answers, so that a flood of random strings cannot evict them.
  const inactive = createLru<string, number>(settings.cacheSize ?? 10_000)
  const inactiveTtlMs = (settings.inactiveCacheTtlSeconds ?? 10) * 1000
  const inFlight = new Map<string, Promise<Answer>>()
  let hits = 0
  let misses = 0
  let requests = 0

  async function clientAuthentication(body: URLSearchParams, headers: Record<string, string>, nowMs: number): Promise<void> {
    if (auth.method === 'client_secret_basic') {
      headers.authorization = `Basic ${Buffer.from(`${formEncode(settings.clientId)}:${formEncode(auth.secret)}`).toString('base64')}`
      return
    }
    const nowSeconds = Math.floor(nowMs / 1000)
    const assertion = await new SignJWT({})
      .setProtectedHeader({ alg: auth.alg })
      .setIssuer(settings.clientId)
      .setSubject(settings.clientId)
      .setAudience(issuer.issuer)
      .setJti(randomUUID())
      .setIssuedAt(nowSeconds)
      .setExpirationTime(nowSeconds + 60)
      .sign(signingKey as KeyObject)
    body.set('client_assertion_type', assertionType)
    body.set('client_assertion', assertion)
  }

  async function post(token: string, nowMs: number): Promise<unknown> {
    const body = new URLSearchParams({ token, token_type_hint: 'access_token' })
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }
    await clientAuthentication(body, headers, nowMs)
    requests++
    const response = await request(settings.endpoint, {
      dispatcher: agent,
      method: 'POST',
      headers,
      body: body.toString(),
      signal: AbortSignal.any([closing.signal, AbortSignal.timeout(timeoutMs)]),
    })
    if (response.statusCode !== 200) {
      await response.body.dump()
      throw new Error(`status ${response.statusCode}`)
    }
    const contentType = String(response.headers['content-type'] ?? '')
    if (!/^application\/json\s*(;|$)/i.test(contentType)) {
      await response.body.dump()
      throw new Error(`content-type ${contentType}`)
    }
    return JSON.parse(await response.body.text())
  }

  async function ask(token: string, nowMs: number): Promise<Answer> {
    let answer: unknown
    try {
      answer = await post(token, nowMs)
    } catch (error) {
      observer?.called(issuer.name, 'failed')
      const reason = error instanceof Error ? `${(error as { code?: string }).code ?? ''} ${error.message}`.trim() : 'unknown'
      return refuse('GW_ISSUER_UNAVAILABLE', `introspection failed: ${reason}`, error)
    }
    if (!isRecord(answer) || typeof answer.active !== 'boolean') {
      observer?.called(issuer.name, 'failed')
      return refuse('GW_ISSUER_UNAVAILABLE', 'introspection answer is not RFC 7662 JSON')
    }
    observer?.called(issuer.name, answer.active ? 'active' : 'inactive')
    if (!answer.active) refuse('GW_TOKEN_INACTIVE', 'active: false')
    if (answer.iss !== undefined && answer.iss !== issuer.issuer) refuse('GW_TOKEN_INVALID', 'iss')
    if (typeof answer.nbf === 'number' && answer.nbf * 1000 > nowMs + toleranceMs) refuse('GW_TOKEN_INVALID', 'nbf')
    const tokenType = answer.token_type
    if (tokenType !== undefined && typeof tokenType !== 'string') refuse('GW_TOKEN_INVALID', 'token_type is not a string')
    const accessToken = claimsToAccessToken(answer, { format: 'opaque', issuerName: issuer.name, iss: issuer.issuer, tokenType })
    return { token: accessToken, receivedAtMs: nowMs }
  }

  async function lookup(token: string, ttlMs: number, nowMs: number, clientAddress: string | undefined): Promise<Answer> {
    const key = createHash('sha256').update(token).digest('base64url')
    const cached = answers.get(key)
    if (cached && nowMs < cached.receivedAtMs + ttlMs && (cached.token.exp === undefined || nowMs < cached.token.exp * 1000)) {
      hits++
      observer?.cacheHit(issuer.name, 'active')
      return cached
    }
    const inactiveAtMs = inactive.get(key)
    if (inactiveAtMs !== undefined && nowMs < inactiveAtMs + inactiveTtlMs) {
      hits++
      observer?.cacheHit(issuer.name, 'inactive')
      refuse('GW_TOKEN_INACTIVE', 'active: false (cached)')
    }
    misses++
    const joined = inFlight.get(key)
    if (joined) return joined
    const release = await limiter.acquire(clientKey(clientAddress))
    // The same token may have been sent while this call waited for its slot.
    const started = inFlight.get(key)
    if (started) {
      release()
      return started
    }
    const pending = ask(token, nowMs)
      .then(
        (answer) => {
          answers.set(key, answer)
          return answer
        },
        (error: unknown) => {
          if (isGatewayError(error) && error.code === 'GW_TOKEN_INACTIVE' && inactiveTtlMs > 0) inactive.set(key, nowMs)
          throw error
        },
      )
      .finally(() => {
        release()
        inFlight.delete(key)
      })
    inFlight.set(key, pending)
    return pending
  }

  return {
    async introspect(token, options, nowMs) {
      if (closing.signal.aborted) refuse('GW_ISSUER_UNAVAILABLE', 'introspection client closed')
      const ttlMs = (options.cacheTtlSeconds ?? settings.cacheTtlSeconds) * 1000
      let answer: Answer
      try {
        answer = await lookup(token, ttlMs, nowMs, options.clientAddress)
      } catch (error) {
        if (isGatewayError(error)) throw error
        return refuse('GW_ISSUER_UNAVAILABLE', 'introspection failed', error)
      }
      const { exp, audiences } = answer.token
      if (exp !== undefined && exp * 1000 <= nowMs - toleranceMs) refuse('GW_TOKEN_EXPIRED', 'exp')
      if (options.audience !== undefined && !audiences.includes(options.audience)) refuse('GW_TOKEN_AUDIENCE', 'aud')
      return answer.token
    },
    stats: () => ({ hits, misses, requests }),
    async close() {
      closing.abort()
      limiter.close()
      await agent.destroy()
    },
  }
}
