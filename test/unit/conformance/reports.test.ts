import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SELF_ASSESSMENT_LABEL, SELF_ASSESSMENT_NOTE, summarize, type CheckResult, type ConformanceReport } from '../../../src/conformance/model.ts'
import { renderHtml } from '../../../src/conformance/report/html.ts'
import { renderJunit } from '../../../src/conformance/report/junit.ts'
import { renderMarkdown } from '../../../src/conformance/report/markdown.ts'
import { createProgressPrinter, renderSummary } from '../../../src/conformance/report/terminal.ts'
import { parseFormats, REPORT_FILES, writeReports } from '../../../src/conformance/report/write.ts'

function result(id: string, section: CheckResult['section'], verdict: CheckResult['verdict'], extra: Partial<CheckResult> = {}): CheckResult {
  return {
    id,
    section,
    verdict,
    title: `Title of ${id}`,
    requirement: `Requirement of ${id}`,
    reference: `RFC 9449 §4.3 check ${id.length}`,
    level: 'required',
    reason: `reason for ${id}`,
    durationMs: 12,
    exchanges: [
      {
        sent: {
          label: 'negative',
          request: 'GET https://api.example/accounts/1',
          headers: [
            ['Authorization', 'DPoP eyJhbGc…'],
            ['DPoP', 'eyJ0eXAiOiJk…'],
          ],
          clientCertificate: 'none',
          notes: ['typ removed'],
        },
        received: {
          status: 401,
          headers: [['WWW-Authenticate', 'DPoP error="invalid_dpop_proof"']],
          transport: undefined,
          bodyExcerpt: '{"error":"invalid_dpop_proof"}',
        },
      },
    ],
    ...extra,
  }
}

function report(results: CheckResult[]): ConformanceReport {
  const summary = summarize(results)
  return {
    tool: 'fapi-gateway conformance',
    version: '0.1.0',
    label: SELF_ASSESSMENT_LABEL,
    note: SELF_ASSESSMENT_NOTE,
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:00:01.000Z',
    target: { url: 'https://api.example/accounts/1', method: 'GET', mode: 'dpop', tlsProbe: 'api.example:443', tokenSource: 'minted in-process' },
    results,
    summary,
    passed: summary.failed === 0,
  }
}

const failing = report([
  result('tls-1.1-refused', 'tls', 'fail', { reason: 'handshake completed: TLSv1.1 <b>&amp;</b>' }),
  result('dpop-missing-typ-refused', 'dpop', 'pass'),
  result('dpop-htu-uppercase-accepted', 'dpop', 'warn', { level: 'recommended' }),
  result('nonce-challenge-shape', 'nonce', 'skip', { exchanges: [] }),
])
const passing = report([result('dpop-missing-typ-refused', 'dpop', 'pass')])

describe('Markdown report', () => {
  it('carries the label, the result, a summary, and each check grouped by section in spec order', () => {
    const md = renderMarkdown(failing)
    assert.match(md, /Self-assessment — not an OpenID Foundation certification/)
    assert.match(md, /FAILED: 1 required check failed/)
    assert.ok(md.indexOf('## 1. TLS at the resource endpoint') < md.indexOf('## 2. DPoP proofs at the resource'))
    assert.ok(md.indexOf('## 2. DPoP proofs') < md.indexOf('## 3. DPoP nonces'))
    for (const r of failing.results) {
      assert.ok(md.includes(`\`${r.id}\``))
      assert.ok(md.includes(r.requirement))
      assert.ok(md.includes(r.reference))
    }
    assert.match(md, /\*\*Sent:\*\*[\s\S]*Authorization: DPoP eyJhbGc…[\s\S]*\*\*Received:\*\*[\s\S]*HTTP 401/)
    assert.match(renderMarkdown(passing), /PASSED: every required check passed/)
  })
})

describe('HTML report', () => {
  it('is one self-contained page with the label, escaping what it shows', () => {
    const html = renderHtml(failing)
    assert.match(html, /^<!DOCTYPE html>/)
    assert.match(html, /Self-assessment — not an OpenID Foundation certification/)
    assert.ok(!/<script|<link|src=|href="http/i.test(html), 'no scripts or external resources')
    assert.ok(html.includes('TLSv1.1 &lt;b&gt;&amp;amp;&lt;/b&gt;'))
    assert.ok(!html.includes('<b>&amp;</b>'))
    assert.match(html, /<details id="tls-1\.1-refused" open>/)
    assert.match(html, /class="result failed"/)
  })
})

describe('JUnit report', () => {
  it('has a suite per section, a failure for a failed check, skipped for a skipped one, and escapes XML', () => {
    const xml = renderJunit(failing)
    assert.match(xml, /^<\?xml version="1.0" encoding="UTF-8"\?>/)
    assert.match(xml, /<testsuites name="[^"]*Self-assessment — not an OpenID Foundation certification[^"]*" tests="4" failures="1" errors="0" skipped="1"/)
    assert.equal((xml.match(/<testsuite /g) ?? []).length, 3)
    assert.equal((xml.match(/<failure /g) ?? []).length, 1)
    assert.equal((xml.match(/<skipped /g) ?? []).length, 1)
    assert.match(xml, /WARNING: Requirement/)
    assert.ok(xml.includes('&lt;b&gt;&amp;amp;&lt;/b&gt;'))
    // Every element that opens closes.
    for (const tag of ['testsuites', 'testsuite', 'testcase', 'properties', 'system-out', 'failure']) {
      assert.equal((xml.match(new RegExp(`<${tag}[ >]`, 'g')) ?? []).length, (xml.match(new RegExp(`</${tag}>`, 'g')) ?? []).length, tag)
    }
  })
})

describe('terminal view', () => {
  it('prints a line per finished check and a summary with the failures', () => {
    const lines: string[] = []
    const print = createProgressPrinter({ colour: false, write: (t) => lines.push(t) })
    failing.results.forEach((r, index) => print({ type: 'done', index, total: failing.results.length, result: r }))
    assert.equal(lines[0], '[1/4] FAIL  tls-1.1-refused  — handshake completed: TLSv1.1 <b>&amp;</b>\n')
    const summary = renderSummary(failing, { colour: false })
    assert.match(summary, /TLS at the resource endpoint\s+1\s+0\s+1\s+0\s+0/)
    assert.match(summary, /Failed \(required\):\n {2}FAIL {2}tls-1\.1-refused/)
    assert.match(summary, /not an OpenID Foundation certification/)
  })
})

describe('writing reports', () => {
  it('writes the formats asked for, JSON that reads back as the report', () => {
    const dir = mkdtempSync(join(tmpdir(), 'conformance-reports-'))
    try {
      const paths = writeReports(failing, dir, parseFormats('json,md'))
      assert.deepEqual(paths, [join(dir, REPORT_FILES.json), join(dir, REPORT_FILES.md)])
      const parsed = JSON.parse(readFileSync(paths[0]!, 'utf8')) as ConformanceReport
      assert.deepEqual(parsed.summary, failing.summary)
      assert.equal(parsed.label, SELF_ASSESSMENT_LABEL)
      assert.deepEqual(
        parsed.results.map((r) => [r.id, r.verdict]),
        failing.results.map((r) => [r.id, r.verdict]),
      )
      assert.equal(parsed.results[0]!.exchanges[0]!.received.transport, null, 'absent values are null')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('knows its formats', () => {
    assert.deepEqual(parseFormats(undefined), ['md', 'html', 'junit', 'json'])
    assert.deepEqual(parseFormats('HTML, junit,html'), ['html', 'junit'])
    assert.throws(() => parseFormats('pdf'), /unknown format pdf/)
  })
})
