// `fapi-gateway conformance` end to end: the runner against fapi-gateway in its DPoP-only,
// DPoP-with-nonces and mTLS configurations (every required check passes and the reports say
// so, without a secret in them), against deliberately misconfigured gateways (each reported as
// the failing check it is), and the command line with a runner.yaml and a real token endpoint.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exportJWK, exportPKCS8, generateKeyPair } from 'jose'
import { stringify } from 'yaml'
import { refuse } from '../../src/errors.ts'
import type { DevIssuer } from '../../dev/issuer.ts'
import type { DevPki, Issued } from '../../dev/pki.ts'
import { runConformanceCommand } from '../../src/conformance/cli.ts'
import { devMintToken, devRunnerSettings } from '../../dev/conformance-target.ts'
import type { RunnerSettings } from '../../src/conformance/config.ts'
import type { ConformanceReport, Mode } from '../../src/conformance/model.ts'
import { createRedactor, type Redactor } from '../../src/conformance/redact.ts'
import { REPORT_FILES, REPORT_FORMATS, writeReports } from '../../src/conformance/report/write.ts'
import { runConformance } from '../../src/conformance/runner.ts'
import { certificateThumbprint } from '../../src/conformance/tokens.ts'
import { startTestGateway, testPki } from '../support/gateway.ts'
import { FLAWS, TLS11_SUITE, startMisconfiguredGateway, type Flaw } from '../fixtures/misconfigured/broken-gateway.ts'
import { issueClientCertificate } from '../fixtures/misconfigured/certificates.ts'
import { startFakeAuthorizationServer } from '../unit/conformance/fake-authorization-server.ts'

const LABEL = 'Self-assessment — not an OpenID Foundation certification'
const TLS_FOR_MODE = (clientCertificate: 'request' | 'require') => ({
  tls: {
    certFile: 'server-chain.crt',
    keyFile: 'server.key',
    clientCaFile: 'client-ca.crt',
    clientIntermediatesFile: 'client-intermediates.crt',
    clientCertificate,
  },
})

let pki: DevPki
let scratch: string

before(async () => {
  pki = await testPki()
  scratch = mkdtempSync(join(tmpdir(), 'conformance-e2e-'))
})

after(() => rmSync(scratch, { recursive: true, force: true }))

/** A redactor that also lists every secret the runner registers. */
function listingRedactor(): { redactor: Redactor; secrets: string[] } {
  const base = createRedactor()
  const secrets: string[] = []
  return {
    secrets,
    redactor: {
      ...base,
      add: (secret) => {
        secrets.push(secret)
        base.add(secret)
      },
    },
  }
}

/** The partners' settings without their client certificates (a plain DPoP partner has none). */
function withoutClientCertificates(settings: RunnerSettings): RunnerSettings {
  const { primary, second } = settings.clients
  return { ...settings, clients: { primary: { ...primary, identity: undefined }, second: second && { ...second, identity: undefined } } }
}

async function assess(baseUrl: string, issuer: DevIssuer, mode: Mode, revoked?: Issued, adapt = (s: RunnerSettings) => s) {
  const { redactor, secrets } = listingRedactor()
  const settings = adapt(devRunnerSettings(baseUrl, pki, mode, revoked))
  const report = await runConformance({ settings, mintToken: devMintToken(issuer), redactor })
  return { report, secrets }
}

function ids(report: ConformanceReport, verdict: string): string[] {
  return report.results
    .filter((r) => r.verdict === verdict)
    .map((r) => r.id)
    .sort()
}

/** Writes every format and checks the result is stated, the label is there, and no secret is. */
function assertReports(report: ConformanceReport, secrets: readonly string[], name: string): Record<string, string> {
  const dir = join(scratch, name)
  writeReports(report, dir, REPORT_FORMATS)
  const files = Object.fromEntries(REPORT_FORMATS.map((format) => [format, readFileSync(join(dir, REPORT_FILES[format]), 'utf8')]))
  assert.ok(secrets.length > 0)
  for (const [format, text] of Object.entries(files)) {
    assert.ok(text.includes(LABEL), `${format}: the self-assessment label`)
    assert.ok(!text.includes('PRIVATE KEY'), `${format}: no private key`)
    for (const secret of secrets) {
      assert.ok(!text.includes(secret), `${format}: a secret appears in full`)
      assert.ok(!text.includes(secret.slice(-20)), `${format}: the end of a secret appears`)
    }
  }
  const verdictLine = report.passed ? /PASSED: every required check passed/ : /FAILED: \d+ required checks? failed/
  assert.match(files.md!, verdictLine)
  assert.match(files.html!, verdictLine)
  assert.equal((JSON.parse(files.json!) as ConformanceReport).passed, report.passed)
  assert.match(files.junit!, new RegExp(`<testsuites [^>]*failures="${report.summary.failed}"`))
  return files
}

