// What a conformance run produces: one result per check, grouped by the spec section it
// assesses. Every string in here has already been through the redactor (src/conformance/redact.ts).

export type Verdict = 'pass' | 'fail' | 'warn' | 'skip'
export type Level = 'required' | 'recommended'
export type Mode = 'dpop' | 'mtls'
export type SectionId = 'tls' | 'mtls' | 'presentation' | 'dpop' | 'nonce' | 'hygiene' | 'revocation' | 'authorization-server' | 'authorization-code'

export const SELF_ASSESSMENT_LABEL = 'Self-assessment — not an OpenID Foundation certification'
export const SELF_ASSESSMENT_NOTE =
  'This report was produced by the fapi-gateway conformance runner acting as a partner client against the target. ' +
  'It checks, black-box, what FAPI 2.0 and the RFCs it builds on demand of a resource endpoint (and, when configured, of the token endpoint and the authorization-code front channel of an authorization server). It is not an OpenID Foundation ' +
  'certification and does not replace the OpenID conformance suite.'
export const TOOL_NAME = 'fapi-gateway conformance'

export interface SectionInfo {
  readonly title: string
  readonly reference: string
}

export const SECTIONS: Readonly<Record<SectionId, SectionInfo>> = {
  tls: { title: 'TLS at the resource endpoint', reference: 'FAPI 2.0 SP §5.2.1, §5.2.2; RFC 8996; RFC 9325' },
  mtls: { title: 'Client certificates and certificate-bound tokens', reference: 'RFC 8705 §3; FAPI 2.0 SP §5.3.4' },
  presentation: { title: 'Access token presentation', reference: 'FAPI 2.0 SP §5.3.4; RFC 6750 §2, §3' },
  dpop: { title: 'DPoP proofs at the resource', reference: 'RFC 9449 §4.3, §7; FAPI 2.0 SP §5.3.4' },
  nonce: { title: 'DPoP nonces', reference: 'RFC 9449 §8, §9' },
  hygiene: { title: 'Response hygiene', reference: 'RFC 9110 §6.6.1; FAPI 2.0 Implementation Advice §2.2' },
  revocation: { title: 'Client certificate revocation', reference: 'RFC 8705 §2.1' },
  'authorization-server': {
    title: 'Token endpoint of the authorization server',
    reference: 'FAPI 2.0 SP §5.3.2.1, §5.4.1; RFC 6749 §5.2; RFC 7523 §3; RFC 8705 §2; RFC 9449 §5, §8',
  },
  'authorization-code': {
    title: 'Authorization-code front channel of the authorization server',
    reference: 'FAPI 2.0 SP §5.3.2.2, §5.3.3; RFC 9126; RFC 7636; RFC 9207; RFC 9449 §10; FAPI 2.0 MS §5.3, §5.4',
  },
}

export const SECTION_ORDER: readonly SectionId[] = [
  'tls',
  'presentation',
  'dpop',
  'nonce',
  'mtls',
  'revocation',
  'hygiene',
  'authorization-server',
  'authorization-code',
]

/** A header as shown in a report: secret-bearing values are truncated. */
export type ShownHeader = readonly [name: string, value: string]

export interface SentRecord {
  readonly label: string
  /** `GET https://host/path?query` or, for TLS probes, what the ClientHello offered. */
  readonly request: string
  readonly headers: readonly ShownHeader[]
  readonly clientCertificate: string
  readonly notes: readonly string[]
}

export interface ReceivedRecord {
  readonly status: number | undefined
  readonly headers: readonly ShownHeader[]
  /** TLS outcome or transport failure, e.g. `TLS alert 70 (protocol_version)`. */
  readonly transport: string | undefined
  /** The start of a refusal's body; success bodies are never copied. */
  readonly bodyExcerpt: string | undefined
}

export interface ExchangeRecord {
  readonly sent: SentRecord
  readonly received: ReceivedRecord
}

export interface CheckResult {
  readonly id: string
  readonly title: string
  readonly section: SectionId
  readonly requirement: string
  readonly reference: string
  readonly level: Level
  readonly verdict: Verdict
  readonly reason: string
  readonly exchanges: readonly ExchangeRecord[]
  readonly durationMs: number
}

export interface ReportSummary {
  readonly total: number
  readonly passed: number
  /** Required checks that failed (a recommended check that is not met is a warning). */
  readonly failed: number
  readonly warned: number
  readonly skipped: number
}

export interface ConformanceReport {
  readonly tool: string
  readonly version: string
  readonly label: string
  readonly note: string
  readonly startedAt: string
  readonly finishedAt: string
  readonly target: {
    readonly url: string
    readonly method: string
    readonly mode: Mode
    readonly tlsProbe: string
    readonly tokenSource: string
    /** The issuer whose token endpoint was assessed, when one was. */
    readonly authorizationServer?: string
  }
  readonly results: readonly CheckResult[]
  readonly summary: ReportSummary
  /** True when every required check passed: the exit code is 0 exactly then. */
  readonly passed: boolean
}

export function summarize(results: readonly CheckResult[]): ReportSummary {
  const count = (verdict: Verdict) => results.filter((result) => result.verdict === verdict).length
  return { total: results.length, passed: count('pass'), failed: count('fail'), warned: count('warn'), skipped: count('skip') }
}

export function resultsBySection(results: readonly CheckResult[]): { section: SectionId; info: SectionInfo; results: CheckResult[] }[] {
  return SECTION_ORDER.map((section) => ({ section, info: SECTIONS[section], results: results.filter((result) => result.section === section) })).filter(
    (group) => group.results.length > 0,
  )
}

export const VERDICT_WORDS: Readonly<Record<Verdict, string>> = { pass: 'PASS', fail: 'FAIL', warn: 'WARN', skip: 'SKIP' }
