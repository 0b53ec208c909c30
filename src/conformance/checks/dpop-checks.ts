// DPoP at the resource (RFC 9449 §4.3 checks 1-12, §7), in the order of the conformance
// suite's FAPI2SPFinalDpopNegativeTests plus its positive modules. Each negative is sent right
// after a valid call, so a refusal can only be due to the one thing that is wrong.
import { KeyObject, randomBytes, randomUUID } from 'node:crypto'
import type { CheckDefinition } from '../check.ts'
import { htuOf, withQueryParameter, type CallSpec, type DpopCredentials, type Recorder, type RunContext } from '../context.ts'
import { describeAnswer, fail, isSuccess, judgeRefusal, judgeSuccess, pass, type Outcome, type RefusalExpectation } from '../judge.ts'
import type { Level } from '../model.ts'
import {
  accessTokenHash,
  corruptSignature,
  draftProof,
  generateDpopKey,
  privateJwkOf,
  signDraft,
  signDraftByHand,
  unsecuredProof,
  validProof,
  withoutSignature,
  type DpopKey,
  type ProofDraft,
  type ProofInput,
} from '../proofs.ts'

/** What a case needs to build its request; tests provide it without a target. */
export interface DpopEnv {
  readonly token: string
  readonly key: DpopKey
  readonly method: string
  /** The target URL as configured. */
  readonly url: string
  /** The target URL without query and fragment (RFC 9449 §4.2). */
  readonly htu: string
  readonly nonce: string | undefined
  /** Seconds since the epoch. */
  readonly now: number
  /** A valid proof input for the primary key and token, changed as given. */
  input(overrides?: Partial<ProofInput>): ProofInput
  /** A key and a token bound to it, RSA (for RS256). */
  rsa(): Promise<DpopCredentials>
  /** Another client's key and token. */
  second(): Promise<DpopCredentials>
}

export interface DpopRequest {
  /** `Authorization` value; null sends none. Default `DPoP <token>`. */
  readonly authorization?: string | null
  readonly proofs: readonly string[]
  readonly proofHeaderName?: string
  readonly url?: string
  /** What is special about this request, for the report. */
  readonly note: string
}

export interface DpopCase {
  readonly id: string
  readonly title: string
  readonly requirement: string
  readonly reference: string
  readonly expect: 'accepted' | RefusalExpectation
  readonly level?: Level | ((ctx: RunContext) => Level)
  readonly skipReason?: (ctx: RunContext) => string | undefined
  build(env: DpopEnv): Promise<DpopRequest>
}

export const PROOF_REFUSED: RefusalExpectation = { statuses: [400, 401], scheme: 'DPoP', errors: ['invalid_dpop_proof'] }
const BINDING_REFUSED: RefusalExpectation = { statuses: [400, 401], scheme: 'DPoP', errors: ['invalid_token', 'invalid_dpop_proof'] }

const SUITE_QUERY_AND_FRAGMENT = '?allthedoorsonthisspaceshiphavebeen#programmedtohaveacheeryandsunnydisposition'
const HOUR = 3600

/** With server nonces, freshness comes from the nonce and the suite only warns on iat ±1 h (RFC 9449 §11.1). */
const iatLevel = (ctx: RunContext): Level => (ctx.nonceChallenges.length > 0 ? 'recommended' : 'required')

async function signed(env: DpopEnv, change: (draft: ProofDraft) => void, overrides?: Partial<ProofInput>): Promise<string> {
  const draft = draftProof(env.input(overrides))
  change(draft)
  return signDraft(draft, env.key.privateKey)
}

function missingHeader(name: 'typ' | 'jwk'): DpopCase {
  return {
    id: `dpop-missing-${name}-refused`,
    title: `A proof without the \`${name}\` header parameter is refused`,
    requirement: `The proof's JOSE header must contain \`${name}\`.`,
    reference: 'RFC 9449 §4.2, §4.3 check 3; suite FAPI2SPFinalDpopNegativeTests',
    expect: PROOF_REFUSED,
    build: async (env) => ({ proofs: [await signed(env, (d) => delete d.header[name])], note: `header parameter ${name} removed` }),
  }
}

