// The token endpoint of an authorization server (FAPI requirements §3: A2, A3, A4, A13, A14,
// A17, A19, A20), black-box as a partner sees it: each request differs from a valid one in the
// one thing the check names, and is judged by the RFC 6749 §5.2 error it gets. Check ids follow
// the conformance suite's module names where it has one.
import {
  asSettings,
  asState,
  fetchJson,
  metadataUrl,
  oauthError,
  sendTokenRequest,
  validTokenProof,
  type TokenAnswer,
  type TokenRequestSpec,
} from '../authorization-server.ts'
import type { CheckDefinition } from '../check.ts'
import { canSignRs256, type AssertionVariant } from '../client-assertion.ts'
import type { Recorder, RunContext } from '../context.ts'
import { judgeEntropy } from '../credential-entropy.ts'
import { describeFailure, headerValues } from '../http.ts'
import { isNonce } from '../challenges.ts'
import { fail, pass, skip, type Outcome } from '../judge.ts'
import type { Level } from '../model.ts'
import { corruptSignature, validProof } from '../proofs.ts'

/** FAPI 2.0 SP 5.3.2.1-3/-6: confidential clients with private_key_jwt or mTLS client authentication only. */
export const FAPI_CLIENT_AUTH_METHODS = ['private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth']
/** FAPI 2.0 SP 5.4.1. */
export const FAPI_SIGNING_ALGORITHMS = ['PS256', 'ES256', 'EdDSA']

interface RefusalExpectation {
  readonly statuses: readonly number[]
  readonly errors: readonly string[]
  /** A refusal in the TLS handshake (or a reset) also refuses. */
  readonly handshake?: true
}

function describeTokenAnswer(answer: TokenAnswer): string {
  if (answer.outcome.kind === 'failure') return describeFailure(answer.outcome)
  const error = oauthError(answer)
  return `${answer.outcome.status}${error ? ` error="${error}"` : ''}`
}

export function judgeTokenRefusal(answer: TokenAnswer, expectation: RefusalExpectation): Outcome {
  const { outcome } = answer
  if (outcome.kind === 'failure') {
    if (expectation.handshake && (outcome.alert !== undefined || outcome.reset)) return pass(`refused in the TLS handshake: ${describeFailure(outcome)}`)
    return fail(`no HTTP answer: ${describeFailure(outcome)}`)
  }
  if (outcome.status >= 200 && outcome.status < 300) {
    return fail(
      `answered ${outcome.status}${typeof answer.json?.access_token === 'string' ? ' with an access token' : ''}: the request should have been refused`,
    )
  }
  const error = oauthError(answer)
  const wanted = `${expectation.statuses.join(' or ')} with error ${expectation.errors.map((e) => `"${e}"`).join(' or ')}`
  if (!expectation.statuses.includes(outcome.status)) return fail(`answered ${describeTokenAnswer(answer)}; expected ${wanted}`)
  if (error === undefined) return fail(`refused with ${outcome.status} but without an OAuth error in a JSON body (RFC 6749 §5.2); expected ${wanted}`)
  if (!expectation.errors.includes(error)) return fail(`refused with ${outcome.status} error="${error}"; expected ${wanted}`)
  return pass(`refused with ${outcome.status} error="${error}"`)
}

/** A token was issued (200 with an access_token); the token type is judged by as-token-request-accepted. */
export function judgeIssued(answer: TokenAnswer): Outcome {
  if (answer.outcome.kind === 'failure') return fail(`no HTTP answer: ${describeFailure(answer.outcome)}`)
  if (answer.outcome.status !== 200) return fail(`answered ${describeTokenAnswer(answer)}; a token should have been issued (200)`)
  if (typeof answer.json?.access_token !== 'string') return fail('answered 200 without an access_token')
  return pass(`a token was issued (200, token_type ${JSON.stringify(answer.json.token_type)})`)
}

function noEndpoint(ctx: RunContext): string | undefined {
  const state = asState(ctx)
  return state.tokenEndpoint === undefined ? `no token endpoint (${state.endpointProblem ?? 'see as-metadata-published'})` : undefined
}

