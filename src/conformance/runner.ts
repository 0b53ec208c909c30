// Runs every check against one target, in order, and builds the report. The checks that judge
// every answer of the run (Date, interaction id, nonce syntax) come last.
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import type { Clock } from '../types.ts'
import { levelOf, type CheckDefinition } from './check.ts'
import { authorizationServerChecks } from './checks/authorization-server-checks.ts'
import { frontChannelChecks } from './checks/front-channel-checks.ts'
import { dpopChecks } from './checks/dpop-checks.ts'
import { hygieneChecks, runWideChecks } from './checks/hygiene-checks.ts'
import { mtlsChecks, revocationChecks } from './checks/mtls-checks.ts'
import { presentationChecks } from './checks/presentation-checks.ts'
import { tlsChecks } from './checks/tls-checks.ts'
import { ConformanceConfigError, type RunnerSettings } from './config.ts'
import { createRunContext, type Recorder } from './context.ts'
import type { Outcome } from './judge.ts'
import {
  SELF_ASSESSMENT_LABEL,
  SELF_ASSESSMENT_NOTE,
  TOOL_NAME,
  summarize,
  type CheckResult,
  type ConformanceReport,
  type Mode,
  type SectionId,
} from './model.ts'
import { createRedactor, type Redactor } from './redact.ts'
import { createMintedTokenSource, createTokenEndpointSource, type MintToken, type TokenSource } from './tokens.ts'
import type { TokenClient } from './token-endpoint.ts'

export type ProgressEvent =
  | { readonly type: 'start'; readonly index: number; readonly total: number; readonly check: CheckDefinition }
  | { readonly type: 'done'; readonly index: number; readonly total: number; readonly result: CheckResult }

export interface RunnerOptions {
  readonly settings: RunnerSettings
  /** Mints tokens in-process; required when settings.tokens.source is 'devIssuer'. */
  readonly mintToken?: MintToken
  readonly now?: Clock
  readonly onProgress?: (event: ProgressEvent) => void
  /** Keeps secrets out of the report; a fresh one by default (tests pass one that also lists them). */
  readonly redactor?: Redactor
}

/** Every check in the order it runs; which apply depends on the mode and what is configured. */
export function allChecks(
  mode: Mode,
  options: { readonly authorizationServer?: boolean; readonly frontChannel?: boolean; readonly sections?: readonly SectionId[] } = {},
): CheckDefinition[] {
  const presentation = presentationChecks()
  const checks = [
    ...tlsChecks(),
    ...presentation.first,
    ...dpopChecks(),
    ...mtlsChecks(),
    ...revocationChecks(),
    ...presentation.later,
    ...hygieneChecks(),
    ...runWideChecks(),
    ...(options.authorizationServer ? authorizationServerChecks() : []),
    ...(options.authorizationServer && options.frontChannel ? frontChannelChecks() : []),
  ]
  return checks.filter(
    (check) => (check.modes === undefined || check.modes.includes(mode)) && (options.sections === undefined || options.sections.includes(check.section)),
  )
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown'
  } catch {
    return 'unknown'
  }
}

function tokenSourceOf(options: RunnerOptions, now: Clock): TokenSource {
  const { settings } = options
  if (settings.tokens.source === 'devIssuer') {
    if (!options.mintToken)
      throw new ConformanceConfigError([
        'tokens.source: devIssuer needs the in-process development issuer (run with --dev, or pass mintToken to runConformance)',
      ])
    return createMintedTokenSource(options.mintToken)
  }
  if (options.mintToken) return createMintedTokenSource(options.mintToken)
  const clients: Partial<Record<'primary' | 'second', TokenClient>> = {}
  for (const role of ['primary', 'second'] as const) {
    const client = settings.clients[role]
    if (client?.clientId !== undefined && client.auth !== undefined) clients[role] = { clientId: client.clientId, auth: client.auth, identity: client.identity }
  }
  const { endpoint, issuer, scope, caPem } = settings.tokens
  return createTokenEndpointSource({ endpoint, issuer, scope, caPem, timeoutMs: settings.requestTimeoutMs, now }, clients)
}

export async function runConformance(options: RunnerOptions): Promise<ConformanceReport> {
  const now = options.now ?? Date.now
  const { settings } = options
  const redactor = options.redactor ?? createRedactor()
  const tokenSource = tokenSourceOf(options, now)
  const ctx = createRunContext({ settings, tokenSource, redactor, now })
  const checks = allChecks(settings.mode, {
    authorizationServer: settings.authorizationServer !== undefined,
    frontChannel: settings.authorizationServer?.frontChannel !== undefined,
    ...(settings.sections && { sections: settings.sections }),
  })
  const startedAt = new Date(now()).toISOString()
  const results: CheckResult[] = []

  for (const [index, check] of checks.entries()) {
    options.onProgress?.({ type: 'start', index, total: checks.length, check })
    const recorder: Recorder = { checkId: check.id, exchanges: [] }
    const started = performance.now()
    const skipReason = settings.skip.includes(check.id) ? 'skipped by the configuration' : check.skipReason?.(ctx)
    let outcome: Outcome
    if (skipReason !== undefined) outcome = { verdict: 'skip', reason: skipReason }
    else {
      try {
        outcome = await check.run(ctx, recorder)
      } catch (error) {
        outcome = { verdict: 'fail', reason: `the check could not be completed: ${(error as Error).message}` }
      }
    }
    const level = levelOf(check, ctx)
    // A recommended check that is not met is a warning: it never decides the exit code.
    const verdict = outcome.verdict === 'fail' && level === 'recommended' ? 'warn' : outcome.verdict
    const result: CheckResult = {
      id: check.id,
      title: check.title,
      section: check.section,
      requirement: check.requirement,
      reference: check.reference,
      level,
      verdict,
      reason: redactor.text(outcome.reason),
      exchanges: recorder.exchanges,
      durationMs: Math.round(performance.now() - started),
    }
    results.push(result)
    options.onProgress?.({ type: 'done', index, total: checks.length, result })
  }

  const summary = summarize(results)
  const tlsProbe = `${settings.tlsProbe.host}:${settings.tlsProbe.port}`
  return {
    tool: TOOL_NAME,
    version: packageVersion(),
    label: SELF_ASSESSMENT_LABEL,
    note: SELF_ASSESSMENT_NOTE,
    startedAt,
    finishedAt: new Date(now()).toISOString(),
    target: {
      url: redactor.url(settings.target.url),
      method: settings.target.method,
      mode: settings.mode,
      tlsProbe,
      tokenSource: tokenSource.description,
      ...(settings.authorizationServer && { authorizationServer: settings.authorizationServer.issuer }),
    },
    results,
    summary,
    passed: summary.failed === 0,
  }
}
