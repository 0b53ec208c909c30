// The authorization-code front channel of an authorization server (FAPI requirements §3: A1,
// A5–A12, A14–A16, A18), black-box as a partner and its customer's browser see it: pushed
// authorization requests that differ from a valid one in what a check names, the scripted browser
// through the deployment's own login, and the code exchange. Check ids follow the conformance
// suite's module names.
import { calculateJwkThumbprint } from 'jose'
import { asSettings, asState, dpopKeyOf, oauthError, validTokenProof, type ProofBuilder, type TokenAnswer } from '../authorization-server.ts'
import type { CheckDefinition } from '../check.ts'
import type { Recorder, RunContext } from '../context.ts'
import {
  authorize,
  callTargetWith,
  clientIdOf,
  exchange,
  frontMetadata,
  frontSettings,
  frontState,
  newBrowser,
  newPkce,
  push,
  pushAndAuthorize,
  randomValue,
  signRequestObject,
  validParams,
  type Authorized,
  type Flow,
} from '../front-channel.ts'
import { judgeEntropy } from '../credential-entropy.ts'
import { describeFailure, headerValues, sendHttp } from '../http.ts'
import { fail, pass, skip, type Outcome } from '../judge.ts'
import type { Level } from '../model.ts'
import { generateDpopKey } from '../proofs.ts'
import { judgeIssued, judgeTokenRefusal } from './authorization-server-checks.ts'

const MAX_PAR_LIFETIME_SECONDS = 600
/** An expired request_uri is tried only when the server's own lifetime is this short. */
const MAX_EXPIRY_WAIT_SECONDS = 10
const LONG_STATE_LENGTH = 384

interface FcCheckInput {
  readonly id: string
  readonly title: string
  readonly requirement: string
  readonly reference: string
  readonly level?: Level
  readonly modes?: CheckDefinition['modes']
  readonly skipReason?: (ctx: RunContext) => string | undefined
  run(ctx: RunContext, recorder: Recorder): Promise<Outcome>
}

function notWorking(ctx: RunContext): string | undefined {
  const state = frontState(ctx)
  if (state.problem !== undefined) return state.problem
  return state.working ? undefined : 'the valid authorization-code flow did not complete (see as-authorization-code-flow): a refusal would prove nothing'
}

function needsSecondClient(ctx: RunContext): string | undefined {
  return notWorking(ctx) ?? (ctx.settings.clients.second?.clientId === undefined ? 'no second client is configured' : undefined)
}

function fcCheck(input: FcCheckInput): CheckDefinition {
  return { section: 'authorization-code', level: input.level ?? 'required', skipReason: input.skipReason ?? notWorking, ...input }
}

function describeAnswer(answer: TokenAnswer): string {
  if (answer.outcome.kind === 'failure') return describeFailure(answer.outcome)
  const error = oauthError(answer)
  return `${answer.outcome.status}${error ? ` error="${error}"` : ''}`
}

/** The request must not lead to a code: refused at PAR, or at the authorization endpoint (error page or error response). */
export function judgeNoAuthorization(flow: Flow, what: string): Outcome {
  const { answer } = flow.pushed
  if (answer.outcome.kind === 'failure') return fail(`PAR: no HTTP answer: ${describeFailure(answer.outcome)}`)
  if (answer.outcome.status >= 400 && answer.outcome.status < 500) {
    const error = oauthError(answer)
    return error
      ? pass(`refused at PAR: ${describeAnswer(answer)}`)
      : fail(`refused at PAR with ${answer.outcome.status} but without an OAuth error (RFC 6749 §5.2)`)
  }
  if (flow.pushed.requestUri === undefined) return fail(`PAR answered ${describeAnswer(answer)} without a request_uri`)
  return judgeNoCode(flow.authorized!, what, 'accepted at PAR, then refused')
}

/** The authorization endpoint must not issue a code: an error page (4xx) or an error in the authorization response. */
export function judgeNoCode(authorized: Authorized, what: string, prefix = 'refused'): Outcome {
  const end = authorized.browsed.end
  if (end.kind === 'failure') return fail(`the authorization endpoint gave no answer: ${end.reason}`)
  if (end.kind === 'page') {
    return end.status >= 400
      ? pass(`${prefix} at the authorization endpoint: error page ${end.status}`)
      : fail(`${what}: the browser ended on a ${end.status} page`)
  }
  const response = authorized.response!
  if (response.get('code')) return fail(`${what}: a code was issued`)
  const error = response.get('error')
  if (error) return pass(`${prefix} with error="${error}" in the authorization response`)
  return fail(`${what}: an authorization response without code or error`)
}

function proofWithKey(key: Awaited<ReturnType<typeof generateDpopKey>>): ProofBuilder {
  return (input) => validTokenProof({ ...input, key })
}