/** The checks that need the server to issue tokens for a valid request: a refusal proves nothing otherwise. */
function notIssuing(ctx: RunContext): string | undefined {
  return (
    noEndpoint(ctx) ??
    (asState(ctx).issuing ? undefined : 'the valid token request got no token (see as-token-request-accepted): a refusal would prove nothing')
  )
}

function needsPrivateKeyJwt(ctx: RunContext): string | undefined {
  return notIssuing(ctx) ?? (ctx.settings.clients.primary.auth?.method === 'private_key_jwt' ? undefined : 'the partner authenticates with tls_client_auth')
}

function needsDpop(ctx: RunContext): string | undefined {
  return notIssuing(ctx) ?? (ctx.settings.mode === 'dpop' ? undefined : 'the target is assessed in mtls mode (certificate-bound tokens)')
}

interface AsCheckInput {
  readonly id: string
  readonly title: string
  readonly requirement: string
  readonly reference: string
  readonly level?: Level | ((ctx: RunContext) => Level)
  readonly skipReason?: (ctx: RunContext) => string | undefined
  run(ctx: RunContext, recorder: Recorder): Promise<Outcome>
}

function asCheck(input: AsCheckInput): CheckDefinition {
  return { section: 'authorization-server', level: input.level ?? 'required', skipReason: input.skipReason ?? notIssuing, ...input }
}

function refusedRequest(
  input: Omit<AsCheckInput, 'run'> & { readonly request: (ctx: RunContext) => TokenRequestSpec; readonly expect: (ctx: RunContext) => RefusalExpectation },
): CheckDefinition {
  return asCheck({ ...input, run: async (ctx, recorder) => judgeTokenRefusal(await sendTokenRequest(ctx, recorder, input.request(ctx)), input.expect(ctx)) })
}

function assertionCheck(id: string, title: string, requirement: string, reference: string, variant: (ctx: RunContext) => AssertionVariant, errors: string[]) {
  return refusedRequest({
    id,
    title,
    requirement,
    reference,
    skipReason: needsPrivateKeyJwt,
    request: (ctx) => ({ label: 'token request', note: title, client: 'primary', assertion: variant(ctx) }),
    expect: () => ({ statuses: [400, 401], errors }),
  })
}

const metadataCheck = asCheck({
  id: 'as-metadata-published',
  title: 'The authorization server publishes its metadata',
  level: (ctx) => (ctx.settings.authorizationServer?.tokenEndpoint === undefined ? 'required' : 'recommended'),
  requirement:
    "The metadata at the issuer's /.well-known/oauth-authorization-server is JSON whose `issuer` is the configured issuer; its `token_endpoint` (or, for mTLS client authentication, `mtls_endpoint_aliases.token_endpoint`) is where the checks go unless `authorizationServer.tokenEndpoint` is configured.",
  reference: 'RFC 8414 §3, §3.3; RFC 8705 §5; FAPI requirements A1; suite FAPI2SPFinalDiscoveryEndpointVerification',
  skipReason: () => undefined,
  async run(ctx, recorder) {
    const settings = asSettings(ctx)
    const state = asState(ctx)
    state.tokenEndpoint = settings.tokenEndpoint
    const url = metadataUrl(settings.issuer)
    const answer = await fetchJson(ctx, recorder, 'metadata', url)
    const problem = (reason: string): Outcome => {
      if (state.tokenEndpoint === undefined) state.endpointProblem = `no metadata: ${reason}`
      return fail(reason)
    }
    if (answer.outcome.kind === 'failure') return problem(`${url}: ${describeFailure(answer.outcome)}`)
    if (answer.outcome.status !== 200 || !answer.json) return problem(`${url} answered ${answer.outcome.status}${answer.json ? '' : ' without a JSON object'}`)
    if (answer.json.issuer !== settings.issuer)
      return problem(`the metadata's issuer is ${JSON.stringify(answer.json.issuer)}, not ${settings.issuer} (RFC 8414 §3.3)`)
    state.metadata = answer.json
    const aliases = answer.json.mtls_endpoint_aliases as Record<string, unknown> | undefined
    const useAlias = ctx.settings.mode === 'mtls' || ctx.settings.clients.primary.auth?.method === 'tls_client_auth'
    const published = (useAlias && typeof aliases?.token_endpoint === 'string' ? aliases.token_endpoint : answer.json.token_endpoint) as unknown
    if (state.tokenEndpoint === undefined) {
      if (typeof published !== 'string' || !published.startsWith('https://')) return problem('the metadata has no https token_endpoint')
      state.tokenEndpoint = published
    }
    return pass(
      `issuer ${settings.issuer}; token endpoint ${state.tokenEndpoint}${settings.tokenEndpoint === undefined ? ' (from the metadata)' : ' (configured)'}`,
    )
  },
})

