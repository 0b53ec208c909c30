// What the authorization-server checks share during one run: the token endpoint (configured,
// or `token_endpoint` of the RFC 8414 metadata), the server's latest DPoP nonce, the partner's
// DPoP key, and what was issued (for the refresh and entropy checks); and one way to send a
// token request that differs from a valid one in exactly what a check names.
import { isNonce, asksForNonce } from './challenges.ts'
import { CLIENT_ASSERTION_TYPE, describeAssertion, signClientAssertion, type AssertionVariant } from './client-assertion.ts'
import type { AuthorizationServerSettings, ClientSettings } from './config.ts'
import type { Recorder, RunContext } from './context.ts'
import { headerValues, sendHttp, type HttpOutcome, type HttpRequest, type TlsIdentity } from './http.ts'
import { generateDpopKey, validProof, type DpopKey } from './proofs.ts'
import { htuOf } from './token-endpoint.ts'

export interface AuthorizationServerState {
  metadata: Record<string, unknown> | undefined
  tokenEndpoint: string | undefined
  /** Why there is no token endpoint. */
  endpointProblem: string | undefined
  nonce: string | undefined
  key: DpopKey | undefined
  /** Whether the valid request got a token: refusals prove nothing otherwise. */
  issuing: boolean | undefined
  refreshToken: string | undefined
  readonly accessTokens: string[]
  readonly refreshTokens: string[]
}

const states = new WeakMap<RunContext, AuthorizationServerState>()

export function asState(ctx: RunContext): AuthorizationServerState {
  let state = states.get(ctx)
  if (!state) {
    state = {
      metadata: undefined,
      tokenEndpoint: undefined,
      endpointProblem: undefined,
      nonce: undefined,
      key: undefined,
      issuing: undefined,
      refreshToken: undefined,
      accessTokens: [],
      refreshTokens: [],
    }
    states.set(ctx, state)
  }
  return state
}

export function asSettings(ctx: RunContext): AuthorizationServerSettings {
  const settings = ctx.settings.authorizationServer
  if (!settings) throw new Error('no authorizationServer is configured')
  return settings
}

/** RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path. */
export function metadataUrl(issuer: string): string {
  const url = new URL(issuer)
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '')
  return `${url.origin}/.well-known/oauth-authorization-server${path}`
}

export async function dpopKeyOf(ctx: RunContext): Promise<DpopKey> {
  const state = asState(ctx)
  state.key ??= await generateDpopKey(ctx.settings.clients.primary.dpopAlgorithm)
  return state.key
}

export type ProofBuilder = (input: { key: DpopKey; htu: string; nonce: string | undefined; iat: number; attempt: number }) => Promise<string>

export const validTokenProof: ProofBuilder = ({ key, htu, nonce, iat }) => validProof({ key, htm: 'POST', htu, accessToken: undefined, nonce, iat })

export interface TokenRequestSpec {
  readonly label: string
  /** What is special about the request, for the report. */
  readonly note: string
  /** Whose authentication is sent. */
  readonly client: 'primary' | 'second'
  /** The form's client_id; the client's own by default. */
  readonly clientId?: string
  /** Replaces grant_type (client_credentials) and adds parameters. */
  readonly form?: Readonly<Record<string, string>>
  /** For private_key_jwt clients: a variant of the assertion, or none at all. */
  readonly assertion?: AssertionVariant | 'none'
  /** dpop mode: a valid proof by default; mtls mode: none. */
  readonly proof?: ProofBuilder | 'none'
  /** The client's own certificate (when it has one) by default. */
  readonly certificate?: 'own' | 'primary' | 'none'
  /** false: one request, no retry when the server asks for a DPoP nonce. */
  readonly retryNonce?: false
  /** Another endpoint of the server (PAR); the token endpoint by default. */
  readonly endpoint?: string
  /** Only `form` and the client authentication: no default grant_type and scope (PAR, the code exchange). */
  readonly bareForm?: true
}

export interface TokenAnswer {
  readonly outcome: HttpOutcome
  /** The parsed JSON body, when there is one. */
  readonly json: Record<string, unknown> | undefined
}

// RFC 9449 §8: retry with the server's nonce; twice is what the conformance suite allows.
const MAX_NONCE_RETRIES = 2

