// Verdicts from what came back. The conformance suite looks only at status codes on the
// resource negatives; this runner also reads WWW-Authenticate, failing where an RFC says
// MUST (a 401 always carries a challenge, RFC 9110 §11.6.1) and warning where the error code
// differs from the one the RFC gives.
import { challengesOf, findChallenge, type Challenge } from './challenges.ts'
import { describeFailure, TLS_ALERTS, type HttpOutcome } from './http.ts'
import type { Verdict } from './model.ts'
import type { ProbeOutcome } from './tls-probe.ts'

export interface Outcome {
  readonly verdict: Verdict
  readonly reason: string
}

export const pass = (reason: string): Outcome => ({ verdict: 'pass', reason })
export const fail = (reason: string): Outcome => ({ verdict: 'fail', reason })
export const warn = (reason: string): Outcome => ({ verdict: 'warn', reason })
export const skip = (reason: string): Outcome => ({ verdict: 'skip', reason })

export interface RefusalExpectation {
  /** Acceptable statuses; 'any-4xx' for the checks where the suite accepts any client error. */
  readonly statuses: readonly number[] | 'any-4xx'
  /** The challenge that should carry the error; 'any' when either scheme may. */
  readonly scheme: 'DPoP' | 'Bearer' | 'any'
  /** The error codes the RFCs give for this case; undefined when only the status is judged. */
  readonly errors: readonly string[] | undefined
}

export function isSuccess(outcome: HttpOutcome): boolean {
  return outcome.kind === 'answer' && (outcome.status === 200 || outcome.status === 201)
}

export function describeAnswer(outcome: HttpOutcome): string {
  if (outcome.kind === 'failure') return describeFailure(outcome)
  const errors = challengesOf(outcome.rawHeaders)
    .filter((c) => c.params.error !== undefined)
    .map((c) => `${c.scheme} error="${c.params.error}"`)
  return `${outcome.status}${errors.length > 0 ? ` (${errors.join(', ')})` : ''}`
}

export function judgeSuccess(outcome: HttpOutcome): Outcome {
  if (outcome.kind === 'failure') return fail(`no HTTP answer: ${describeFailure(outcome)}`)
  if (outcome.status === 200 || outcome.status === 201) return pass(`accepted with ${outcome.status}`)
  if (outcome.status === 204) return fail('answered 204: a successful resource request must be answered 200 or 201 (the conformance suite fails 204)')
  return fail(`answered ${describeAnswer(outcome)}; expected 200 or 201`)
}

function statusAllowed(status: number, statuses: RefusalExpectation['statuses']): boolean {
  return statuses === 'any-4xx' ? status >= 400 && status < 500 : statuses.includes(status)
}

function carrierOf(challenges: readonly Challenge[], expectation: RefusalExpectation): Challenge | undefined {
  if (expectation.scheme !== 'any') return findChallenge(challenges, expectation.scheme)
  return (
    challenges.find((c) => c.params.error !== undefined && expectation.errors?.includes(c.params.error)) ??
    challenges.find((c) => c.params.error !== undefined) ??
    challenges[0]
  )
}

export function judgeRefusal(outcome: HttpOutcome, expectation: RefusalExpectation): Outcome {
  if (outcome.kind === 'failure') return fail(`no HTTP answer: ${describeFailure(outcome)}`)
  const { status } = outcome
  if (status >= 200 && status < 300) return fail(`accepted with ${status}: the request should have been refused`)
  if (!statusAllowed(status, expectation.statuses)) {
    const wanted = expectation.statuses === 'any-4xx' ? 'a 4xx' : expectation.statuses.join(' or ')
    return fail(`answered ${describeAnswer(outcome)}; expected ${wanted}`)
  }
  const challenges = challengesOf(outcome.rawHeaders)
  if (status === 401 && challenges.length === 0) return fail('refused with 401 but without WWW-Authenticate (RFC 9110 §11.6.1, RFC 6750 §3)')
  if (expectation.errors === undefined) return pass(`refused with ${describeAnswer(outcome)}`)
  const carrier = carrierOf(challenges, expectation)
  if (!carrier) {
    return warn(
      `refused with ${status}, but without a ${expectation.scheme} challenge (RFC 9449 §7.1, RFC 6750 §3); the conformance suite checks only the status`,
    )
  }
  const error = carrier.params.error
  if (error === undefined || !expectation.errors.includes(error)) {
    return warn(
      `refused with ${status}, but the ${carrier.scheme} challenge carries error=${error === undefined ? '(none)' : `"${error}"`} where the RFCs give ${expectation.errors.map((e) => `"${e}"`).join(' or ')}; the conformance suite checks only the status`,
    )
  }
  return pass(`refused with ${status}, ${carrier.scheme} error="${error}"`)
}

/** RFC 8705 §3 and the suite's mTLS probes: a handshake failure, a reset, or a 4xx all refuse. */
export function judgeCertificateRefusal(outcome: HttpOutcome): Outcome {
  if (outcome.kind === 'failure') {
    if (outcome.alert !== undefined) return pass(`refused in the TLS handshake: ${describeFailure(outcome)}`)
    if (outcome.reset) return pass(`the server closed the connection (${outcome.code})`)
    return fail(`no answer: ${describeFailure(outcome)}`)
  }
  if (outcome.status >= 400 && outcome.status < 500) return pass(`refused with ${describeAnswer(outcome)}`)
  if (outcome.status >= 200 && outcome.status < 300) return fail(`accepted with ${outcome.status}: the request should have been refused`)
  return fail(`answered ${describeAnswer(outcome)}; expected a handshake failure or a 4xx`)
}

/** R47/R48: refused with alert 40 (handshake_failure) or 70 (protocol_version), or a reset; anything else fails. */
export function judgeTlsRefusal(outcome: ProbeOutcome): Outcome {
  switch (outcome.kind) {
    case 'connected':
      return fail(`handshake completed: ${outcome.protocol} with ${outcome.cipher}`)
    case 'unavailable':
      return skip(`this runner's TLS library cannot make this offer: ${outcome.message}`)
    case 'failure':
      if (outcome.alert === 40 || outcome.alert === 70) return pass(`refused with ${describeFailure(outcome)}`)
      if (outcome.alert === undefined && outcome.reset) return pass(`refused: the server reset the connection (${outcome.code})`)
      if (outcome.alert !== undefined) {
        return fail(
          `refused with alert ${outcome.alert} (${TLS_ALERTS[outcome.alert] ?? 'unknown'}); the conformance suite accepts only 40 (handshake_failure), 70 (protocol_version) or a reset`,
        )
      }
      return fail(`no refusal the suite recognises: ${describeFailure(outcome)}`)
  }
}