const authMethodsCheck = asCheck({
  id: 'as-client-auth-methods-advertised',
  title: 'Only private_key_jwt and mTLS client authentication are offered',
  requirement:
    'FAPI 2.0 clients are confidential and authenticate with private_key_jwt or mTLS: `token_endpoint_auth_methods_supported` lists nothing else (absent, it means client_secret_basic, RFC 8414 §2), and `token_endpoint_auth_signing_alg_values_supported` only PS256, ES256 and EdDSA. A server that accepts client_secret_basic or none fails here.',
  reference: 'FAPI2 SP 5.3.2.1-3, 5.3.2.1-6, 5.4.1; RFC 8414 §2; FAPI requirements A1, A2',
  skipReason: (ctx) => (asState(ctx).metadata ? undefined : 'no metadata (see as-metadata-published)'),
  async run(ctx) {
    const metadata = asState(ctx).metadata!
    const methods = metadata.token_endpoint_auth_methods_supported
    if (!Array.isArray(methods)) return fail('token_endpoint_auth_methods_supported is absent: RFC 8414 §2 then means client_secret_basic')
    const others = methods.filter((m) => !FAPI_CLIENT_AUTH_METHODS.includes(String(m)))
    if (others.length > 0) return fail(`token_endpoint_auth_methods_supported also lists ${others.map((m) => JSON.stringify(m)).join(', ')}`)
    const algs = metadata.token_endpoint_auth_signing_alg_values_supported
    if (methods.includes('private_key_jwt')) {
      if (!Array.isArray(algs)) return fail('private_key_jwt without token_endpoint_auth_signing_alg_values_supported')
      const weak = algs.filter((a) => !FAPI_SIGNING_ALGORITHMS.includes(String(a)))
      if (weak.length > 0) return fail(`token_endpoint_auth_signing_alg_values_supported also lists ${weak.map((a) => JSON.stringify(a)).join(', ')}`)
    }
    return pass(`client authentication: ${methods.join(', ')}${Array.isArray(algs) ? `; assertion algorithms: ${algs.join(', ')}` : ''}`)
  },
})

const baselineCheck = asCheck({
  id: 'as-token-request-accepted',
  title: 'A valid token request gets a sender-constrained token',
  requirement:
    "Client credentials with the partner's client authentication and, in dpop mode, a valid DPoP proof (the `use_dpop_nonce` retry included) get 200 with an access token of token_type DPoP (dpop mode) or Bearer bound to the certificate (mtls mode). Every refusal below is judged against this.",
  reference: 'RFC 6749 §4.4, §5.1; RFC 9449 §5; RFC 8705 §3; FAPI2 SP 5.3.2.1-4/-5',
  skipReason: noEndpoint,
  async run(ctx, recorder) {
    const state = asState(ctx)
    const answer = await sendTokenRequest(ctx, recorder, { label: 'valid token request', note: 'valid request', client: 'primary' })
    const issued = judgeIssued(answer)
    state.issuing = issued.verdict === 'pass'
    if (!state.issuing) return issued
    if (typeof answer.json!.refresh_token === 'string') state.refreshToken = answer.json!.refresh_token
    const expected = ctx.settings.mode === 'dpop' ? 'DPoP' : 'Bearer'
    const tokenType = answer.json!.token_type
    if (typeof tokenType !== 'string' || tokenType.toLowerCase() !== expected.toLowerCase()) {
      return fail(`token_type is ${JSON.stringify(tokenType)}, expected ${expected}${expected === 'DPoP' ? ': the token is not DPoP-bound (RFC 9449 §5)' : ''}`)
    }
    return pass(`200, token_type ${tokenType}${state.refreshToken ? ', with a refresh token' : ''}`)
  },
})