function missingClaim(name: 'jti' | 'htm' | 'htu' | 'iat' | 'ath'): DpopCase {
  return {
    id: `dpop-missing-${name}-refused`,
    title: `A proof without the \`${name}\` claim is refused`,
    requirement:
      name === 'ath' ? 'A proof sent with an access token must contain `ath`, the hash of that token.' : `The proof must contain the \`${name}\` claim.`,
    reference: name === 'ath' ? 'RFC 9449 §4.3 checks 3 and 12, §7.1' : 'RFC 9449 §4.2, §4.3 check 3',
    expect: PROOF_REFUSED,
    build: async (env) => ({ proofs: [await signed(env, (d) => delete d.claims[name])], note: `claim ${name} removed` }),
  }
}

function rejected(
  id: string,
  title: string,
  requirement: string,
  reference: string,
  build: DpopCase['build'],
  expect: RefusalExpectation = PROOF_REFUSED,
): DpopCase {
  return { id, title, requirement, reference, expect, build }
}

function accepted(id: string, title: string, requirement: string, reference: string, build: DpopCase['build'], level?: Level): DpopCase {
  return { id, title, requirement, reference, expect: 'accepted', build, ...(level && { level }) }
}

/** The cases before the replay check. */
export const DPOP_CASES_BEFORE_REPLAY: readonly DpopCase[] = [
  accepted(
    'dpop-header-name-case-accepted',
    'The DPoP header name is case-insensitive',
    'A `DPOP:` header is the `DPoP` header: HTTP field names are case-insensitive.',
    'RFC 9110 §5.1; RFC 9449 §4.1',
    async (env) => ({ proofs: [await validProof(env.input())], proofHeaderName: 'DPOP', note: 'header sent as "DPOP"' }),
  ),
  rejected(
    'dpop-two-headers-refused',
    'Two DPoP headers are refused',
    'A request with more than one DPoP header must be refused.',
    'RFC 9449 §4.3 check 1',
    async (env) => ({ proofs: [await validProof(env.input()), await validProof(env.input())], note: 'two DPoP headers, each a valid proof' }),
    { statuses: [400, 401], scheme: 'DPoP', errors: ['invalid_request', 'invalid_dpop_proof'] },
  ),
  rejected(
    'dpop-two-part-jwt-refused',
    'A two-part JWT is refused',
    'The DPoP header must hold one well-formed compact JWS (three segments).',
    'RFC 9449 §4.3 check 2',
    async (env) => ({ proofs: [withoutSignature(await validProof(env.input()))], note: 'signature segment removed' }),
  ),
  missingHeader('typ'),
  {
    id: 'dpop-missing-alg-refused',
    title: 'A proof without the `alg` header parameter is refused',
    requirement: "The proof's JOSE header must contain `alg`.",
    reference: 'RFC 9449 §4.2, §4.3 check 3; suite FAPI2SPFinalDpopNegativeTests',
    expect: PROOF_REFUSED,
    async build(env) {
      const draft = draftProof(env.input())
      draft.header.alg2 = draft.header.alg
      delete draft.header.alg
      return { proofs: [signDraftByHand(draft, env.key)], note: "header parameter alg renamed to alg2 (signed with the key's algorithm)" }
    },
  },
  missingHeader('jwk'),
  missingClaim('jti'),
  missingClaim('htm'),
  missingClaim('htu'),
  missingClaim('iat'),
  missingClaim('ath'),
  rejected(
    'dpop-wrong-typ-refused',
    'A proof with the wrong `typ` is refused',
    'The `typ` header parameter must be exactly `dpop+jwt`.',
    'RFC 9449 §4.3 check 4, §11.5',
    async (env) => ({ proofs: [await signed(env, (d) => (d.header.typ = 'dpop+jwt+wrongyousee'))], note: 'typ "dpop+jwt+wrongyousee"' }),
  ),
  rejected(
    'dpop-rs256-refused',
    'A proof signed with RS256 is refused',
    "Only PS256, ES256 and EdDSA may be used; a proof signed RS256 with the client's RSA key must be refused.",
    'RFC 9449 §4.3 check 5; FAPI2 SP 5.4.1-1',
    async (env) => {
      const { key, token } = await env.rsa()
      const draft = draftProof({ ...env.input(), key, accessToken: token })
      draft.header.alg = 'RS256'
      const proof = await signDraft(draft, KeyObject.from(key.privateKey as unknown as Parameters<typeof KeyObject.from>[0]))
      return { authorization: `DPoP ${token}`, proofs: [proof], note: 'RS256 signature with an RSA key; the token is bound to that key' }
    },
  ),
  rejected(
    'dpop-alg-none-refused',
    'An unsigned proof (`alg: none`) is refused',
    'The proof must be signed with an asymmetric algorithm; `none` is never accepted.',
    'RFC 9449 §4.3 check 5',
    async (env) => ({ proofs: [unsecuredProof(draftProof(env.input()))], note: 'alg "none", empty signature' }),
  ),
  rejected(
    'dpop-hs256-refused',
    'A proof signed with HMAC (HS256) is refused',
    'Symmetric (MAC) algorithms are not allowed for DPoP proofs.',
    'RFC 9449 §4.3 check 5, §11.6; FAPI2 SP 5.4.1-1',
    async (env) => {
      const draft = draftProof(env.input())
      draft.header.alg = 'HS256'
      return { proofs: [await signDraft(draft, randomBytes(32))], note: "HS256 with a random secret; jwk still the client's public key" }
    },
  ),
  rejected(
    'dpop-corrupted-signature-refused',
    'A proof with a corrupted signature is refused',
    "The proof's signature must verify with the key in its `jwk` header parameter.",
    'RFC 9449 §4.3 check 6',
    async (env) => ({ proofs: [corruptSignature(await validProof(env.input()))], note: 'one bit of the signature flipped' }),
  ),
  rejected(
    'dpop-jwk-private-refused',
    'A proof whose `jwk` holds the private key is refused',
    'The `jwk` header parameter must not contain a private key.',
    'RFC 9449 §4.3 check 7',
    async (env) => {
      const privateJwk = await privateJwkOf(env.key)
      return { proofs: [await signed(env, (d) => (d.header.jwk = privateJwk))], note: 'jwk carries the private key members' }
    },
  ),
  rejected(
    'dpop-wrong-htm-refused',
    'A proof with the wrong `htm` is refused',
    'The `htm` claim must equal the request method.',
    'RFC 9449 §4.3 check 8',
    async (env) => {
      const htm = env.method === 'PUT' ? 'POST' : 'PUT'
      return { proofs: [await validProof(env.input({ htm }))], note: `htm "${htm}" on a ${env.method} request` }
    },
  ),
  accepted(
    'dpop-htu-query-fragment-accepted',
    'An `htu` with a query and a fragment is accepted',
    'The `htu` comparison ignores query and fragment: an `htu` that carries them still matches.',
    'RFC 9449 §4.3 check 9; suite FAPI2SPFinalDpopNegativeTests',
    async (env) => ({
      proofs: [await validProof(env.input({ htu: env.htu + SUITE_QUERY_AND_FRAGMENT }))],
      note: "htu with the suite's query and fragment appended",
    }),
  ),
  accepted(
    'dpop-htu-request-query-accepted',
    'A request with a query, and an `htu` without it, is accepted',
    "The `htu` comparison ignores the request's query: a proof whose `htu` omits it matches.",
    'RFC 9449 §4.3 check 9, §4.2',
    async (env) => ({
      url: withQueryParameter(env.url, 'fapi-conformance', 'query-not-in-htu'),
      proofs: [await validProof(env.input())],
      note: 'query fapi-conformance=query-not-in-htu on the request only',
    }),
  ),
  rejected(
    'dpop-htu-wrong-path-refused',
    'A proof for another path is refused',
    'The `htu` claim must match the request URI (scheme, host, port and path).',
    'RFC 9449 §4.3 check 9',
    async (env) => ({ proofs: [await validProof(env.input({ htu: `${env.htu}ohnonotagain` }))], note: 'htu path with "ohnonotagain" appended' }),
  ),
  {
    ...rejected(
      'dpop-iat-future-1h-refused',
      'A proof issued an hour in the future is refused',
      "The proof's creation time (`iat`) must be within an acceptable window.",
      'RFC 9449 §4.3 check 11, §11.1',
      async (env) => ({ proofs: [await validProof(env.input({ iat: env.now + HOUR }))], note: 'iat now + 1 h' }),
    ),
    level: iatLevel,
  },
  {
    ...rejected(
      'dpop-iat-past-1h-refused',
      'A proof issued an hour ago is refused',
      "The proof's creation time (`iat`) must be within an acceptable window.",
      'RFC 9449 §4.3 check 11, §11.1',
      async (env) => ({ proofs: [await validProof(env.input({ iat: env.now - HOUR }))], note: 'iat now − 1 h' }),
    ),
    level: iatLevel,
  },
]