describe('the conformance runner against fapi-gateway', () => {
  it('DPoP-only configuration: every required check passes, without a client certificate, and no report holds a secret', async () => {
    const gw = await startTestGateway({ config: { listener: { ...TLS_FOR_MODE('request') } } })
    try {
      const { report, secrets } = await assess(gw.baseUrl, gw.issuer, 'dpop', undefined, withoutClientCertificates)
      assert.deepEqual(ids(report, 'fail'), [], JSON.stringify(report.results.filter((r) => r.verdict === 'fail').map((r) => [r.id, r.reason])))
      assert.deepEqual(ids(report, 'warn'), [])
      assert.deepEqual(ids(report, 'skip'), ['dpop-htu-default-port-accepted', 'nonce-challenge-shape', 'nonce-header-syntax'])
      assert.ok(report.passed)
      assert.ok(
        report.results.every((r) => r.exchanges.every((e) => e.sent.clientCertificate === 'none')),
        'no client certificate anywhere (R54)',
      )
      assert.ok(report.results.length > 60)
      assert.ok(!report.results.some((r) => r.section === 'mtls' || r.section === 'revocation'), 'mTLS checks belong to the mtls mode')
      const replay = report.results.find((r) => r.id === 'dpop-jti-replay-refused')!
      assert.match(replay.reason, /refused with 401, DPoP error="invalid_dpop_proof"/)
      // Each negative went out after a valid call: two exchanges, the first accepted.
      const negative = report.results.find((r) => r.id === 'dpop-missing-typ-refused')!
      assert.deepEqual(
        negative.exchanges.map((e) => e.received.status),
        [200, 401],
      )
      assertReports(report, secrets, 'dpop')
    } finally {
      await gw.close()
    }
  })

  it('DPoP with server nonces: every call retries with the nonce and the nonce checks pass', async () => {
    const gw = await startTestGateway({
      config: { dpop: { nonce: { mode: 'required', secretEnv: 'NONCE_SECRET' } } },
      env: { NONCE_SECRET: randomBytes(32).toString('base64url') },
    })
    try {
      const { report, secrets } = await assess(gw.baseUrl, gw.issuer, 'dpop')
      assert.deepEqual(ids(report, 'fail'), [], JSON.stringify(report.results.filter((r) => r.verdict === 'fail').map((r) => [r.id, r.reason])))
      assert.deepEqual(ids(report, 'skip'), ['dpop-htu-default-port-accepted'])
      for (const id of ['nonce-challenge-shape', 'nonce-header-syntax']) assert.equal(report.results.find((r) => r.id === id)!.verdict, 'pass', id)
      const baseline = report.results.find((r) => r.id === 'dpop-baseline-accepted')!
      assert.deepEqual(
        baseline.exchanges.map((e) => e.received.status),
        [401, 200],
        'use_dpop_nonce, then the retry',
      )
      // With nonces, iat ±1 h is the suite's warning only (RFC 9449 §11.1); the gateway still refuses it.
      const iat = report.results.find((r) => r.id === 'dpop-iat-future-1h-refused')!
      assert.deepEqual([iat.level, iat.verdict], ['recommended', 'pass'])
      assertReports(report, secrets, 'dpop-nonce')
    } finally {
      await gw.close()
    }
  })

  it('DPoP-bound tokens where the handshake requires a client certificate: the configured certificate is presented, every required check passes', async () => {
    const gw = await startTestGateway({ config: { listener: { ...TLS_FOR_MODE('require') } } })
    try {
      const { report, secrets } = await assess(gw.baseUrl, gw.issuer, 'dpop')
      assert.deepEqual(ids(report, 'fail'), [], JSON.stringify(report.results.filter((r) => r.verdict === 'fail').map((r) => [r.id, r.reason])))
      assert.deepEqual(ids(report, 'warn'), [])
      assert.deepEqual(ids(report, 'skip'), ['dpop-htu-default-port-accepted', 'nonce-challenge-shape', 'nonce-header-syntax'])
      const partner = report.results.find((r) => r.id === 'dpop-baseline-accepted')!.exchanges[0]!.sent.clientCertificate
      assert.match(partner, /partner-a/)
      for (const id of ['tls-1.2-recommended-accepted', 'tls-1.3-supported', 'tls-1.3-preferred']) {
        const probe = report.results.find((r) => r.id === id)!
        assert.equal(probe.verdict, 'pass', id)
        assert.equal(probe.exchanges[0]!.sent.clientCertificate, partner, `${id} presents the partner's certificate`)
      }
      assertReports(report, secrets, 'dpop-require-certificate')
    } finally {
      await gw.close()
    }
  })

  it("mTLS configuration: certificate-bound tokens pass; another partner's, no, an untrusted, an expired and a revoked certificate are refused", async () => {
    const revoked = await issueClientCertificate(pki, 'partner-revoked')
    const revokedThumbprint = certificateThumbprint(revoked.certPem)
    const gw = await startTestGateway({
      config: { listener: { ...TLS_FOR_MODE('require') } },
      gateway: {
        revocation: {
          async check(cert) {
            if (cert.thumbprint === revokedThumbprint) refuse('GW_CLIENT_CERT_REVOKED', 'revoked by the test')
          },
        },
      },
    })
    try {
      const { report, secrets } = await assess(gw.baseUrl, gw.issuer, 'mtls', revoked)
      assert.deepEqual(ids(report, 'fail'), [], JSON.stringify(report.results.filter((r) => r.verdict === 'fail').map((r) => [r.id, r.reason])))
      assert.deepEqual(ids(report, 'warn'), [])
      assert.deepEqual(ids(report, 'skip'), [])
      for (const id of [
        'mtls-baseline-accepted',
        'mtls-scheme-case-accepted',
        'mtls-other-partner-cert-refused',
        'mtls-no-cert-refused',
        'mtls-untrusted-cert-refused',
        'mtls-expired-cert-refused',
        'revoked-cert-refused',
      ]) {
        assert.equal(report.results.find((r) => r.id === id)?.verdict, 'pass', id)
      }
      assert.ok(!report.results.some((r) => r.section === 'dpop' || r.section === 'nonce'), 'DPoP checks belong to the dpop mode')
      // The revoked certificate chains to the trusted CA: only the revocation check can refuse it.
      assert.match(report.results.find((r) => r.id === 'revoked-cert-refused')!.reason, /refused with 401 \(.*Bearer error="invalid_token"\)/)
      assert.ok(
        gw.log.events().some((e) => JSON.stringify(e).includes('GW_CLIENT_CERT_REVOKED')),
        'the gateway saw the revocation',
      )
      assertReports(report, secrets, 'mtls')
    } finally {
      await gw.close()
    }
  })
})

