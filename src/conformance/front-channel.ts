// What the authorization-code checks share: the front channel's endpoints (from the RFC 8414
// metadata), the scripted browser, and the three legs of a flow as a partner and its customer
// make them: a pushed authorization request (RFC 9126) that differs from a valid one in what a
// check names, the browser from the authorization endpoint through the login to the redirect
// URI, and the code exchange (RFC 6749 §4.1.3 with PKCE and DPoP).
import { createHash, createPrivateKey, randomBytes, randomUUID } from 'node:crypto'
import { SignJWT } from 'jose'
import { asSettings, asState, dpopKeyOf, fetchJson, metadataUrl, sendTokenRequest, type ProofBuilder, type TokenAnswer } from './authorization-server.ts'
import type { FrontChannelSettings } from './config.ts'
import type { Recorder, RunContext } from './context.ts'
import { htuOf, type CallSpec } from './context.ts'
import { validProof } from './proofs.ts'
import type { HttpOutcome } from './http.ts'
import { createBrowser, type Browser, type BrowseResult } from './user-agent.ts'

export interface FrontChannelState {
  /** Why the front channel cannot be assessed (no metadata, no endpoints), once known. */
  problem: string | undefined
  parEndpoint: string | undefined
  authorizationEndpoint: string | undefined
  /** Whether a valid flow got a code and a token for it: refusals prove nothing otherwise. */
  working: boolean | undefined
  /** The code of the valid flow, already redeemed once, and the access token it got (for the reuse checks). */
  redeemed: { readonly code: string; readonly verifier: string; readonly accessToken: string } | undefined
  /** The status the target answered the valid flow's access token with, just before the code was reused. */
  targetStatusBeforeReuse: number | undefined
  browser: Browser | undefined
  /** Every code and request_uri issued during the run, for the entropy check. */
  readonly codes: string[]
  readonly requestUris: string[]
}

const states = new WeakMap<RunContext, FrontChannelState>()

export function frontState(ctx: RunContext): FrontChannelState {
  let state = states.get(ctx)
  if (!state) {
    state = {
      problem: undefined,
      parEndpoint: undefined,
      authorizationEndpoint: undefined,
      working: undefined,
      redeemed: undefined,
      targetStatusBeforeReuse: undefined,
      browser: undefined,
      codes: [],
      requestUris: [],
    }
    states.set(ctx, state)
  }
  return state
}

export function frontSettings(ctx: RunContext): FrontChannelSettings {
  const settings = asSettings(ctx).frontChannel
  if (!settings) throw new Error('no authorizationServer.frontChannel is configured')
  return settings
}

/** The metadata, read here when the token-endpoint checks did not run (sections: [authorization-code]). */
export async function frontMetadata(ctx: RunContext, recorder: Recorder): Promise<Record<string, unknown> | string> {
  const state = asState(ctx)
  if (state.metadata) return state.metadata
  const settings = asSettings(ctx)
  const url = metadataUrl(settings.issuer)
  const answer = await fetchJson(ctx, recorder, 'metadata', url)
  if (answer.outcome.kind === 'failure' || answer.outcome.status !== 200 || !answer.json) return `${url} gave no JSON metadata`
  if (answer.json.issuer !== settings.issuer) return `the metadata's issuer is ${JSON.stringify(answer.json.issuer)}, not ${settings.issuer}`
  state.metadata = answer.json
  state.tokenEndpoint ??= settings.tokenEndpoint ?? (typeof answer.json.token_endpoint === 'string' ? answer.json.token_endpoint : undefined)
  return answer.json
}

/** The run's browser: its cookies (the customer's session at the server) are kept from flow to flow. */
export function browserOf(ctx: RunContext): Browser {
  const state = frontState(ctx)
  state.browser ??= newBrowser(ctx)
  return state.browser
}

/** A browser without cookies: a customer who has no session yet. */
export function newBrowser(ctx: RunContext): Browser {
  return createBrowser({ caPem: asSettings(ctx).caPem, timeoutMs: ctx.settings.requestTimeoutMs, now: ctx.now, forms: frontSettings(ctx).forms })
}

export interface Pkce {
  readonly verifier: string
  readonly challenge: string
}

export function newPkce(): Pkce {
  const verifier = randomBytes(32).toString('base64url')
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') }
}

export function randomValue(bytes = 16): string {
  return randomBytes(bytes).toString('base64url')
}