const metadataCheck = fcCheck({
  id: 'as-front-channel-metadata',
  title: 'The metadata describes a FAPI 2.0 front channel',
  requirement:
    'The RFC 8414 metadata has https `authorization_endpoint` and `pushed_authorization_request_endpoint`, `require_pushed_authorization_requests: true`, `response_types_supported` with `code` only, `code_challenge_methods_supported` with S256 and without plain, and `authorization_response_iss_parameter_supported: true`.',
  reference: 'FAPI2 SP 5.3.2.2-1/-2/-5/-7; RFC 8414 §2; RFC 9126 §5; RFC 9207 §3; FAPI requirements A1; suite FAPI2SPFinalDiscoveryEndpointVerification',
  skipReason: () => undefined,
  async run(ctx, recorder) {
    const state = frontState(ctx)
    const metadata = await frontMetadata(ctx, recorder)
    if (typeof metadata === 'string') {
      state.problem = `no metadata: ${metadata}`
      return fail(metadata)
    }
    const https = (name: string) =>
      typeof metadata[name] === 'string' && (metadata[name] as string).startsWith('https://') ? (metadata[name] as string) : undefined
    state.parEndpoint = https('pushed_authorization_request_endpoint')
    state.authorizationEndpoint = https('authorization_endpoint')
    const problems: string[] = []
    if (!state.parEndpoint) problems.push('no https pushed_authorization_request_endpoint')
    if (!state.authorizationEndpoint) problems.push('no https authorization_endpoint')
    if (!asState(ctx).tokenEndpoint) problems.push('no token_endpoint')
    if (problems.length > 0) state.problem = `the metadata has ${problems.join(', ')}`
    if (metadata.require_pushed_authorization_requests !== true) problems.push('require_pushed_authorization_requests is not true')
    const types = metadata.response_types_supported
    if (!Array.isArray(types) || types.length === 0 || types.some((t) => t !== 'code'))
      problems.push(`response_types_supported is ${JSON.stringify(types)}, not ["code"]`)
    const methods = metadata.code_challenge_methods_supported
    if (!Array.isArray(methods) || !methods.includes('S256')) problems.push('code_challenge_methods_supported lacks S256')
    else if (methods.includes('plain')) problems.push('code_challenge_methods_supported lists plain')
    if (metadata.authorization_response_iss_parameter_supported !== true) problems.push('authorization_response_iss_parameter_supported is not true')
    return problems.length > 0
      ? fail(problems.join('; '))
      : pass(`PAR at ${state.parEndpoint}, authorization at ${state.authorizationEndpoint}; code only, S256, iss`)
  },
})

interface Baseline {
  flow: Flow
  answer: TokenAnswer
}
const baselines = new WeakMap<RunContext, Baseline>()

const flowCheck = fcCheck({
  id: 'as-authorization-code-flow',
  title: 'A valid authorization-code flow gets a code and a sender-constrained token',
  requirement:
    "A pushed authorization request (response_type code, the registered redirect_uri, PKCE S256, state, the partner's client authentication and, in dpop mode, a DPoP proof) gets 201; the browser, sent to the authorization endpoint with client_id and request_uri only and logged in with the configured forms, comes back to the redirect URI with a code and the same state; the code with its verifier gets a token (DPoP in dpop mode). Every refusal below is judged against this.",
  reference: 'RFC 9126 §2; RFC 6749 §4.1; RFC 7636 §4; RFC 9449 §10; FAPI2 SP 5.3.2.2',
  skipReason: (ctx) => frontState(ctx).problem,
  async run(ctx, recorder) {
    const state = frontState(ctx)
    state.working = false
    const flow = await pushAndAuthorize(ctx, recorder, { note: 'valid request' })
    if (flow.pushed.requestUri === undefined) return fail(`PAR answered ${describeAnswer(flow.pushed.answer)}; expected 201 with a request_uri`)
    const { browsed, response, code } = flow.authorized!
    if (browsed.end.kind === 'failure') return fail(`the browser got no answer: ${browsed.end.reason}`)
    if (browsed.end.kind === 'page')
      return fail(
        `the browser ended on a ${browsed.end.status} page at ${ctx.redactor.url(browsed.end.url)} (do the login forms of authorizationServer.frontChannel.login match?)`,
      )
    if (!code) return fail(`the authorization response has no code${response?.get('error') ? ` (error="${response.get('error')}")` : ''}`)
    if (response!.get('state') !== flow.pushed.state) return fail('the authorization response does not carry the request’s state')
    const answer = await exchange(ctx, recorder, { note: 'valid code exchange', code, verifier: flow.pushed.pkce.verifier })
    const issued = judgeIssued(answer)
    if (issued.verdict !== 'pass') return issued
    baselines.set(ctx, { flow, answer })
    state.redeemed = { code, verifier: flow.pushed.pkce.verifier, accessToken: String(answer.json!.access_token) }
    const expected = ctx.settings.mode === 'dpop' ? 'dpop' : 'bearer'
    const tokenType = String(answer.json!.token_type).toLowerCase()
    if (tokenType !== expected) return fail(`token_type is ${JSON.stringify(answer.json!.token_type)}, expected ${expected === 'dpop' ? 'DPoP' : 'Bearer'}`)
    state.working = true
    return pass(`PAR 201, ${browsed.steps.length} browser requests, code with state, token_type ${answer.json!.token_type}`)
  },
})

