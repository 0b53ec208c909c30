// Response hygiene and DPoP nonces. Most of these judge every answer the run received, so
// they run last: Date on every answer, the interaction id echoed, 200/201 for success, and
// the shape of every nonce challenge and DPoP-Nonce header.
import type { CheckDefinition } from '../check.ts'
import { htuOf, type AnswerSeen, type CallSpec, type Recorder, type RunContext } from '../context.ts'
import { challengesOf, findChallenge, isNonce, isUuid } from '../challenges.ts'
import { headerValues } from '../http.ts'
import { describeAnswer, fail, judgeSuccess, pass, skip, warn, type Outcome } from '../judge.ts'
import { validProof } from '../proofs.ts'

const DATE_TOLERANCE_MS = 5 * 60_000
const LISTED = 5

function listed(answers: readonly AnswerSeen[]): string {
  const shown = answers
    .slice(0, LISTED)
    .map((a) => `${a.checkId} (${a.label}, ${a.status})`)
    .join('; ')
  return answers.length > LISTED ? `${shown}; and ${answers.length - LISTED} more` : shown
}

/** A valid call with the primary credentials, in either mode, with extra or fewer headers. */
async function validCall(
  ctx: RunContext,
  recorder: Recorder,
  label: string,
  options: { accept?: string; extra?: [string, string][]; interactionId?: false; note: string },
) {
  const { target } = ctx.settings
  const build = async (nonce: string | undefined): Promise<CallSpec> => {
    const dpop = ctx.state.primaryDpop
    const token = (dpop ?? ctx.state.primaryMtls)!.token
    const proofs = dpop
      ? [await validProof({ key: dpop.key, htm: target.method, htu: htuOf(target.url), accessToken: token, nonce, iat: ctx.nowSeconds() })]
      : []
    const { headers, interactionId } = ctx.resourceHeaders({
      authorization: `${dpop ? 'DPoP' : 'Bearer'} ${token}`,
      proofs,
      ...(options.accept !== undefined && { accept: options.accept }),
      ...(options.extra && { extra: options.extra }),
      ...(options.interactionId === false && { interactionId: false }),
    })
    return {
      label,
      method: target.method,
      url: target.url,
      headers,
      ...(target.body !== undefined && { body: target.body }),
      ...(ctx.state.primaryMtls && { identity: ctx.state.primaryMtls.identity }),
      notes: [options.note],
      ...(interactionId !== undefined && { interactionId }),
    }
  }
  return ctx.state.primaryDpop ? ctx.dpopCall(recorder, build) : ctx.call(recorder, await build(undefined))
}

function needsBaseline(ctx: RunContext): string | undefined {
  if (!ctx.state.primaryDpop && !ctx.state.primaryMtls) return `no access token (${ctx.state.tokenError ?? 'see token-acquisition'})`
  if (ctx.state.baselineFailed) return 'the baseline call was not accepted'
  return undefined
}

