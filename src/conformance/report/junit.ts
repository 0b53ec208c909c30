// The report as JUnit XML, so CI systems show each check as a test: one suite per spec
// section, a <failure> for a failed required check, <skipped> for a skipped one; warnings
// pass and say so in <system-out>.
import { resultsBySection, type CheckResult, type ConformanceReport } from '../model.ts'
import { exchangeLines } from './markdown.ts'

// XML 1.0 §2.2: characters outside this set cannot appear in a document at all.
const INVALID_XML_CHARS = /[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/gu

export function escapeXml(text: string): string {
  return text
    .replace(INVALID_XML_CHARS, '\ufffd')
    .replace(/[&<>"']/g, (char) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[char]!)
}

const seconds = (ms: number) => (ms / 1000).toFixed(3)

function details(result: CheckResult): string {
  const lines = [`Requirement (${result.level}): ${result.requirement}`, `Reference: ${result.reference}`, `Verdict: ${result.verdict} — ${result.reason}`]
  for (const exchange of result.exchanges) {
    const { sent, received } = exchangeLines(exchange)
    lines.push('', '--- sent', ...sent, '--- received', ...received)
  }
  return lines.join('\n')
}

function testcase(result: CheckResult, classname: string): string {
  const open = `    <testcase classname="${escapeXml(classname)}" name="${escapeXml(`${result.id}: ${result.title}`)}" time="${seconds(result.durationMs)}">`
  const body: string[] = []
  if (result.verdict === 'fail')
    body.push(`      <failure message="${escapeXml(result.reason)}" type="${result.level}">${escapeXml(details(result))}</failure>`)
  if (result.verdict === 'skip') body.push(`      <skipped message="${escapeXml(result.reason)}"/>`)
  body.push(`      <system-out>${escapeXml(`${result.verdict === 'warn' ? 'WARNING: ' : ''}${details(result)}`)}</system-out>`)
  return [open, ...body, '    </testcase>'].join('\n')
}

export function renderJunit(report: ConformanceReport): string {
  const suites = resultsBySection(report.results).map(({ section, info, results }) => {
    const time = results.reduce((sum, r) => sum + r.durationMs, 0)
    const failures = results.filter((r) => r.verdict === 'fail').length
    const skipped = results.filter((r) => r.verdict === 'skip').length
    return [
      `  <testsuite name="${escapeXml(info.title)}" tests="${results.length}" failures="${failures}" errors="0" skipped="${skipped}" time="${seconds(time)}" timestamp="${escapeXml(report.startedAt)}">`,
      '    <properties>',
      `      <property name="reference" value="${escapeXml(info.reference)}"/>`,
      `      <property name="label" value="${escapeXml(report.label)}"/>`,
      '    </properties>',
      ...results.map((r) => testcase(r, `conformance.${section}`)),
      '  </testsuite>',
    ].join('\n')
  })
  const total = report.results.reduce((sum, r) => sum + r.durationMs, 0)
  const name = `${report.tool}: ${report.target.method} ${report.target.url} (${report.label})`
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="${escapeXml(name)}" tests="${report.summary.total}" failures="${report.summary.failed}" errors="0" skipped="${report.summary.skipped}" time="${seconds(total)}">`,
    ...suites,
    '</testsuites>',
    '',
  ].join('\n')
}