/** The cases after the replay check. */
export const DPOP_CASES_AFTER_REPLAY: readonly DpopCase[] = [
  rejected(
    'dpop-wrong-ath-refused',
    'A proof with the wrong `ath` is refused',
    'The `ath` claim must be the base64url SHA-256 hash of the access token sent.',
    'RFC 9449 §4.3 check 12, §7.1',
    async (env) => ({ proofs: [await signed(env, (d) => (d.claims.ath = accessTokenHash(`${env.token}.not-this-token`)))], note: 'ath of another token' }),
  ),
  rejected(
    'dpop-other-key-refused',
    'A proof signed by another key is refused',
    "The proof key's RFC 7638 thumbprint must equal the token's `cnf.jkt`.",
    'RFC 9449 §6.1, §7.1 (check 12)',
    async (env) => {
      const other = await generateDpopKey(env.key.alg)
      return { proofs: [await validProof(env.input({ key: other }))], note: 'valid proof by a freshly generated key' }
    },
    BINDING_REFUSED,
  ),
  {
    ...rejected(
      'dpop-cross-client-refused',
      "Another client's token with this client's proof is refused",
      "A token bound to client 2's key must not be usable with client 1's DPoP key.",
      'RFC 9449 §7.1; suite switchToClient1AndTryClient2AccessToken',
      async (env) => {
        const second = await env.second()
        return {
          authorization: `DPoP ${second.token}`,
          proofs: [await validProof(env.input({ accessToken: second.token }))],
          note: "second client's token, primary client's key",
        }
      },
      BINDING_REFUSED,
    ),
    skipReason: (ctx) => (ctx.settings.clients.second === undefined && !ctx.tokenSource.bindsAnyCertificate ? 'no second client is configured' : undefined),
  },
  accepted(
    'dpop-extra-parameters-accepted',
    'Unknown header parameters and claims are ignored',
    'A proof may carry header parameters and claims the resource does not know; they are ignored.',
    'RFC 9449 §4.2; suite FAPI2SPFinalDpopNegativeTests',
    async (env) => ({
      proofs: [
        await signed(env, (d) => {
          d.header.tx_id_key = randomUUID()
          d.claims.tx_id = randomUUID()
        }),
      ],
      note: 'extra header parameter tx_id_key and claim tx_id',
    }),
  ),
  accepted(
    'dpop-htu-uppercase-accepted',
    'An `htu` with an upper-case scheme and host is accepted',
    'Scheme and host are case-insensitive (RFC 3986 §6.2.2.1); the resource should normalise before comparing.',
    'RFC 9449 §4.3 check 9; RFC 3986 §6.2.2.1',
    async (env) => {
      const url = new URL(env.htu)
      return {
        proofs: [await validProof(env.input({ htu: `${url.protocol.toUpperCase()}//${url.host.toUpperCase()}${url.pathname}` }))],
        note: 'htu scheme and host in upper case',
      }
    },
    'recommended',
  ),
  {
    ...accepted(
      'dpop-htu-default-port-accepted',
      'An `htu` with the explicit default port :443 is accepted',
      'The default port may be written out (RFC 3986 §6.2.3); the resource should normalise before comparing.',
      'RFC 9449 §4.3 check 9; RFC 3986 §6.2.3',
      async (env) => {
        const url = new URL(env.htu)
        return { proofs: [await validProof(env.input({ htu: `${url.protocol}//${url.hostname}:443${url.pathname}` }))], note: 'htu with an explicit :443' }
      },
      'recommended',
    ),
    skipReason: (ctx) => {
      const url = new URL(ctx.settings.target.url)
      return url.port === '' ? undefined : `the target listens on port ${url.port}, so its URL already carries an explicit port; :443 does not apply`
    },
  },
  rejected(
    'dpop-no-proof-refused',
    'The DPoP scheme without a DPoP header is refused',
    'A DPoP-bound token sent with the DPoP scheme must come with a proof.',
    'RFC 9449 §7.1',
    async () => ({ proofs: [], note: 'no DPoP header' }),
    { statuses: [400, 401], scheme: 'DPoP', errors: ['invalid_dpop_proof', 'invalid_request'] },
  ),
  rejected(
    'dpop-bearer-downgrade-refused',
    'A DPoP-bound token sent as Bearer is refused',
    'A DPoP-bound token must not be accepted with the Bearer scheme (downgrade).',
    'RFC 9449 §7.2; FAPI2 SP 5.3.4-1',
    async (env) => ({ authorization: `Bearer ${env.token}`, proofs: [], note: 'Authorization: Bearer, no DPoP header' }),
    { statuses: [400, 401], scheme: 'any', errors: ['invalid_token', 'invalid_request'] },
  ),
  accepted(
    'dpop-nbf-exp-accepted',
    'A proof with `nbf` and `exp` is accepted',
    'A proof may carry `nbf` (now) and `exp` (now + 5 min); a resource that honours them must accept a current proof.',
    'RFC 9449 §4.2; RFC 7519 §4.1.4-4.1.5; suite FAPI2SPFinalCheckDpopProofNbfExp',
    async (env) => ({
      proofs: [
        await signed(env, (d) => {
          d.claims.nbf = env.now
          d.claims.exp = env.now + 300
        }),
      ],
      note: 'nbf now, exp now + 5 min',
    }),
  ),
  accepted(
    'dpop-iat-10s-early-accepted',
    'A proof issued 10 s ago is accepted',
    'A proof created 10 seconds before the request must be accepted.',
    'FAPI2 SP 5.3.2.1-13; RFC 9449 §4.3 check 11; suite ...EnsureDpopProofWithIat10SecondsBeforeSucceeds',
    async (env) => ({ proofs: [await validProof(env.input({ iat: env.now - 10 }))], note: 'iat now − 10 s' }),
  ),
  accepted(
    'dpop-iat-8s-late-accepted',
    'A proof issued 8 s in the future is accepted',
    'Clock skew: a proof whose `iat` is 8 seconds ahead must be accepted.',
    'FAPI2 SP 5.3.2.1-13; RFC 9449 §4.3 check 11; suite ...EnsureDpopProofWithIat10SecondsAfterSucceeds',
    async (env) => ({ proofs: [await validProof(env.input({ iat: env.now + 8 }))], note: 'iat now + 8 s' }),
  ),
  accepted(
    'dpop-scheme-case-accepted',
    'The authorization scheme is case-insensitive',
    '`Authorization: dPoP <token>` is the DPoP scheme: auth scheme names are case-insensitive.',
    'RFC 9110 §11.1; suite FAPI2SPFinalAccessTokenTypeHeaderCaseSensitivity',
    async (env) => ({ authorization: `dPoP ${env.token}`, proofs: [await validProof(env.input())], note: 'scheme written "dPoP"' }),
  ),
]