export interface PushSpec {
  readonly label?: string
  readonly note: string
  readonly client?: 'primary' | 'second'
  /** Changes to the valid parameters; null removes one. */
  readonly params?: Readonly<Record<string, string | null>>
  /** Replaces the parameters altogether (a signed request object). */
  readonly form?: Readonly<Record<string, string>>
  /** dpop mode: a valid proof by default (binding the code to the run's key, RFC 9449 §10). */
  readonly proof?: ProofBuilder | 'none'
  /** Form parameters sent beside the request object, when one is used (dpop_jkt). */
  readonly outside?: Readonly<Record<string, string>>
  /** Plain form parameters even where the deployment uses signed request objects. */
  readonly unsigned?: true
}

export interface Pushed {
  readonly answer: TokenAnswer
  readonly requestUri: string | undefined
  readonly expiresIn: number | undefined
  readonly pkce: Pkce
  readonly state: string | undefined
  readonly params: Readonly<Record<string, string>>
}

export function validParams(ctx: RunContext, pkce: Pkce, state: string): Record<string, string> {
  const settings = frontSettings(ctx)
  const scope = settings.scope ?? asSettings(ctx).scope
  return {
    response_type: 'code',
    redirect_uri: settings.redirectUri,
    ...(scope !== undefined && { scope }),
    code_challenge: pkce.challenge,
    code_challenge_method: 'S256',
    state,
  }
}

export async function push(ctx: RunContext, recorder: Recorder, spec: PushSpec): Promise<Pushed> {
  const endpoint = frontState(ctx).parEndpoint
  if (endpoint === undefined) throw new Error('no pushed_authorization_request_endpoint (see as-front-channel-metadata)')
  const pkce = newPkce()
  const params: Record<string, string> = spec.form ? { ...spec.form } : validParams(ctx, pkce, randomValue())
  for (const [name, value] of Object.entries(spec.params ?? {})) {
    if (value === null) delete params[name]
    else params[name] = value
  }
  let form: Record<string, string> = { ...params, ...spec.outside }
  if (frontSettings(ctx).requestObject && !spec.form && !spec.unsigned) {
    const request = await signRequestObject(ctx, params)
    ctx.redactor.add(request)
    form = { request, ...spec.outside }
  }
  const answer = await sendTokenRequest(ctx, recorder, {
    label: spec.label ?? 'pushed authorization request',
    note: spec.note,
    client: spec.client ?? 'primary',
    form,
    endpoint,
    bareForm: true,
    ...(spec.proof !== undefined && { proof: spec.proof }),
  })
  const requestUri = answer.outcome.kind === 'answer' && answer.outcome.status === 201 ? answer.json?.request_uri : undefined
  const expiresIn = answer.json?.expires_in
  if (typeof requestUri === 'string') {
    ctx.redactor.add(requestUri)
    frontState(ctx).requestUris.push(requestUri)
  }
  return {
    answer,
    requestUri: typeof requestUri === 'string' ? requestUri : undefined,
    expiresIn: typeof expiresIn === 'number' ? expiresIn : undefined,
    pkce,
    state: params.state,
    params,
  }
}

export interface Authorized {
  readonly browsed: BrowseResult
  /** The authorization response's parameters, when the browser reached the redirect URI. */
  readonly response: URLSearchParams | undefined
  readonly code: string | undefined
}

/** The browser from the authorization endpoint (client_id, request_uri and `extra`) to the redirect URI. */
export async function authorize(
  ctx: RunContext,
  recorder: Recorder,
  query: Readonly<Record<string, string>>,
  options: { readonly fillForms?: false; readonly browser?: Browser } = {},
): Promise<Authorized> {
  const endpoint = frontState(ctx).authorizationEndpoint
  if (endpoint === undefined) throw new Error('no authorization_endpoint (see as-front-channel-metadata)')
  const start = new URL(endpoint)
  for (const [name, value] of Object.entries(query)) start.searchParams.set(name, value)
  const browser = options.browser ?? browserOf(ctx)
  const browsed = await browser.browse(start.href, { stopAt: frontSettings(ctx).redirectUri, ...(options.fillForms === false && { fillForms: false }) })
  let response: URLSearchParams | undefined
  if (browsed.end.kind === 'redirect') {
    // RFC 6749 §4.1.2 puts the response in the query; a fragment would mean an implicit-style answer.
    const url = browsed.end.url
    response = new URLSearchParams(url.search || url.hash.slice(1))
    // Known to the redactor before any step is recorded (a redirect's body may repeat its Location).
    for (const name of ['code', 'access_token', 'id_token']) {
      const value = response.get(name)
      if (value) ctx.redactor.add(value)
    }
  }
  for (const step of browsed.steps) ctx.recordTokenExchange(recorder, step, step.label)
  const code = response?.get('code') ?? undefined
  if (code !== undefined) frontState(ctx).codes.push(code)
  return { browsed, response, code }
}

