// The report as one self-contained HTML page (inline CSS, no scripts, no external resources).
import { SECTIONS, VERDICT_WORDS, resultsBySection, type CheckResult, type ConformanceReport, type Verdict } from '../model.ts'
import { exchangeLines, resultLine } from './markdown.ts'

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[char]!)
}

/** Escapes, then shows `code` spans as <code>. */
function prose(text: string): string {
  return escapeHtml(text).replace(/`([^`]+)`/g, '<code>$1</code>')
}

const STYLE = `
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:72rem;padding:1.5rem;color:#1c1e21}
h1{font-size:1.6rem;margin:.2rem 0 1rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
.label{background:#fff4d6;border:2px solid #e0a800;border-radius:6px;padding:.8rem 1rem;font-weight:600}
.label small{display:block;font-weight:400;margin-top:.3rem}
table{border-collapse:collapse;margin:.8rem 0;width:100%}th,td{border:1px solid #ddd;padding:.35rem .55rem;text-align:left;vertical-align:top}
th{background:#f4f5f7}td.n{text-align:right}
.result{font-size:1.1rem;font-weight:700;padding:.6rem 1rem;border-radius:6px;margin:1rem 0}
.result.passed{background:#e3f6e8;color:#135f2b}.result.failed{background:#fde4e4;color:#8a1c1c}
.v{display:inline-block;min-width:3.4rem;text-align:center;border-radius:4px;font-weight:700;font-size:.8rem;padding:.1rem .3rem}
.v.pass{background:#1f883d;color:#fff}.v.fail{background:#cf222e;color:#fff}.v.warn{background:#bf8700;color:#fff}.v.skip{background:#8c959f;color:#fff}
details{border:1px solid #ddd;border-radius:6px;margin:.5rem 0;padding:.4rem .8rem}details[open]{background:#fafbfc}
summary{cursor:pointer}summary code{font-weight:600}
dl{display:grid;grid-template-columns:9rem 1fr;gap:.2rem .8rem;margin:.6rem 0}dt{font-weight:600;color:#57606a}dd{margin:0}
pre{background:#f6f8fa;border:1px solid #e1e4e8;border-radius:4px;padding:.5rem .7rem;overflow-x:auto;font-size:.82rem;white-space:pre-wrap;word-break:break-all}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:.8rem}.pair h4{margin:.4rem 0 .2rem;font-size:.85rem}
footer{margin-top:2rem;color:#57606a;font-size:.85rem}
`

function verdictBadge(verdict: Verdict): string {
  return `<span class="v ${verdict}">${VERDICT_WORDS[verdict]}</span>`
}

function checkHtml(result: CheckResult): string {
  const exchanges = result.exchanges
    .map((exchange, index) => {
      const { sent, received } = exchangeLines(exchange)
      const suffix = result.exchanges.length > 1 ? ` ${index + 1}/${result.exchanges.length}` : ''
      return `<div class="pair"><div><h4>Sent${suffix}</h4><pre>${escapeHtml(sent.join('\n'))}</pre></div><div><h4>Received${suffix}</h4><pre>${escapeHtml(received.join('\n'))}</pre></div></div>`
    })
    .join('')
  const open = result.verdict === 'fail' || result.verdict === 'warn' ? ' open' : ''
  return `<details id="${escapeHtml(result.id)}"${open}><summary>${verdictBadge(result.verdict)} <code>${escapeHtml(result.id)}</code> — ${prose(result.title)}</summary>
<dl><dt>Verdict</dt><dd>${VERDICT_WORDS[result.verdict]} — ${escapeHtml(result.reason)}</dd>
<dt>Requirement</dt><dd>${prose(result.requirement)}</dd>
<dt>Level</dt><dd>${result.level}</dd>
<dt>Reference</dt><dd>${escapeHtml(result.reference)}</dd></dl>${exchanges}</details>`
}

export function renderHtml(report: ConformanceReport): string {
  const groups = resultsBySection(report.results)
  const count = (results: readonly CheckResult[], verdict: Verdict) => results.filter((r) => r.verdict === verdict).length
  const summaryRows = groups
    .map(
      ({ section, info, results }) =>
        `<tr><td><a href="#section-${section}">${escapeHtml(info.title)}</a></td><td>${escapeHtml(info.reference)}</td><td class="n">${results.length}</td><td class="n">${count(results, 'pass')}</td><td class="n">${count(results, 'fail')}</td><td class="n">${count(results, 'warn')}</td><td class="n">${count(results, 'skip')}</td></tr>`,
    )
    .join('\n')
  const sections = groups
    .map(
      ({ section, results }, index) =>
        `<h2 id="section-${section}">${index + 1}. ${escapeHtml(SECTIONS[section].title)}</h2><p><em>${escapeHtml(SECTIONS[section].reference)}</em></p>\n${results.map(checkHtml).join('\n')}`,
    )
    .join('\n')
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>FAPI 2.0 resource endpoint conformance report — ${escapeHtml(report.label)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>FAPI 2.0 resource endpoint conformance report</h1>
<p class="label">${escapeHtml(report.label)}<small>${escapeHtml(report.note)}</small></p>
<table>
<tr><th>Target</th><td><code>${escapeHtml(`${report.target.method} ${report.target.url}`)}</code></td></tr>
<tr><th>Mode</th><td>${report.target.mode === 'dpop' ? 'DPoP-bound tokens' : 'mTLS certificate-bound tokens'}</td></tr>
<tr><th>TLS probes</th><td>${escapeHtml(report.target.tlsProbe)}</td></tr>
<tr><th>Tokens</th><td>${escapeHtml(report.target.tokenSource)}</td></tr>${report.target.authorizationServer ? `\n<tr><th>Authorization server</th><td>${escapeHtml(report.target.authorizationServer)}</td></tr>` : ''}
<tr><th>Run</th><td>${escapeHtml(`${report.startedAt} to ${report.finishedAt}, ${report.tool} ${report.version}`)}</td></tr>
</table>
<p class="result ${report.passed ? 'passed' : 'failed'}">${escapeHtml(resultLine(report))}</p>
<table>
<tr><th>Section</th><th>Reference</th><th>Checks</th><th>Pass</th><th>Fail</th><th>Warn</th><th>Skip</th></tr>
${summaryRows}
</table>
<p>PASS: the requirement is met. FAIL: a required check is not met (the run fails). WARN: a recommended check is not met, or a required one is met as the conformance suite accepts but not as the RFC words it. SKIP: the check does not apply. Secrets (tokens, proofs, assertions, keys) are never shown: header values that carry them are cut to their first characters.</p>
${sections}
<footer>${escapeHtml(report.label)}. Produced by ${escapeHtml(`${report.tool} ${report.version}`)}.</footer>
</body>
</html>
`
}