export function dpopSkipReason(ctx: RunContext): string | undefined {
  if (ctx.settings.mode !== 'dpop') return 'the target is assessed in mtls mode'
  if (!ctx.state.primaryDpop) return `no access token (${ctx.state.tokenError ?? 'see token-acquisition'})`
  if (ctx.state.baselineFailed) return 'the baseline call was not accepted (see dpop-baseline-accepted)'
  return undefined
}

export function dpopEnvOf(ctx: RunContext, recorder: Recorder, nonce: string | undefined): DpopEnv {
  const { key, token } = ctx.state.primaryDpop!
  const { method, url } = ctx.settings.target
  const htu = htuOf(url)
  const now = ctx.nowSeconds()
  const base: ProofInput = { key, htm: method, htu, accessToken: token, nonce, iat: now }
  return {
    token,
    key,
    method,
    url,
    htu,
    nonce,
    now,
    input: (overrides) => ({ ...base, ...overrides }),
    rsa: () => ctx.dpopCredentials(recorder, 'rsa'),
    second: () => ctx.dpopCredentials(recorder, 'second'),
  }
}

export function dpopCallSpec(ctx: RunContext, label: string, env: DpopEnv, request: DpopRequest): CallSpec {
  const authorization = request.authorization === undefined ? `DPoP ${env.token}` : (request.authorization ?? undefined)
  const { headers, interactionId } = ctx.resourceHeaders({
    authorization,
    proofs: request.proofs,
    ...(request.proofHeaderName && { proofHeaderName: request.proofHeaderName }),
  })
  return {
    label,
    method: ctx.settings.target.method,
    url: request.url ?? ctx.settings.target.url,
    headers,
    ...(ctx.settings.target.body !== undefined && { body: ctx.settings.target.body }),
    notes: [request.note],
    ...(interactionId !== undefined && { interactionId }),
  }
}