const CLIENT_REFUSED = ['invalid_client']
const CLIENT_OR_REQUEST_REFUSED = ['invalid_client', 'invalid_request']
const FIVE_MINUTES = 5 * 60

export function authorizationServerChecks(): CheckDefinition[] {
  return [
    metadataCheck,
    authMethodsCheck,
    baselineCheck,
    refusedRequest({
      id: 'as-ensure-client-assertion-in-token-endpoint',
      title: 'A token request without a client assertion is refused',
      requirement:
        "Only confidential clients get tokens: the partner's request without `client_assertion` (client_id only) is refused with 400 or 401, invalid_client or invalid_request.",
      reference: 'FAPI2 SP 5.3.2.1-3/-6; RFC 6749 §5.2; FAPI requirements A2; suite EnsureClientAssertionInTokenEndpoint',
      skipReason: needsPrivateKeyJwt,
      request: () => ({ label: 'token request', note: 'no client_assertion', client: 'primary', assertion: 'none' }),
      expect: () => ({ statuses: [400, 401], errors: CLIENT_OR_REQUEST_REFUSED }),
    }),
    assertionCheck(
      'as-token-endpoint-as-audience-fails',
      'A client assertion whose aud is the token endpoint URL is refused',
      'The authorization server accepts only its issuer identifier as `aud`: an assertion addressed to the token endpoint URL is refused with invalid_client or invalid_request.',
      'FAPI2 SP 5.3.2.1-8; FAPI requirements A3; suite PARTokenEndpointAsAudienceFails',
      (ctx) => ({ aud: asState(ctx).tokenEndpoint! }),
      CLIENT_OR_REQUEST_REFUSED,
    ),
    assertionCheck(
      'as-array-audience-fails',
      'A client assertion whose aud is an array is refused',
      'The issuer must be the `aud` claim as a string: an array holding just the issuer is refused with invalid_client or invalid_request.',
      'FAPI2 SP 5.3.2.1-8; FAPI requirements A3; suite PAREndpointAsArrayAudienceFails',
      (ctx) => ({ aud: [asSettings(ctx).issuer] }),
      CLIENT_OR_REQUEST_REFUSED,
    ),
    assertionCheck(
      'as-client-assertion-with-no-sub-fails',
      'A client assertion without sub is refused',
      'A client assertion must carry `sub` (the client_id): one without it is refused with invalid_client.',
      'RFC 7523 §3 item 2; OIDC Core §9; FAPI requirements A3; suite EnsureClientAssertionWithNoSubFails',
      () => ({ omitSub: true }),
      CLIENT_REFUSED,
    ),
    assertionCheck(
      'as-client-assertion-with-exp-is-5-minutes-in-past-fails',
      'A client assertion that expired 5 minutes ago is refused',
      'An expired assertion (`exp` 5 minutes in the past, `iat` 6 minutes) is refused with invalid_client.',
      'RFC 7523 §3 item 4; FAPI requirements A3; suite EnsureClientAssertionWithExpIs5MinutesInPastFails',
      () => ({ iatOffset: -FIVE_MINUTES - 60, expOffset: -FIVE_MINUTES }),
      CLIENT_REFUSED,
    ),
    {
      ...assertionCheck(
        'as-signed-client-assertion-with-rs256-fails',
        'A client assertion signed with RS256 is refused',
        "Only PS256, ES256 and EdDSA are allowed: an assertion signed with RS256 by the partner's own RSA key is refused with invalid_client.",
        'FAPI2 SP 5.4.1-1; FAPI requirements A3; suite EnsureSignedClientAssertionWithRS256Fails',
        () => ({ alg: 'RS256' }),
        CLIENT_REFUSED,
      ),
      skipReason: (ctx) => {
        const auth = ctx.settings.clients.primary.auth
        return (
          needsPrivateKeyJwt(ctx) ??
          (auth?.method === 'private_key_jwt' && canSignRs256(auth.signingKeyPem)
            ? undefined
            : "the partner's assertion key is not an RSA key: it cannot sign RS256")
        )
      },
    },
    asCheck({
      id: 'as-client-assertion-with-iat-nbf-8-seconds-in-the-future-is-accepted',
      title: 'A client assertion with iat and nbf 8 seconds ahead is accepted',
      requirement: 'Clocks differ: an assertion whose `iat` and `nbf` are 8 seconds in the future is accepted (FAPI 2.0 asks for 10 seconds of tolerance).',
      reference: 'FAPI2 SP 5.3.2.1-13; FAPI requirements A3; suite PAREnsureJWTClientAssertionWithIatNbf8SecondsInTheFutureIsAccepted',
      skipReason: needsPrivateKeyJwt,
      run: async (ctx, recorder) =>
        judgeIssued(
          await sendTokenRequest(ctx, recorder, {
            label: 'token request',
            note: 'iat and nbf 8 s ahead',
            client: 'primary',
            assertion: { iatOffset: 8, nbfOffset: 8 },
          }),
        ),
    }),
    assertionCheck(
      'as-client-assertion-with-iat-nbf-over-60-seconds-in-the-future-fails',
      'A client assertion with iat and nbf over 60 seconds ahead is refused',
      'An assertion whose `iat` and `nbf` are 70 seconds in the future is refused with invalid_client or invalid_request.',
      'FAPI2 SP 5.3.2.1-13; FAPI requirements A3; suite PAREnsureJWTClientAssertionWithIatNbfOver60SecondsInTheFutureFails',
      () => ({ iatOffset: 70, nbfOffset: 70 }),
      CLIENT_OR_REQUEST_REFUSED,
    ),
    refusedRequest({
      id: 'as-ensure-client-id-in-token-endpoint',
      title: "Another partner's client_id with this partner's certificate is refused",
      requirement:
        "mTLS client authentication binds the certificate to its client: the second partner's client_id, sent without an assertion over a connection with the first partner's certificate, is refused with invalid_client (or invalid_request when the second partner uses private_key_jwt).",
      reference: 'RFC 8705 §2, §2.1.2; FAPI requirements A4; suite EnsureClientIdInTokenEndpoint',
      skipReason: (ctx) =>
        notIssuing(ctx) ??
        (!ctx.settings.clients.primary.identity
          ? 'the partner has no client certificate'
          : !ctx.settings.clients.second?.clientId || !ctx.settings.clients.second.auth
            ? 'no second partner (clientId and auth) is configured'
            : undefined),
      request: (ctx) => ({
        label: 'token request',
        note: "the second partner's client_id, no assertion, the first partner's certificate",
        client: 'second',
        clientId: ctx.settings.clients.second!.clientId!,
        assertion: 'none',
        certificate: 'primary',
      }),
      expect: (ctx) => ({
        statuses: [400, 401],
        errors: ctx.settings.clients.second!.auth!.method === 'tls_client_auth' ? CLIENT_REFUSED : CLIENT_OR_REQUEST_REFUSED,
      }),
    }),
    refusedRequest({
      id: 'as-ensure-holder-of-key-required',
      title: 'A token request with neither a DPoP proof nor a client certificate is refused',
      requirement:
        'Only sender-constrained tokens are issued: a request with valid client authentication but no DPoP proof and no client certificate is refused (DPoP: 400/401 invalid_request, invalid_grant or invalid_dpop_proof; mTLS: invalid_client, invalid_request or invalid_grant), or in the TLS handshake.',
      reference: 'FAPI2 SP 5.3.2.1-4/-5; FAPI requirements A13; suite EnsureHolderOfKeyRequired',
      request: () => ({ label: 'token request', note: 'no DPoP proof, no client certificate', client: 'primary', proof: 'none', certificate: 'none' }),
      // A tls_client_auth partner without its certificate is not authenticated either: invalid_client refuses too.
      expect: (ctx) => ({
        statuses: [400, 401],
        errors:
          ctx.settings.mode === 'dpop' && ctx.settings.clients.primary.auth?.method !== 'tls_client_auth'
            ? ['invalid_request', 'invalid_grant', 'invalid_dpop_proof']
            : ['invalid_client', 'invalid_request', 'invalid_grant'],
        handshake: true,
      }),
    }),
    refusedRequest({
      id: 'as-dpop-invalid-proof-refused',
      title: 'A token request with an invalid DPoP proof is refused',
      requirement:
        'The token endpoint checks the DPoP proof as RFC 9449 §4.3 says: a proof whose signature does not verify is refused with 400 invalid_dpop_proof.',
      reference: 'RFC 9449 §4.3, §5; FAPI2 SP 5.3.2.1-12; FAPI requirements A14',
      skipReason: needsDpop,
      request: () => ({
        label: 'token request',
        note: 'DPoP proof with a corrupted signature',
        client: 'primary',
        proof: async (input) => corruptSignature(await validTokenProof(input)),
      }),
      expect: () => ({ statuses: [400], errors: ['invalid_dpop_proof'] }),
    }),
    asCheck({
      id: 'as-dpop-nonce-required',
      title: 'A DPoP nonce request is answered as RFC 9449 says, and the retry with the nonce is accepted',
      requirement:
        'When the server wants a nonce, a proof without one gets 400 `use_dpop_nonce` with exactly one valid `DPoP-Nonce` header, and the same request with a proof holding that nonce gets the token. Skipped when the server issues a token without a nonce.',
      reference: 'RFC 9449 §8, §8.1; FAPI requirements A14',
      skipReason: needsDpop,
      async run(ctx, recorder) {
        const withoutNonce = await sendTokenRequest(ctx, recorder, {
          label: 'token request',
          note: 'a valid proof without a nonce',
          client: 'primary',
          proof: (input) => validTokenProof({ ...input, nonce: undefined }),
          retryNonce: false,
        })
        if (withoutNonce.outcome.kind === 'answer' && withoutNonce.outcome.status === 200)
          return skip('a token was issued without a nonce: the server does not ask for DPoP nonces')
        if (withoutNonce.outcome.kind === 'failure') return fail(`no HTTP answer: ${describeFailure(withoutNonce.outcome)}`)
        if (withoutNonce.outcome.status !== 400 || oauthError(withoutNonce) !== 'use_dpop_nonce')
          return fail(`answered ${describeTokenAnswer(withoutNonce)}; expected a token, or 400 error="use_dpop_nonce"`)
        const nonces = headerValues(withoutNonce.outcome.rawHeaders, 'dpop-nonce')
        if (nonces.length !== 1 || !isNonce(nonces[0]!))
          return fail(`use_dpop_nonce with ${nonces.length} DPoP-Nonce headers; exactly one valid nonce is needed (RFC 9449 §8.1)`)
        const nonce = nonces[0]!
        const retried = judgeIssued(
          await sendTokenRequest(ctx, recorder, {
            label: 'token request with the nonce',
            note: 'the same request, the proof holding the DPoP-Nonce just received',
            client: 'primary',
            proof: (input) => validTokenProof({ ...input, nonce }),
            retryNonce: false,
          }),
        )
        return retried.verdict === 'pass' ? pass(`400 use_dpop_nonce with one DPoP-Nonce, then ${retried.reason}`) : retried
      },
    }),
    ...[
      { when: 'before', offset: -10 },
      { when: 'after', offset: 8 },
    ].map(({ when, offset }) =>
      asCheck({
        id: `as-dpop-proof-with-iat-10-seconds-${when}-succeeds`,
        title: `A DPoP proof with iat ${offset} s is accepted`,
        requirement: `Clocks differ: a proof whose \`iat\` is ${Math.abs(offset)} seconds ${when === 'before' ? 'in the past' : 'in the future'} is accepted at the token endpoint (FAPI 2.0 asks for 10 seconds of tolerance; the suite's "after" test uses 8 seconds).`,
        reference: `FAPI2 SP 5.3.2.1-13; RFC 9449 §11.1; FAPI requirements A14; suite EnsureDpopProofWithIat10Seconds${when === 'before' ? 'Before' : 'After'}Succeeds`,
        skipReason: needsDpop,
        run: async (ctx, recorder) =>
          judgeIssued(
            await sendTokenRequest(ctx, recorder, {
              label: 'token request',
              note: `proof iat ${offset} s`,
              client: 'primary',
              proof: (input) =>
                validProof({ key: input.key, htm: 'POST', htu: input.htu, accessToken: undefined, nonce: input.nonce, iat: input.iat + offset }),
            }),
          ),
      }),
    ),
    asCheck({
      id: 'as-refresh-token-bound-to-client',
      title: 'A refresh token is refused to another client and works for its own',
      requirement:
        "Refresh tokens are bound to the client: the partner's refresh token presented by the second partner (its own authentication) is refused with 400 invalid_grant; presented by the partner itself it gets a token. Skipped when no refresh token is issued (client credentials rarely have one, RFC 6749 §4.4.3).",
      reference: 'RFC 6749 §6, §10.4; FAPI2 SP 5.3.2.1-9; FAPI requirements A17; suite FAPI2SPFinalRefreshToken',
      skipReason: (ctx) =>
        notIssuing(ctx) ??
        (asState(ctx).refreshToken === undefined
          ? 'no refresh token was issued'
          : !ctx.settings.clients.second?.clientId || !ctx.settings.clients.second.auth
            ? 'no second partner (clientId and auth) is configured'
            : undefined),
      async run(ctx, recorder) {
        const form = { grant_type: 'refresh_token', refresh_token: asState(ctx).refreshToken! }
        const other = judgeTokenRefusal(
          await sendTokenRequest(ctx, recorder, {
            label: 'refresh by another client',
            note: "the partner's refresh token, the second partner's authentication",
            client: 'second',
            form,
          }),
          { statuses: [400], errors: ['invalid_grant'] },
        )
        if (other.verdict !== 'pass') return other
        const own = judgeIssued(
          await sendTokenRequest(ctx, recorder, {
            label: 'refresh by its client',
            note: "the partner's refresh token, its own authentication",
            client: 'primary',
            form,
          }),
        )
        return own.verdict === 'pass'
          ? pass(`another client: ${other.reason}; its own client: ${own.reason}`)
          : fail(`the refresh token does not work for its own client either: ${own.reason}`)
      },
    }),
    refusedRequest({
      id: 'as-password-grant-refused',
      title: 'The resource owner password credentials grant is refused',
      requirement:
        'FAPI 2.0 does not allow the password grant: grant_type=password with valid client authentication is refused with 400 unsupported_grant_type.',
      reference: 'FAPI2 SP 5.3.2.1-2; RFC 6749 §5.2; FAPI requirements A20',
      request: () => ({
        label: 'token request',
        note: 'grant_type=password',
        client: 'primary',
        form: { grant_type: 'password', username: 'conformance-runner', password: 'not-a-password' },
      }),
      expect: () => ({ statuses: [400], errors: ['unsupported_grant_type'] }),
    }),
    asCheck({
      id: 'as-credential-entropy',
      title: 'Access and refresh tokens carry at least 128 bits of entropy',
      requirement:
        'Credentials the server issues carry at least 128 bits of entropy. Judged black-box on every token issued during these checks: a signed JWT by its signature; an opaque value by its length and alphabet after what all values share (at least 22 apparently random base64url characters). A value that cannot hold 128 bits fails; a heuristic cannot prove randomness.',
      reference: 'FAPI2 SP 5.4.1-4; RFC 6749 §10.10; FAPI requirements A19',
      skipReason: (ctx) => noEndpoint(ctx) ?? (asState(ctx).accessTokens.length === 0 ? 'no token was issued' : undefined),
      async run(ctx) {
        const state = asState(ctx)
        const judgements = [
          judgeEntropy('access tokens', state.accessTokens),
          ...(state.refreshTokens.length > 0 ? [judgeEntropy('refresh tokens', state.refreshTokens)] : []),
        ]
        const reasons = judgements.map((j) => j.reason).join('; ')
        if (judgements.some((j) => j.verdict === 'too-little')) return fail(reasons)
        if (judgements.some((j) => j.verdict === 'unknown')) return skip(reasons)
        return pass(reasons)
      },
    }),
  ]
}
