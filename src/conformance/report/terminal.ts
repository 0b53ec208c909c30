// The terminal view: one line per check as it finishes, then a summary table per section
// and the failures and warnings with their reasons.
import type { ProgressEvent } from '../runner.ts'
import { VERDICT_WORDS, resultsBySection, type ConformanceReport, type Verdict } from '../model.ts'
import { resultLine } from './markdown.ts'

const COLOURS: Readonly<Record<Verdict, string>> = { pass: '\x1b[32m', fail: '\x1b[31m', warn: '\x1b[33m', skip: '\x1b[90m' }
const RESET = '\x1b[0m'

export interface TerminalOptions {
  readonly colour: boolean
  readonly write: (text: string) => void
}

function paint(verdict: Verdict, options: TerminalOptions): string {
  return options.colour ? `${COLOURS[verdict]}${VERDICT_WORDS[verdict]}${RESET}` : VERDICT_WORDS[verdict]
}

export function createProgressPrinter(options: TerminalOptions): (event: ProgressEvent) => void {
  return (event) => {
    if (event.type !== 'done') return
    const { result, index, total } = event
    const counter = `[${String(index + 1).padStart(String(total).length)}/${total}]`
    const reason = result.verdict === 'pass' ? '' : `  — ${result.reason}`
    options.write(`${counter} ${paint(result.verdict, options)}  ${result.id}${reason}\n`)
  }
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  const line = (row: readonly string[]) =>
    row.map((value, column) => (column === 0 ? value.padEnd(widths[column]!) : value.padStart(widths[column]!))).join('  ')
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n')
}

export function renderSummary(report: ConformanceReport, options: Pick<TerminalOptions, 'colour'>): string {
  const rows: string[][] = [['section', 'checks', 'pass', 'fail', 'warn', 'skip']]
  for (const { info, results } of resultsBySection(report.results)) {
    const n = (verdict: Verdict) => String(results.filter((r) => r.verdict === verdict).length)
    rows.push([info.title, String(results.length), n('pass'), n('fail'), n('warn'), n('skip')])
  }
  const { summary } = report
  rows.push(['all', String(summary.total), String(summary.passed), String(summary.failed), String(summary.warned), String(summary.skipped)])
  const lines = ['', table(rows), '']
  for (const verdict of ['fail', 'warn'] as const) {
    const listed = report.results.filter((r) => r.verdict === verdict)
    if (listed.length === 0) continue
    lines.push(verdict === 'fail' ? 'Failed (required):' : 'Warnings:')
    for (const r of listed) lines.push(`  ${paint(verdict, { colour: options.colour, write: () => {} })}  ${r.id}: ${r.reason}`)
    lines.push('')
  }
  lines.push(resultLine(report), `${report.label}.`, '')
  return lines.join('\n')
}