export function clientIdOf(ctx: RunContext, role: 'primary' | 'second' = 'primary'): string {
  const id = ctx.settings.clients[role]?.clientId
  if (id === undefined) throw new Error(`clients.${role}.clientId is needed`)
  return id
}

export interface ExchangeSpec {
  readonly note: string
  readonly code: string
  /** undefined leaves code_verifier out. */
  readonly verifier: string | undefined
  readonly client?: 'primary' | 'second'
  readonly proof?: ProofBuilder | 'none'
}

export function exchange(ctx: RunContext, recorder: Recorder, spec: ExchangeSpec): Promise<TokenAnswer> {
  return sendTokenRequest(ctx, recorder, {
    label: 'code exchange',
    note: spec.note,
    client: spec.client ?? 'primary',
    bareForm: true,
    form: {
      grant_type: 'authorization_code',
      code: spec.code,
      redirect_uri: frontSettings(ctx).redirectUri,
      ...(spec.verifier !== undefined && { code_verifier: spec.verifier }),
    },
    ...(spec.proof !== undefined && { proof: spec.proof }),
  })
}

export interface Flow {
  readonly pushed: Pushed
  readonly authorized: Authorized | undefined
}

/** PAR, then the browser to the redirect URI; `extra` goes to the authorization endpoint alongside. */
export async function pushAndAuthorize(ctx: RunContext, recorder: Recorder, spec: PushSpec, extra: Readonly<Record<string, string>> = {}): Promise<Flow> {
  const pushed = await push(ctx, recorder, spec)
  if (pushed.requestUri === undefined) return { pushed, authorized: undefined }
  const authorized = await authorize(ctx, recorder, { client_id: clientIdOf(ctx), request_uri: pushed.requestUri, ...extra })
  return { pushed, authorized }
}

/** RFC 9101 §4 as FAPI 2.0 Message Signing wants it: the partner's key, typ oauth-authz-req+jwt, aud the issuer, 5 minutes. */
export async function signRequestObject(ctx: RunContext, params: Readonly<Record<string, string>>): Promise<string> {
  const auth = ctx.settings.clients.primary.auth
  if (auth?.method !== 'private_key_jwt') throw new Error('signed request objects need the primary client’s private_key_jwt key')
  const now = ctx.nowSeconds()
  const clientId = clientIdOf(ctx)
  return new SignJWT({ ...params, client_id: clientId, jti: randomUUID() })
    .setProtectedHeader({ alg: auth.alg, typ: 'oauth-authz-req+jwt', ...(auth.kid !== undefined && { kid: auth.kid }) })
    .setIssuer(clientId)
    .setAudience(asSettings(ctx).issuer)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + 300)
    .sign(createPrivateKey(auth.signingKeyPem))
}

/** The target (target.url) called with an access token of the front channel: DPoP-bound to the run's key, or over the partner's certificate. */
export async function callTargetWith(ctx: RunContext, recorder: Recorder, label: string, accessToken: string): Promise<HttpOutcome> {
  const { target, mode } = ctx.settings
  const key = await dpopKeyOf(ctx)
  const build = async (nonce: string | undefined): Promise<CallSpec> => {
    const proofs = mode === 'dpop' ? [await validProof({ key, htm: target.method, htu: htuOf(target.url), accessToken, nonce, iat: ctx.nowSeconds() })] : []
    const { headers, interactionId } = ctx.resourceHeaders({ authorization: `${mode === 'dpop' ? 'DPoP' : 'Bearer'} ${accessToken}`, proofs })
    return {
      label,
      method: target.method,
      url: target.url,
      headers,
      ...(target.body !== undefined && { body: target.body }),
      notes: ['the access token of the valid authorization-code flow'],
      ...(interactionId !== undefined && { interactionId }),
    }
  }
  return mode === 'dpop' ? ctx.dpopCall(recorder, build) : ctx.call(recorder, await build(undefined))
}