const EXPECTED_FAILURES: Readonly<Record<Flaw, readonly string[]>> = {
  'tls-1.1-allowed': ['tls-1.1-refused', `tls-1.2-suite-${TLS11_SUITE.toLowerCase()}-refused`],
  'dhe-allowed': ['tls-1.2-dhe-refused'],
  'replay-detection-off': ['dpop-jti-replay-refused'],
  'htu-compared-with-query': ['dpop-htu-query-fragment-accepted', 'dpop-htu-request-query-accepted'],
  'bearer-downgrade-allowed': ['dpop-bearer-downgrade-refused'],
}

describe('the conformance runner against misconfigured gateways', () => {
  for (const flaw of FLAWS) {
    it(`${flaw}: reported as ${EXPECTED_FAILURES[flaw].join(' and ')}, and the run fails`, async () => {
      const gw = await startMisconfiguredGateway(flaw, pki)
      try {
        const { report, secrets } = await assess(gw.baseUrl, gw.issuer, 'dpop')
        assert.deepEqual(
          ids(report, 'fail'),
          [...EXPECTED_FAILURES[flaw]].sort(),
          JSON.stringify(report.results.filter((r) => r.verdict === 'fail').map((r) => [r.id, r.reason])),
        )
        assert.equal(report.passed, false)
        const files = assertReports(report, secrets, `misconfigured-${flaw}`)
        for (const id of EXPECTED_FAILURES[flaw]) {
          assert.match(files.md!, new RegExp(`\\| \`${id.replace(/\./g, '\\.')}\` \\| required \\| FAIL \\|`))
          assert.match(files.junit!, new RegExp(`name="${id.replace(/\./g, '\\.')}: [^"]*"[^>]*>\\s*<failure `))
        }
      } finally {
        await gw.close()
      }
    })
  }
})

