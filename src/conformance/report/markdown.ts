// The report as Markdown: label, summary, then every check grouped by spec section with its
// requirement, reference, verdict, and what was sent and received.
import { SECTIONS, VERDICT_WORDS, resultsBySection, type CheckResult, type ConformanceReport, type ExchangeRecord, type Verdict } from '../model.ts'

const VERDICT_MARKS: Readonly<Record<Verdict, string>> = { pass: '✅', fail: '❌', warn: '⚠️', skip: '⏭️' }

/** Table cells: no pipes or line breaks. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ')
}

/** Code-block content that cannot close the fence. */
function fenced(lines: readonly string[]): string {
  return ['```', ...lines.map((line) => line.replace(/```/g, '`\u200b``')), '```'].join('\n')
}

export function resultLine(report: ConformanceReport): string {
  const { summary } = report
  const counts = `${summary.passed} passed, ${summary.failed} failed, ${summary.warned} warnings, ${summary.skipped} skipped`
  return report.passed
    ? `PASSED: every required check passed (${counts})`
    : `FAILED: ${summary.failed} required check${summary.failed === 1 ? '' : 's'} failed (${counts})`
}

export function exchangeLines(exchange: ExchangeRecord): { sent: string[]; received: string[] } {
  const { sent, received } = exchange
  const sentLines = [
    `# ${sent.label}`,
    sent.request,
    ...sent.headers.map(([name, value]) => `${name}: ${value}`),
    ...(sent.clientCertificate === 'none' ? [] : [`(client certificate: ${sent.clientCertificate})`]),
    ...sent.notes.map((note) => `(${note})`),
  ]
  const receivedLines = [
    ...(received.status !== undefined ? [`HTTP ${received.status}`] : []),
    ...(received.transport !== undefined ? [received.transport] : []),
    ...received.headers.map(([name, value]) => `${name}: ${value}`),
    ...(received.bodyExcerpt !== undefined ? ['', received.bodyExcerpt] : []),
  ]
  return { sent: sentLines, received: receivedLines }
}

function checkSection(result: CheckResult): string {
  const lines = [
    `### ${VERDICT_MARKS[result.verdict]} \`${result.id}\` — ${result.title}`,
    '',
    `- **Verdict:** ${VERDICT_WORDS[result.verdict]} — ${result.reason}`,
    `- **Requirement (${result.level}):** ${result.requirement}`,
    `- **Reference:** ${result.reference}`,
  ]
  result.exchanges.forEach((exchange, index) => {
    const { sent, received } = exchangeLines(exchange)
    const prefix = result.exchanges.length > 1 ? ` (${index + 1}/${result.exchanges.length})` : ''
    lines.push('', `**Sent${prefix}:**`, '', fenced(sent), '', `**Received${prefix}:**`, '', fenced(received))
  })
  return lines.join('\n')
}

export function renderMarkdown(report: ConformanceReport): string {
  const groups = resultsBySection(report.results)
  const out = [
    '# FAPI 2.0 resource endpoint conformance report',
    '',
    `> **${report.label}.** ${report.note}`,
    '',
    '| | |',
    '|---|---|',
    `| Target | \`${cell(report.target.method)} ${cell(report.target.url)}\` |`,
    `| Mode | ${report.target.mode === 'dpop' ? 'DPoP-bound tokens' : 'mTLS certificate-bound tokens'} |`,
    `| TLS probes | ${cell(report.target.tlsProbe)} |`,
    `| Tokens | ${cell(report.target.tokenSource)} |`,
    ...(report.target.authorizationServer ? [`| Authorization server | ${cell(report.target.authorizationServer)} |`] : []),
    `| Run | ${report.startedAt} to ${report.finishedAt}, ${cell(report.tool)} ${cell(report.version)} |`,
    `| **Result** | **${resultLine(report)}** |`,
    '',
    '## Summary',
    '',
    '| Section | Reference | Checks | Pass | Fail | Warn | Skip |',
    '|---|---|---:|---:|---:|---:|---:|',
    ...groups.map(({ info, results }) => {
      const n = (verdict: Verdict) => results.filter((r) => r.verdict === verdict).length
      return `| ${cell(info.title)} | ${cell(info.reference)} | ${results.length} | ${n('pass')} | ${n('fail')} | ${n('warn')} | ${n('skip')} |`
    }),
    '',
  ]
  const notable = report.results.filter((r) => r.verdict === 'fail' || r.verdict === 'warn')
  if (notable.length > 0) {
    out.push('### Failures and warnings', '', '| Check | Level | Verdict | Why |', '|---|---|---|---|')
    for (const r of notable) out.push(`| \`${r.id}\` | ${r.level} | ${VERDICT_WORDS[r.verdict]} | ${cell(r.reason)} |`)
    out.push('')
  }
  out.push(
    'Verdicts: **PASS** the requirement is met; **FAIL** a required check is not met (the run fails); **WARN** a recommended',
    'check is not met, or a required one is met in the way the conformance suite accepts but not as the RFC words it;',
    '**SKIP** the check does not apply to this target or configuration. Secrets (tokens, proofs, assertions, keys) are',
    `never shown: header values that carry them are cut to their first characters.`,
    '',
  )
  groups.forEach(({ section, results }, index) => {
    out.push(`## ${index + 1}. ${SECTIONS[section].title}`, '', `_${SECTIONS[section].reference}_`, '')
    for (const result of results) out.push(checkSection(result), '')
  })
  out.push('---', '', `_${report.label}. Produced by ${report.tool} ${report.version}._`, '')
  return out.join('\n')
}