function parseJson(outcome: HttpOutcome): Record<string, unknown> | undefined {
  if (outcome.kind !== 'answer') return undefined
  try {
    const parsed = JSON.parse(outcome.body) as unknown
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

function clientOf(ctx: RunContext, role: 'primary' | 'second'): ClientSettings {
  const client = ctx.settings.clients[role]
  if (!client?.clientId || !client.auth) throw new Error(`clients.${role} needs clientId and auth for the authorization-server checks`)
  return client
}

function identityFor(ctx: RunContext, spec: TokenRequestSpec, client: ClientSettings): TlsIdentity | undefined {
  switch (spec.certificate ?? 'own') {
    case 'none':
      return undefined
    case 'primary':
      return ctx.settings.clients.primary.identity
    case 'own':
      return client.identity
  }
}

/** A GET with the partner's certificate (when it has one), recorded; the 200 body is kept out of the report. */
export async function fetchJson(ctx: RunContext, recorder: Recorder, label: string, url: string): Promise<TokenAnswer> {
  const identity = ctx.settings.clients.primary.identity
  const request: HttpRequest = { method: 'GET', url, headers: [['Accept', 'application/json']], ...(identity && { identity }) }
  const outcome = await sendHttp(request, { caPem: asSettings(ctx).caPem, servername: undefined, timeoutMs: ctx.settings.requestTimeoutMs, now: ctx.now })
  ctx.recordTokenExchange(recorder, { request, outcome }, label)
  return { outcome, json: parseJson(outcome) }
}

export async function sendTokenRequest(ctx: RunContext, recorder: Recorder, spec: TokenRequestSpec): Promise<TokenAnswer> {
  const state = asState(ctx)
  const settings = asSettings(ctx)
  const endpoint = spec.endpoint ?? state.tokenEndpoint
  if (endpoint === undefined) throw new Error(`no token endpoint (${state.endpointProblem ?? 'see as-metadata-published'})`)
  const client = clientOf(ctx, spec.client)
  const proof = spec.proof ?? (ctx.settings.mode === 'dpop' ? validTokenProof : 'none')
  const identity = identityFor(ctx, spec, client)
  for (let attempt = 0; ; attempt++) {
    const nowSeconds = ctx.nowSeconds()
    const form = new URLSearchParams(spec.bareForm ? {} : { grant_type: 'client_credentials' })
    if (settings.scope !== undefined && !spec.bareForm) form.set('scope', settings.scope)
    for (const [name, value] of Object.entries(spec.form ?? {})) form.set(name, value)
    form.set('client_id', spec.clientId ?? client.clientId!)
    const notes = [spec.note]
    if (client.auth!.method === 'private_key_jwt' && spec.assertion !== 'none') {
      const assertion = await signClientAssertion(client.clientId!, client.auth!, settings.issuer, nowSeconds, spec.assertion)
      ctx.redactor.add(assertion)
      form.set('client_assertion_type', CLIENT_ASSERTION_TYPE)
      form.set('client_assertion', assertion)
      notes.push(describeAssertion(assertion, nowSeconds))
    }
    const headers: [string, string][] = [
      ['Content-Type', 'application/x-www-form-urlencoded'],
      ['Accept', 'application/json'],
    ]
    if (proof !== 'none') {
      const jws = await proof({ key: await dpopKeyOf(ctx), htu: htuOf(endpoint), nonce: state.nonce, iat: nowSeconds, attempt })
      ctx.redactor.add(jws)
      headers.push(['DPoP', jws])
    }
    notes.push(`client certificate: ${identity?.label ?? 'none'}`)
    const request: HttpRequest = { method: 'POST', url: endpoint, headers, body: form.toString(), ...(identity && { identity }) }
    const outcome = await sendHttp(request, { caPem: settings.caPem, servername: undefined, timeoutMs: ctx.settings.requestTimeoutMs, now: ctx.now })
    const json = parseJson(outcome)
    if (outcome.kind === 'answer') {
      for (const name of ['access_token', 'refresh_token'] as const) {
        const value = json?.[name]
        if (typeof value === 'string') {
          ctx.redactor.add(value)
          if (outcome.status === 200) (name === 'access_token' ? state.accessTokens : state.refreshTokens).push(value)
        }
      }
    }
    ctx.recordTokenExchange(recorder, { request, outcome }, attempt === 0 ? spec.label : `${spec.label} — retry ${attempt} with the server's DPoP nonce`, notes)
    if (outcome.kind !== 'answer') return { outcome, json }
    const nonces = headerValues(outcome.rawHeaders, 'dpop-nonce')
    if (nonces.length === 1 && isNonce(nonces[0]!)) state.nonce = nonces[0]
    const retry = proof !== 'none' && spec.retryNonce !== false && attempt < MAX_NONCE_RETRIES && nonces.length === 1 && isNonce(nonces[0]!)
    if (!retry || !asksForNonce(outcome.status, outcome.rawHeaders, outcome.body)) return { outcome, json }
  }
}

/** The OAuth error of an answer (RFC 6749 §5.2), or undefined. */
export function oauthError(answer: TokenAnswer): string | undefined {
  const error = answer.json?.error
  return typeof error === 'string' ? error : undefined
}