describe('fapi-gateway conformance --config runner.yaml', () => {
  it('gets tokens from the token endpoint (private_key_jwt, DPoP nonce), exits 0 against the gateway and 1 against a misconfigured one', async () => {
    const gw = await startTestGateway({})
    const broken = await startMisconfiguredGateway('replay-detection-off', pki)
    let issuer: DevIssuer = gw.issuer
    const keys = await Promise.all(
      ['partner-a', 'partner-b'].map(async (clientId) => ({ clientId, ...(await generateKeyPair('ES256', { extractable: true })) })),
    )
    const as = await startFakeAuthorizationServer({
      pki,
      clients: await Promise.all(keys.map(async (k) => ({ clientId: k.clientId, jwk: await exportJWK(k.publicKey) }))),
      mint: (request) => issuer.mint({ clientId: request.clientId, ...(request.jkt && { jkt: request.jkt }) }),
    })
    const dir = join(scratch, 'cli')
    try {
      writeFileSync(join(scratch, 'ca.pem'), pki.root.certPem)
      for (const k of keys) writeFileSync(join(scratch, `${k.clientId}.key`), await exportPKCS8(k.privateKey))
      const runnerYaml = (baseUrl: string, name: string) => {
        const file = join(scratch, name)
        writeFileSync(
          file,
          stringify({
            mode: 'dpop',
            target: { url: `${baseUrl}/accounts/cli-1`, caFile: 'ca.pem' },
            clients: Object.fromEntries(
              keys.map((k, index) => [
                index === 0 ? 'primary' : 'second',
                { clientId: k.clientId, auth: { method: 'private_key_jwt', keyFile: `${k.clientId}.key`, alg: 'ES256', kid: k.clientId } },
              ]),
            ),
            tokens: { source: 'tokenEndpoint', endpoint: as.tokenEndpoint, issuer: as.issuer, scope: 'accounts:read', caFile: 'ca.pem' },
          }),
        )
        return file
      }
      const out: string[] = []
      const io = { out: (t: string) => void out.push(t), err: (t: string) => void out.push(t), colour: false }

      const good = await runConformanceCommand(['--config', runnerYaml(gw.baseUrl, 'good.yaml'), '--out', dir, '--format', 'md,junit'], io)
      assert.equal(good, 0, out.join(''))
      const terminal = out.join('')
      assert.match(terminal, /\[ ?1\/\d+\] PASS {2}tls-1\.0-refused/)
      assert.match(terminal, /PASSED: every required check passed/)
      assert.match(terminal, /wrote .*conformance-report\.md/)
      const md = readFileSync(join(dir, REPORT_FILES.md), 'utf8')
      assert.match(md, /Tokens \| client credentials at https:\/\/127\.0\.0\.1:\d+\/token/)
      assert.ok(
        as.requests.some((r) => r.error === 'use_dpop_nonce') && as.requests.some((r) => r.status === 200 && r.nonce),
        'the nonce dance at the token endpoint',
      )
      for (const file of [REPORT_FILES.md, REPORT_FILES.junit]) {
        const text = readFileSync(join(dir, file), 'utf8')
        assert.ok(!text.includes('PRIVATE KEY'))
        for (const secret of as.secrets) assert.ok(!text.includes(secret) && !text.includes(secret.slice(-20)), `${file}: a token, proof or assertion appears`)
      }

      issuer = broken.issuer
      out.length = 0
      const bad = await runConformanceCommand(['--config', runnerYaml(broken.baseUrl, 'bad.yaml')], io)
      assert.equal(bad, 1)
      assert.match(out.join(''), /Failed \(required\):\n {2}FAIL {2}dpop-jti-replay-refused/)
    } finally {
      await Promise.allSettled([as.close(), broken.close(), gw.close()])
    }
  })
})