/** A plain valid DPoP call with the primary token. */
export function validDpopCall(ctx: RunContext, recorder: Recorder, label: string) {
  return ctx.dpopCall(recorder, async (nonce) => {
    const env = dpopEnvOf(ctx, recorder, nonce)
    return dpopCallSpec(ctx, label, env, { proofs: [await validProof(env.input())], note: 'valid proof' })
  })
}

function caseCheck(c: DpopCase): CheckDefinition {
  return {
    id: c.id,
    title: c.title,
    section: 'dpop',
    requirement: c.requirement,
    reference: c.reference,
    level: c.level ?? 'required',
    modes: ['dpop'],
    skipReason: (ctx) => dpopSkipReason(ctx) ?? c.skipReason?.(ctx),
    async run(ctx, recorder): Promise<Outcome> {
      if (c.expect !== 'accepted') {
        const before = await validDpopCall(ctx, recorder, 'valid call first')
        if (!isSuccess(before))
          return fail(`the valid call made just before was answered ${describeAnswer(before)}; the target may penalise the token after bad proofs (R42)`)
      }
      const outcome = await ctx.dpopCall(recorder, async (nonce) => {
        const env = dpopEnvOf(ctx, recorder, nonce)
        return dpopCallSpec(ctx, c.expect === 'accepted' ? 'request' : 'negative', env, await c.build(env))
      })
      return c.expect === 'accepted' ? judgeSuccess(outcome) : judgeRefusal(outcome, c.expect)
    },
  }
}