export function hygieneChecks(): CheckDefinition[] {
  return [
    {
      id: 'fapi-request-headers-accepted',
      title: "The suite's optional request headers are tolerated",
      section: 'hygiene',
      level: 'recommended',
      requirement:
        'Valid requests that also carry `Accept: application/json; charset=UTF-8` with `Accept-Charset: UTF-8` and an IPv6 `x-fapi-customer-ip-address`, or a permissive `Accept`, are accepted.',
      reference: 'FAPI requirements R52; suite FAPI2SPFinalHappyFlow',
      skipReason: needsBaseline,
      async run(ctx, recorder): Promise<Outcome> {
        const first = judgeSuccess(
          await validCall(ctx, recorder, 'charset and IPv6', {
            accept: 'application/json; charset=UTF-8',
            extra: [
              ['Accept-Charset', 'UTF-8'],
              ['x-fapi-customer-ip-address', '2001:DB8::1893:25c8:1946'],
            ],
            note: 'Accept with charset, Accept-Charset, IPv6 customer address',
          }),
        )
        if (first.verdict !== 'pass') return first
        const second = judgeSuccess(
          await validCall(ctx, recorder, 'permissive Accept', { accept: 'application/json, application/*+json, */*', note: 'permissive Accept' }),
        )
        return second.verdict === 'pass' ? pass('both variants accepted') : second
      },
    },
    {
      id: 'interaction-id-generated',
      title: 'An x-fapi-interaction-id is generated when none is sent',
      section: 'hygiene',
      level: 'recommended',
      requirement: 'When the request carries no `x-fapi-interaction-id`, the answer carries a fresh one, an RFC 4122 UUID.',
      reference: 'FAPI 2.0 Implementation Advice §2.2.1; FAPI requirements R51',
      skipReason: needsBaseline,
      async run(ctx, recorder): Promise<Outcome> {
        const outcome = await validCall(ctx, recorder, 'no interaction id', { interactionId: false, note: 'no x-fapi-interaction-id' })
        if (outcome.kind !== 'answer') return fail(`no HTTP answer: ${describeAnswer(outcome)}`)
        const values = headerValues(outcome.rawHeaders, 'x-fapi-interaction-id')
        if (values.length === 0) return fail('the answer has no x-fapi-interaction-id')
        return values.length === 1 && isUuid(values[0]!)
          ? pass(`answered with the UUID ${values[0]}`)
          : fail(`x-fapi-interaction-id is not one UUID: ${values.join(', ')}`)
      },
    },
  ]
}