function baselineOf(ctx: RunContext): Baseline {
  const baseline = baselines.get(ctx)
  if (!baseline) throw new Error('no valid flow (see as-authorization-code-flow)')
  return baseline
}

function refusedFlow(
  input: Omit<FcCheckInput, 'run'> & { readonly push: (ctx: RunContext) => Parameters<typeof push>[2]; readonly what: string },
): CheckDefinition {
  return fcCheck({ ...input, run: async (ctx, recorder) => judgeNoAuthorization(await pushAndAuthorize(ctx, recorder, input.push(ctx)), input.what) })
}

/** A fresh valid flow up to the code, for the checks that misuse it. */
async function freshCode(ctx: RunContext, recorder: Recorder, note: string) {
  const flow = await pushAndAuthorize(ctx, recorder, { note })
  const code = flow.authorized?.code
  if (!code) throw new Error('a valid flow got no code this time')
  return { code, verifier: flow.pushed.pkce.verifier }
}

const INVALID_GRANT = ['invalid_grant']

export function frontChannelChecks(): CheckDefinition[] {
  return [
    metadataCheck,
    flowCheck,
    fcCheck({
      id: 'as-par-created',
      title: 'PAR answers 201 with a request_uri that expires within 600 seconds',
      requirement: 'The valid pushed authorization request is answered 201 with `request_uri` and `expires_in` under 600 seconds.',
      reference: 'RFC 9126 §2.2; FAPI2 SP 5.3.2.2-3, 5.4.1-4 (note); FAPI requirements A5',
      async run(ctx) {
        const { pushed } = baselineOf(ctx).flow
        const status = pushed.answer.outcome.kind === 'answer' ? pushed.answer.outcome.status : 0
        if (status !== 201) return fail(`PAR answered ${status}, not 201`)
        if (pushed.expiresIn === undefined) return fail('no numeric expires_in')
        if (pushed.expiresIn >= MAX_PAR_LIFETIME_SECONDS || pushed.expiresIn <= 0) return fail(`expires_in is ${pushed.expiresIn}`)
        return pass(`201, expires_in ${pushed.expiresIn}`)
      },
    }),
    fcCheck({
      id: 'as-authorization-response-iss',
      title: 'The authorization response carries iss, the issuer',
      requirement:
        'The authorization response of the valid flow carries `iss` equal to the issuer identifier (RFC 9207), so that a client can detect mix-up attacks.',
      reference: 'FAPI2 SP 5.3.2.2-7; RFC 9207 §2; FAPI requirements A11',
      async run(ctx) {
        const iss = baselineOf(ctx).flow.authorized!.response!.get('iss')
        if (iss === null) return fail('the authorization response has no iss parameter')
        return iss === asSettings(ctx).issuer ? pass(`iss=${iss}`) : fail(`iss is ${JSON.stringify(iss)}, not ${asSettings(ctx).issuer}`)
      },
    }),
    fcCheck({
      id: 'as-authorization-redirects-not-307',
      title: 'The front channel never redirects with 307',
      requirement:
        'Every redirect of the valid flow at the authorization server is 303 (recommended) or 302, never 307, which would make the browser re-post form data (credentials) to the next site.',
      reference: 'FAPI2 SP 5.3.2.2-10/-11; FAPI requirements A11',
      async run(ctx) {
        const origin = new URL(asSettings(ctx).issuer).origin
        const redirects = baselineOf(ctx)
          .flow.authorized!.browsed.steps.filter((s) => s.outcome.kind === 'answer' && s.outcome.status >= 300 && s.outcome.status < 400)
          .map((s) => ({ url: s.request.url, status: s.outcome.kind === 'answer' ? s.outcome.status : 0 }))
        const bad = redirects.filter((r) => r.status === 307)
        if (bad.length > 0) return fail(`307 from ${bad.map((r) => ctx.redactor.url(r.url.split('?')[0]!)).join(', ')}`)
        const own = redirects.filter((r) => r.url.startsWith(origin))
        return pass(`redirects at the authorization server: ${own.map((r) => r.status).join(', ') || 'none'}; others: ${redirects.length - own.length}`)
      },
    }),
    fcCheck({
      id: 'as-authorization-endpoint-no-cors',
      title: 'The authorization endpoint allows no cross-origin reads',
      requirement: 'A request to the authorization endpoint with an `Origin` header gets no `Access-Control-Allow-Origin` in its answer.',
      reference: 'FAPI2 SP 5.3.2.2-11 (no CORS at the authorization endpoint); FAPI requirements A11',
      async run(ctx, recorder) {
        const pushed = await push(ctx, recorder, { note: 'for the CORS probe' })
        if (pushed.requestUri === undefined) return fail(`PAR answered ${describeAnswer(pushed.answer)}`)
        const url = new URL(frontState(ctx).authorizationEndpoint!)
        url.searchParams.set('client_id', clientIdOf(ctx))
        url.searchParams.set('request_uri', pushed.requestUri)
        const request = { method: 'GET', url: url.href, headers: [['Origin', 'https://cors-probe.invalid'] as const] }
        const outcome = await sendHttp(request, { caPem: asSettings(ctx).caPem, servername: undefined, timeoutMs: ctx.settings.requestTimeoutMs, now: ctx.now })
        ctx.recordTokenExchange(recorder, { request, outcome }, 'authorization request with Origin')
        if (outcome.kind === 'failure') return fail(describeFailure(outcome))
        const allowed = headerValues(outcome.rawHeaders, 'access-control-allow-origin')
        return allowed.length > 0 ? fail(`Access-Control-Allow-Origin: ${allowed.join(', ')}`) : pass(`${outcome.status} without Access-Control-Allow-Origin`)
      },
    }),
    fcCheck({
      id: 'as-par-reject-invalid-http-verb',
      title: 'PAR accepts POST only',
      requirement: 'A PUT to the PAR endpoint is refused, with 405 as RFC 9126 §2.1 expects (any 4xx or 5xx is tolerated, as the suite does).',
      reference: 'RFC 9126 §2.1; FAPI requirements A5; suite PARRejectInvalidHttpVerb',
      async run(ctx, recorder) {
        const identity = ctx.settings.clients.primary.identity
        const request = {
          method: 'PUT',
          url: frontState(ctx).parEndpoint!,
          headers: [['Content-Type', 'application/x-www-form-urlencoded'] as const],
          body: '',
          ...(identity && { identity }),
        }
        const outcome = await sendHttp(request, { caPem: asSettings(ctx).caPem, servername: undefined, timeoutMs: ctx.settings.requestTimeoutMs, now: ctx.now })
        ctx.recordTokenExchange(recorder, { request, outcome }, 'PUT to PAR')
        if (outcome.kind === 'failure') return fail(describeFailure(outcome))
        if (outcome.status < 400) return fail(`answered ${outcome.status}`)
        return pass(`${outcome.status}${outcome.status === 405 ? '' : ' (405 is what RFC 9126 expects)'}`)
      },
    }),
    refusedFlow({
      id: 'as-par-reject-request-uri-in-par-form-params',
      title: 'A request_uri inside a pushed request is refused',
      requirement: 'A pushed authorization request that itself carries `request_uri` is refused (at PAR, or the flow ends in an error).',
      reference: 'RFC 9126 §2.1; FAPI requirements A5; suite PARRejectRequestUriInParAuthorizationFormParams',
      what: 'a request_uri inside PAR',
      push: () => ({ note: 'request_uri in the PAR form', params: { request_uri: `urn:ietf:params:oauth:request_uri:${randomValue()}` } }),
    }),
    refusedFlow({
      id: 'as-ensure-request-without-redirect-uri-fails',
      title: 'A pushed request without redirect_uri is refused',
      requirement: 'FAPI 2.0 requires `redirect_uri` in every pushed authorization request: one without it is refused.',
      reference: 'FAPI2 SP 5.3.2.2-6 (note); FAPI requirements A5; suite EnsureRequestObjectWithoutRedirectUriFails',
      what: 'no redirect_uri',
      push: () => ({ note: 'no redirect_uri', params: { redirect_uri: null } }),
    }),
    fcCheck({
      id: 'as-ensure-unsigned-authorization-request-without-using-par-fails',
      title: 'An authorization request that did not use PAR is refused',
      requirement: 'The whole request sent to the authorization endpoint directly (no request_uri) does not lead to a code: PAR is mandatory.',
      reference: 'FAPI2 SP 5.3.2.2-2; FAPI requirements A5; suite EnsureUnsignedAuthorizationRequestWithoutUsingParFails',
      async run(ctx, recorder) {
        const params = validParams(ctx, newPkce(), randomValue())
        return judgeNoCode(await authorize(ctx, recorder, { client_id: clientIdOf(ctx), ...params }), 'a request without PAR')
      },
    }),
    fcCheck({
      id: 'as-par-ensure-request-uri-is-bound-to-client',
      title: "Another client's request_uri is refused",
      requirement: "The second client's client_id with the primary client's request_uri at the authorization endpoint does not lead to a code.",
      reference: 'RFC 9126 §4; FAPI requirements A6; suite PAREnsureRequestUriIsBoundToClient',
      skipReason: needsSecondClient,
      async run(ctx, recorder) {
        const pushed = await push(ctx, recorder, { note: 'pushed by the primary client' })
        if (pushed.requestUri === undefined) return fail(`PAR answered ${describeAnswer(pushed.answer)}`)
        return judgeNoCode(
          await authorize(ctx, recorder, { client_id: clientIdOf(ctx, 'second'), request_uri: pushed.requestUri }),
          'another client’s request_uri',
        )
      },
    }),
    fcCheck({
      id: 'as-par-attempt-reuse-request-uri',
      title: 'A request_uri used once is not used again',
      level: 'recommended',
      requirement:
        'The request_uri of the completed valid flow, sent to the authorization endpoint again, does not lead to another code (one-time use at the point of authorization).',
      reference: 'FAPI2 SP 5.3.2.2 note 3; RFC 9126 §7.3; FAPI requirements A6; suite PARAttemptReuseRequestUri',
      async run(ctx, recorder) {
        const requestUri = baselineOf(ctx).flow.pushed.requestUri!
        return judgeNoCode(await authorize(ctx, recorder, { client_id: clientIdOf(ctx), request_uri: requestUri }), 'the request_uri used again')
      },
    }),
    fcCheck({
      id: 'as-par-ensure-server-accepts-reused-request-uri-before-authentication-completion',
      title: 'A request_uri is used up at the point of authorization, not when the page loads',
      level: 'recommended',
      requirement:
        'The browser opens the authorization URL and stops at the login page (the customer leaves); the same URL opened again, logged in, still leads to a code.',
      reference: 'FAPI2 SP 5.3.2.2 note 3; RFC 9126 §4; FAPI requirements A6; suite PAREnsureServerAcceptsReusedRequestUriBeforeAuthenticationCompletion',
      async run(ctx, recorder) {
        const pushed = await push(ctx, recorder, { note: 'to be opened twice' })
        if (pushed.requestUri === undefined) return fail(`PAR answered ${describeAnswer(pushed.answer)}`)
        const query = { client_id: clientIdOf(ctx), request_uri: pushed.requestUri }
        // A customer without a session, so that the login page is shown (the run's browser may be logged in already).
        const browser = newBrowser(ctx)
        const first = await authorize(ctx, recorder, query, { fillForms: false, browser })
        if (first.browsed.end.kind !== 'page' || first.browsed.end.status !== 200)
          return fail(`the first visit did not end on a login page (${first.browsed.end.kind === 'page' ? first.browsed.end.status : first.browsed.end.kind})`)
        const second = await authorize(ctx, recorder, query, { browser })
        return second.code
          ? pass('the second visit, logged in, got a code')
          : fail(`the second visit got no code (${second.response?.get('error') ?? second.browsed.end.kind})`)
      },
    }),
    fcCheck({
      id: 'as-par-attempt-to-use-expired-request-uri',
      title: 'An expired request_uri is refused',
      level: 'recommended',
      requirement: `A request_uri used after its expires_in does not lead to a code. Run only when the server's expires_in is at most ${MAX_EXPIRY_WAIT_SECONDS} s (the runner waits that long).`,
      reference: 'RFC 9126 §2.2, §4; FAPI requirements A6; suite PARAttemptToUseExpiredRequestUri',
      skipReason: (ctx) => {
        const expiresIn = baselines.get(ctx)?.flow.pushed.expiresIn
        return (
          notWorking(ctx) ??
          (expiresIn === undefined || expiresIn > MAX_EXPIRY_WAIT_SECONDS ? `the server's expires_in is ${expiresIn} s: too long to wait for` : undefined)
        )
      },
      async run(ctx, recorder) {
        const pushed = await push(ctx, recorder, { note: 'to be used after it expired' })
        if (pushed.requestUri === undefined || pushed.expiresIn === undefined) return fail(`PAR answered ${describeAnswer(pushed.answer)}`)
        await new Promise((resolve) => setTimeout(resolve, (pushed.expiresIn! + 1) * 1000))
        return judgeNoCode(await authorize(ctx, recorder, { client_id: clientIdOf(ctx), request_uri: pushed.requestUri }), 'an expired request_uri')
      },
    }),
    fcCheck({
      id: 'as-state-only-outside-request-object-not-used',
      title: 'Parameters outside the pushed request are ignored',
      requirement:
        'A pushed request without state, then `state` only in the authorization endpoint query: the flow completes and the response does not carry that outside state.',
      reference: 'FAPI2 SP 5.3.3.2-6; RFC 9126 §4; FAPI requirements A7; suite StateOnlyOutsideRequestObjectNotUsed',
      async run(ctx, recorder) {
        const outside = `outside-${randomValue()}`
        const flow = await pushAndAuthorize(ctx, recorder, { note: 'no state', params: { state: null } }, { state: outside })
        if (flow.pushed.requestUri === undefined) return fail(`PAR answered ${describeAnswer(flow.pushed.answer)}`)
        const response = flow.authorized!.response
        if (!response) return fail('the browser did not come back to the redirect URI')
        if (response.get('state') === outside) return fail('the response carries the state sent outside the pushed request')
        return response.get('code') ? pass('code issued; the outside state was not used') : fail(`no code (${response.get('error') ?? 'no error'})`)
      },
    }),
    refusedFlow({
      id: 'as-ensure-response-type-token-fails',
      title: 'response_type token is refused',
      requirement: 'Only `response_type=code` is allowed: `token` is refused (at PAR, or with an error page or error response).',
      reference: 'FAPI2 SP 5.3.2.2-1; FAPI requirements A8; suite EnsureResponseTypeTokenFails',
      what: 'response_type token',
      push: () => ({ note: 'response_type=token', params: { response_type: 'token' } }),
    }),
    refusedFlow({
      id: 'as-ensure-response-type-code-id-token-fails',
      title: 'response_type code id_token is refused',
      requirement: 'Only `response_type=code` is allowed: `code id_token` is refused.',
      reference: 'FAPI2 SP 5.3.2.2-1; FAPI requirements A8; suite EnsureResponseTypeCodeIdTokenFails',
      what: 'response_type code id_token',
      push: (ctx) => ({
        note: 'response_type=code id_token',
        params: { response_type: 'code id_token', scope: `openid ${frontSettings(ctx).scope ?? asSettings(ctx).scope ?? ''}`.trim(), nonce: randomValue() },
      }),
    }),
    refusedFlow({
      id: 'as-par-ensure-pkce-required',
      title: 'A pushed request without PKCE is refused',
      requirement: 'PKCE is required: a request without `code_challenge` does not lead to a code.',
      reference: 'FAPI2 SP 5.3.2.2-5; RFC 7636 §4.4.1; FAPI requirements A9; suite PAREnsurePKCERequired',
      what: 'no code_challenge',
      push: () => ({ note: 'no PKCE', params: { code_challenge: null, code_challenge_method: null } }),
    }),
    refusedFlow({
      id: 'as-par-ensure-plain-pkce-rejected',
      title: 'PKCE with the plain method is refused',
      requirement: 'Only S256 is allowed: `code_challenge_method=plain` does not lead to a code.',
      reference: 'FAPI2 SP 5.3.2.2-5; FAPI requirements A9; suite PAREnsurePlainPKCERejected',
      what: 'plain PKCE',
      push: () => ({ note: 'plain PKCE', params: { code_challenge: randomValue(32), code_challenge_method: 'plain' } }),
    }),
    fcCheck({
      id: 'as-par-ensure-pkce-code-verifier-required',
      title: 'A code exchange without code_verifier is refused',
      requirement: 'A fresh code exchanged without `code_verifier` is refused with 400 invalid_grant (invalid_request tolerated).',
      reference: 'RFC 7636 §4.5, §4.6; FAPI requirements A9; suite PAREnsurePKCECodeVerifierRequired',
      async run(ctx, recorder) {
        const { code } = await freshCode(ctx, recorder, 'for the exchange without verifier')
        return judgeTokenRefusal(await exchange(ctx, recorder, { note: 'no code_verifier', code, verifier: undefined }), {
          statuses: [400],
          errors: ['invalid_grant', 'invalid_request'],
        })
      },
    }),
    fcCheck({
      id: 'as-par-incorrect-pkce-code-verifier-rejected',
      title: 'A code exchange with the wrong code_verifier is refused',
      requirement: 'A fresh code exchanged with another verifier is refused with 400 invalid_grant.',
      reference: 'RFC 7636 §4.6; FAPI requirements A9; suite PARIncorrectPKCECodeVerifierRejected',
      async run(ctx, recorder) {
        const { code } = await freshCode(ctx, recorder, 'for the exchange with a wrong verifier')
        return judgeTokenRefusal(await exchange(ctx, recorder, { note: 'wrong code_verifier', code, verifier: newPkce().verifier }), {
          statuses: [400],
          errors: INVALID_GRANT,
        })
      },
    }),
    fcCheck({
      id: 'as-ensure-registered-redirect-uri',
      title: 'An unregistered redirect_uri is refused at PAR',
      level: 'recommended',
      requirement:
        'A pushed request with a redirect_uri that is not registered is refused at PAR. RFC 9126 §2.4 lets a server accept it for an authenticated client (the suite then runs TolerateUnregisteredRedirectUri): that is reported as skipped.',
      reference: 'FAPI2 SP 5.3.2.2-8; RFC 9126 §2.4; FAPI requirements A10; suite EnsureRegisteredRedirectUri',
      async run(ctx, recorder) {
        const pushed = await push(ctx, recorder, { note: 'unregistered redirect_uri', params: { redirect_uri: 'https://unregistered.invalid/callback' } })
        if (pushed.requestUri !== undefined) return skip('accepted at PAR (RFC 9126 §2.4 allows it for authenticated clients)')
        return judgeTokenRefusal(pushed.answer, { statuses: [400], errors: ['invalid_request', 'invalid_redirect_uri'] })
      },
    }),
    fcCheck({
      id: 'as-attempt-reuse-authorization-code-after-one-second',
      title: 'A code used twice is refused',
      requirement: 'The code of the valid flow, exchanged again one second later, is refused with 400 invalid_grant.',
      reference: 'FAPI2 SP 5.3.2.1-11; RFC 6749 §4.1.2, §10.5; FAPI requirements A12; suite AttemptReuseAuthorizationCodeAfterOneSecond',
      async run(ctx, recorder) {
        const state = frontState(ctx)
        const redeemed = state.redeemed!
        // Whether the target takes the first token, for as-reused-code-tokens-revoked.
        const before = await callTargetWith(ctx, recorder, 'the first token at the target, before the code is reused', redeemed.accessToken)
        state.targetStatusBeforeReuse = before.kind === 'answer' ? before.status : undefined
        await new Promise((resolve) => setTimeout(resolve, 1000))
        return judgeTokenRefusal(await exchange(ctx, recorder, { note: 'the code again', code: redeemed.code, verifier: redeemed.verifier }), {
          statuses: [400],
          errors: INVALID_GRANT,
        })
      },
    }),
    fcCheck({
      id: 'as-reused-code-tokens-revoked',
      title: 'The tokens of a reused code are revoked',
      level: 'recommended',
      requirement:
        'After the reused code was refused, the access token its first redemption got is refused at the target (`target.url`). Skipped when the target did not accept that token before the reuse (the target is not a resource of this authorization server).',
      reference: 'FAPI2 SP 5.3.2.1-11; RFC 6749 §4.1.2, §10.5; FAPI requirements A12; suite AttemptReuseAuthorizationCodeAfterOneSecond (W)',
      skipReason: (ctx) => {
        const status = frontState(ctx).targetStatusBeforeReuse
        return (
          notWorking(ctx) ??
          (status === undefined || status < 200 || status >= 300 ? `the target answered the token ${status ?? 'nothing'} before the reuse` : undefined)
        )
      },
      async run(ctx, recorder) {
        const outcome = await callTargetWith(ctx, recorder, 'the first token at the target, after the code was reused', frontState(ctx).redeemed!.accessToken)
        if (outcome.kind === 'failure') return fail(describeFailure(outcome))
        return outcome.status >= 200 && outcome.status < 300
          ? fail(`the target still answers ${outcome.status} to the token of the reused code`)
          : pass(`the target answered ${frontState(ctx).targetStatusBeforeReuse} before the reuse and ${outcome.status} after it`)
      },
    }),
    fcCheck({
      id: 'as-ensure-authorization-code-is-bound-to-client',
      title: "Another client cannot redeem a client's code",
      requirement: "A fresh code of the primary client, exchanged with the second client's authentication, is refused with 400 invalid_grant.",
      reference: 'RFC 6749 §4.1.3; FAPI requirements A12; suite EnsureAuthorizationCodeIsBoundToClient',
      skipReason: needsSecondClient,
      async run(ctx, recorder) {
        const { code, verifier } = await freshCode(ctx, recorder, 'for another client')
        const answer = await exchange(ctx, recorder, { note: 'second client', client: 'second', code, verifier })
        // Refused for the grant type, the request proves nothing about the code's binding.
        if (oauthError(answer) === 'unauthorized_client') return skip('the second client may not use the authorization_code grant: configure one that may')
        return judgeTokenRefusal(answer, { statuses: [400, 401], errors: INVALID_GRANT })
      },
    }),
    fcCheck({
      id: 'as-ensure-mismatched-dpop-jkt-fails',
      title: 'PAR with dpop_jkt of another key than its proof is refused',
      modes: ['dpop'],
      requirement:
        "A pushed request whose `dpop_jkt` is another key's thumbprint than the DPoP proof sent with it is refused (400 invalid_dpop_proof or invalid_request).",
      reference: 'RFC 9449 §10, §10.1; FAPI requirements A14; suite EnsureMismatchedDpopJktFails',
      async run(ctx, recorder) {
        const other = await generateDpopKey(ctx.settings.clients.primary.dpopAlgorithm)
        const jkt = await calculateJwkThumbprint(other.publicJwk, 'sha256')
        const pushed = await push(ctx, recorder, { note: "dpop_jkt of another key than the proof's", outside: { dpop_jkt: jkt } })
        return judgeTokenRefusal(pushed.answer, { statuses: [400], errors: ['invalid_dpop_proof', 'invalid_request'] })
      },
    }),
    fcCheck({
      id: 'as-ensure-token-endpoint-fails-with-mismatched-dpop-jkt',
      title: 'The code is bound to the DPoP key of the pushed request',
      modes: ['dpop'],
      requirement:
        'A fresh code of a request pushed with a DPoP proof, exchanged with a proof of another key, is refused (400 invalid_grant, invalid_dpop_proof or invalid_request).',
      reference: 'RFC 9449 §10; FAPI requirements A14; suite EnsureTokenEndpointFailsWithMismatchedDpopJkt',
      async run(ctx, recorder) {
        await dpopKeyOf(ctx)
        const { code, verifier } = await freshCode(ctx, recorder, 'pushed with the run’s DPoP key')
        const other = await generateDpopKey(ctx.settings.clients.primary.dpopAlgorithm)
        return judgeTokenRefusal(await exchange(ctx, recorder, { note: 'proof of another key', code, verifier, proof: proofWithKey(other) }), {
          statuses: [400],
          errors: ['invalid_grant', 'invalid_dpop_proof', 'invalid_request'],
        })
      },
    }),
    fcCheck({
      id: 'as-signed-request-object-accepted',
      title: 'A signed request object gets a code',
      requirement:
        "When the deployment uses signed request objects (authorizationServer.frontChannel.requestObject): the request as a JWT signed with the partner's key (typ oauth-authz-req+jwt, aud the issuer, iss the client, nbf and exp within 60 minutes), pushed alone, leads to a code.",
      reference: 'FAPI2 MS 5.3.1; RFC 9101 §4; FAPI requirements A15',
      skipReason: (ctx) => notWorking(ctx) ?? requestObjectSkip(ctx),
      async run(ctx, recorder) {
        const pkce = newPkce()
        const state = randomValue()
        const request = await signRequestObject(ctx, validParams(ctx, pkce, state))
        ctx.redactor.add(request)
        const flow = await pushAndAuthorize(ctx, recorder, { note: 'signed request object', form: { request } })
        if (flow.pushed.requestUri === undefined) return fail(`PAR answered ${describeAnswer(flow.pushed.answer)}`)
        const response = flow.authorized?.response
        return response?.get('code') && response.get('state') === state
          ? pass('code issued with the request object’s state')
          : fail('no code for the signed request object')
      },
    }),
    refusedFlow({
      id: 'as-ensure-unsigned-request-at-par-endpoint-fails',
      title: 'An unsigned pushed request is refused where request objects are required',
      requirement: 'When the deployment requires signed request objects, the same request as plain form parameters is refused.',
      reference: 'FAPI2 MS 5.3.1-1; FAPI requirements A15; suite EnsureUnsignedRequestAtParEndpointFails',
      skipReason: (ctx) => notWorking(ctx) ?? requestObjectSkip(ctx),
      what: 'an unsigned request',
      push: () => ({ note: 'plain parameters', unsigned: true }),
    }),
    fcCheck({
      id: 'as-jarm',
      title: 'JARM responses',
      requirement: 'JARM (FAPI 2.0 Message Signing §5.4, response_mode=jwt) is not assessed: the runner has not adopted it.',
      reference: 'FAPI2 MS 5.4; FAPI requirements A16',
      skipReason: () => 'JARM is not assessed by this runner (not adopted)',
      async run() {
        return skip('not adopted')
      },
    }),
    fcCheck({
      id: 'as-ensure-authorization-request-with-64-char-nonce-success',
      title: 'A 64-character nonce is accepted',
      requirement: 'A pushed request with a 64-character `nonce` leads to a code.',
      reference: 'FAPI2 SP 5.3.2.2-14; FAPI requirements A18; suite EnsureAuthorizationRequestWith64CharNonceSuccess',
      async run(ctx, recorder) {
        const flow = await pushAndAuthorize(ctx, recorder, { note: '64-character nonce', params: { nonce: randomValue(48) } })
        if (flow.pushed.requestUri === undefined) return fail(`PAR answered ${describeAnswer(flow.pushed.answer)}`)
        return flow.authorized?.code ? pass('code issued') : fail(`no code (${flow.authorized?.response?.get('error') ?? flow.authorized?.browsed.end.kind})`)
      },
    }),
    fcCheck({
      id: 'as-ensure-authorization-request-with-long-state',
      title: 'A long state is returned intact or refused cleanly',
      requirement: `A pushed request with a ${LONG_STATE_LENGTH}-character \`state\` either leads to a code with that state, or is refused at PAR with an OAuth error; never a broken flow.`,
      reference: 'FAPI2 SP 5.3.2.2-14; FAPI requirements A18; suite EnsureAuthorizationRequestWithLongState',
      async run(ctx, recorder) {
        const state = randomValue(LONG_STATE_LENGTH * 0.75)
        const flow = await pushAndAuthorize(ctx, recorder, { note: `${state.length}-character state`, params: { state } })
        if (flow.pushed.requestUri === undefined) {
          const error = oauthError(flow.pushed.answer)
          return error ? pass(`refused at PAR: ${describeAnswer(flow.pushed.answer)}`) : fail(`PAR answered ${describeAnswer(flow.pushed.answer)}`)
        }
        const response = flow.authorized?.response
        if (!response?.get('code')) return fail(`no code (${response?.get('error') ?? flow.authorized?.browsed.end.kind})`)
        return response.get('state') === state ? pass('code issued with the state intact') : fail('the state came back changed')
      },
    }),
    fcCheck({
      id: 'as-front-channel-credential-entropy',
      title: 'Codes and request_uris carry at least 128 bits of entropy',
      requirement:
        'Authorization codes and request_uri references carry at least 128 bits of entropy. Judged black-box on every one issued during these checks, as the token-endpoint entropy check judges tokens: after what all values share (the `urn:ietf:params:oauth:request_uri:` prefix), at least 22 apparently random base64url characters. A heuristic: it can prove too little, never true randomness.',
      reference: 'FAPI2 SP 5.4.1-4; RFC 9126 §2.2; RFC 6749 §10.10; FAPI requirements A19',
      async run(ctx) {
        const state = frontState(ctx)
        const judgements = [judgeEntropy('codes', state.codes), judgeEntropy('request_uris', state.requestUris)]
        const reasons = judgements.map((j) => j.reason).join('; ')
        if (judgements.some((j) => j.verdict === 'too-little')) return fail(reasons)
        if (judgements.some((j) => j.verdict === 'unknown')) return skip(reasons)
        return pass(reasons)
      },
    }),
  ]
}

function requestObjectSkip(ctx: RunContext): string | undefined {
  if (!frontSettings(ctx).requestObject) return 'the deployment does not use signed request objects (authorizationServer.frontChannel.requestObject)'
  return ctx.settings.clients.primary.auth?.method === 'private_key_jwt' ? undefined : 'the primary client has no signing key (private_key_jwt)'
}