const baselineCheck: CheckDefinition = {
  id: 'dpop-baseline-accepted',
  title: 'A valid DPoP request is accepted',
  section: 'dpop',
  level: 'required',
  modes: ['dpop'],
  requirement:
    'A DPoP-bound token sent with the DPoP scheme and a valid proof is accepted with 200 or 201. Plain DPoP deployments must not require a TLS client certificate (R54): the runner presents none unless the partner has one configured, as in mTLS ecosystems that also adopt DPoP.',
  reference: 'FAPI2 SP 5.3.4-1; RFC 9449 §7.1; FAPI requirements R1, R54; suite EnsureHttpStatusCodeIs200or201',
  skipReason: (ctx) =>
    ctx.settings.mode !== 'dpop'
      ? 'the target is assessed in mtls mode'
      : ctx.state.primaryDpop
        ? undefined
        : `no access token (${ctx.state.tokenError ?? 'see token-acquisition'})`,
  async run(ctx, recorder) {
    const outcome = judgeSuccess(await validDpopCall(ctx, recorder, 'baseline'))
    if (outcome.verdict !== 'pass') ctx.state.baselineFailed = true
    return outcome
  },
}

const replayCheck: CheckDefinition = {
  id: 'dpop-jti-replay-refused',
  title: 'A replayed proof is refused',
  section: 'dpop',
  level: 'required',
  modes: ['dpop'],
  requirement:
    'A proof is used once: its first use is accepted and the same proof (same `jti`) sent again is refused. The suite only warns here; this runner requires it because FAPI 2.0 relies on it against stolen proofs.',
  reference: 'RFC 9449 §11.1; FAPI2 SP §6.2 (attacker A5); suite FAPI2SPFinalDpopNegativeTests (W)',
  skipReason: dpopSkipReason,
  async run(ctx, recorder) {
    const jti = randomUUID()
    const proofs = new Map<string, Promise<string>>()
    const build =
      (label: string) =>
      async (nonce: string | undefined): Promise<CallSpec> => {
        const env = dpopEnvOf(ctx, recorder, nonce)
        // The same proof string while the nonce is unchanged; with a new nonce, the same jti.
        const cacheKey = nonce ?? ''
        if (!proofs.has(cacheKey)) proofs.set(cacheKey, validProof(env.input({ jti })))
        return dpopCallSpec(ctx, label, env, { proofs: [await proofs.get(cacheKey)!], note: 'proof with a fixed jti' })
      }
    const first = await ctx.dpopCall(recorder, build('first use'))
    if (!isSuccess(first)) return fail(`the first use of the proof was answered ${describeAnswer(first)}; it must be accepted`)
    return judgeRefusal(await ctx.dpopCall(recorder, build('same proof again')), PROOF_REFUSED)
  },
}

const stillWorksCheck: CheckDefinition = {
  id: 'dpop-token-still-works',
  title: 'After all the bad proofs, the same token still works',
  section: 'dpop',
  level: 'required',
  modes: ['dpop'],
  requirement: 'Refused proofs must not revoke, lock or rate-limit the access token: a valid proof with the same token is accepted at the end.',
  reference: 'FAPI requirements R42; suite FAPI2SPFinalDpopNegativeTests (final call)',
  skipReason: dpopSkipReason,
  async run(ctx, recorder) {
    const outcome = judgeSuccess(await validDpopCall(ctx, recorder, 'final valid call'))
    return outcome.verdict === 'pass' ? pass(`${outcome.reason} after every negative`) : outcome
  },
}

export function dpopChecks(): CheckDefinition[] {
  return [baselineCheck, ...DPOP_CASES_BEFORE_REPLAY.map(caseCheck), replayCheck, ...DPOP_CASES_AFTER_REPLAY.map(caseCheck), stillWorksCheck]
}