/** Judged over every answer of the run; they go last. */
export function runWideChecks(): CheckDefinition[] {
  return [
    {
      id: 'interaction-id-echoed',
      title: 'x-fapi-interaction-id is echoed',
      section: 'hygiene',
      level: 'required',
      requirement:
        'When the request carries an `x-fapi-interaction-id`, the answer carries the same value (the suite fails an answer whose value differs; an absent one is a warning here).',
      reference: 'FAPI 2.0 Implementation Advice §2.2.1; suite CheckForFAPIInteractionIdInResourceResponse, EnsureMatchingFAPIInteractionId',
      async run(ctx): Promise<Outcome> {
        const sent = ctx.answers.filter((a) => a.interactionIdSent !== undefined)
        if (sent.length === 0) return skip('no answer to a request with an interaction id')
        const mismatched = sent.filter((a) => {
          const values = headerValues(a.rawHeaders, 'x-fapi-interaction-id')
          return values.length > 0 && (values.length !== 1 || values[0] !== a.interactionIdSent)
        })
        if (mismatched.length > 0) return fail(`${mismatched.length} of ${sent.length} answers carry a different x-fapi-interaction-id: ${listed(mismatched)}`)
        const missing = sent.filter((a) => headerValues(a.rawHeaders, 'x-fapi-interaction-id').length === 0)
        if (missing.length > 0) return warn(`${missing.length} of ${sent.length} answers do not echo x-fapi-interaction-id: ${listed(missing)}`)
        return pass(`all ${sent.length} answers echoed the interaction id sent`)
      },
    },
    {
      id: 'date-header',
      title: 'Every answer carries a current Date header',
      section: 'hygiene',
      level: 'required',
      requirement: 'Every answer, refusals included, carries a `Date` header within five minutes of the real time.',
      reference: 'RFC 9110 §6.6.1; suite CheckForDateHeaderInResourceResponse',
      async run(ctx): Promise<Outcome> {
        if (ctx.answers.length === 0) return skip('no HTTP answer was received')
        const bad = ctx.answers.filter((a) => {
          const values = headerValues(a.rawHeaders, 'date')
          const at = values.length === 1 ? Date.parse(values[0]!) : Number.NaN
          return Number.isNaN(at) || Math.abs(at - a.receivedAtMs) > DATE_TOLERANCE_MS
        })
        return bad.length === 0
          ? pass(`all ${ctx.answers.length} answers carried a current Date`)
          : fail(`${bad.length} of ${ctx.answers.length} answers lack a valid, current Date: ${listed(bad)}`)
      },
    },
    {
      id: 'success-status',
      title: 'Success is answered 200 or 201',
      section: 'hygiene',
      level: 'required',
      requirement: 'A successful resource request is answered 200 or 201; the suite fails any other 2xx, 204 included.',
      reference: 'FAPI requirements R1; suite EnsureHttpStatusCodeIs200or201',
      async run(ctx): Promise<Outcome> {
        const successes = ctx.answers.filter((a) => a.status >= 200 && a.status < 300)
        if (successes.length === 0) return skip('no request was accepted')
        const other = successes.filter((a) => a.status !== 200 && a.status !== 201)
        return other.length === 0
          ? pass(`all ${successes.length} accepted requests were answered 200 or 201`)
          : fail(`${other.length} accepted requests were answered with another 2xx: ${listed(other)}`)
      },
    },
    {
      id: 'nonce-challenge-shape',
      title: 'A nonce challenge has the shape RFC 9449 gives',
      section: 'nonce',
      level: 'required',
      modes: ['dpop'],
      requirement:
        'When the target wants a nonce it answers 401 with `WWW-Authenticate: DPoP error="use_dpop_nonce"` and exactly one valid `DPoP-Nonce` header; the client\'s retry with that nonce is then accepted.',
      reference: 'RFC 9449 §9, §8.1; suite CallProtectedResourceAllowingDpopNonceError',
      skipReason: (ctx) =>
        ctx.settings.mode !== 'dpop'
          ? 'the target is assessed in mtls mode'
          : ctx.nonceChallenges.length === 0
            ? 'the target never asked for a DPoP nonce'
            : undefined,
      async run(ctx): Promise<Outcome> {
        const problems: string[] = []
        for (const answer of ctx.nonceChallenges) {
          const where = `${answer.checkId} (${answer.label})`
          if (answer.status !== 401) problems.push(`${where}: status ${answer.status}, not 401 (a 400 breaks the suite's retry)`)
          const challenge = findChallenge(challengesOf(answer.rawHeaders), 'DPoP')
          if (!challenge || challenge.params.error !== 'use_dpop_nonce' || !challenge.quoted.has('error'))
            problems.push(`${where}: no DPoP challenge with error="use_dpop_nonce"`)
          const nonces = headerValues(answer.rawHeaders, 'dpop-nonce')
          if (nonces.length !== 1 || !isNonce(nonces[0]!))
            problems.push(`${where}: ${nonces.length} DPoP-Nonce headers${nonces.length === 1 ? ' with a value that is not 1*NQCHAR' : ''}`)
        }
        if (problems.length > 0) return fail(problems.slice(0, LISTED).join('; '))
        return pass(`${ctx.nonceChallenges.length} nonce challenges, each 401 + DPoP error="use_dpop_nonce" + one valid DPoP-Nonce; the retries were accepted`)
      },
    },
    {
      id: 'nonce-header-syntax',
      title: 'Every DPoP-Nonce header is valid',
      section: 'nonce',
      level: 'required',
      modes: ['dpop'],
      requirement: 'An answer carries at most one `DPoP-Nonce` header and its value is a non-empty run of NQCHAR.',
      reference: 'RFC 9449 §8.1, §8.2; suite DpopNonceResponseHeader',
      skipReason: (ctx) => (ctx.answers.some((a) => headerValues(a.rawHeaders, 'dpop-nonce').length > 0) ? undefined : 'the target sent no DPoP-Nonce header'),
      async run(ctx): Promise<Outcome> {
        const carrying = ctx.answers.filter((a) => headerValues(a.rawHeaders, 'dpop-nonce').length > 0)
        const bad = carrying.filter((a) => {
          const values = headerValues(a.rawHeaders, 'dpop-nonce')
          return values.length !== 1 || !isNonce(values[0]!)
        })
        return bad.length === 0
          ? pass(`${carrying.length} answers carried one valid DPoP-Nonce`)
          : fail(`${bad.length} answers carried more than one DPoP-Nonce or an invalid value: ${listed(bad)}`)
      },
    },
  ]
}
