// The authorization-code checks against a front channel that behaves per spec (every required check
// passes, its own login form filled in from a form description) and against the same server with one
// flaw each: PKCE not enforced, a code accepted twice, no iss in the authorization response. Each is
// reported as the checks it breaks, and the run does not pass.
import { before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { exportJWK, exportPKCS8, generateKeyPair } from 'jose'
import { chainPem, createDevPki, type DevPki, type Issued } from '../../../dev/pki.ts'
import { identityLabel, type RunnerSettings } from '../../../src/conformance/config.ts'
import type { ConformanceReport, Mode } from '../../../src/conformance/model.ts'
import { runConformance } from '../../../src/conformance/runner.ts'
import {
  startFixtureAuthorizationServer,
  type FixtureAuthorizationServer,
  type FrontChannelClient,
  type FrontChannelFlaw,
} from '../../fixtures/front-channel/fapi-authorization-server.ts'

const REDIRECT_URI = 'https://partner-a.example/callback'
let pki: DevPki
let signingKeyPem: string
let clients: FrontChannelClient[]

before(async () => {
  pki = await createDevPki()
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
  signingKeyPem = await exportPKCS8(privateKey)
  clients = [
    { clientId: 'partner-a', jwk: await exportJWK(publicKey), redirectUris: [REDIRECT_URI] },
    { clientId: 'partner-b', certificateCn: 'partner-b', redirectUris: [REDIRECT_URI] },
  ]
})

function identityOf(leaf: Issued) {
  const certPem = chainPem(leaf, pki.intermediate)
  return { label: identityLabel(certPem), certPem, keyPem: leaf.keyPem }
}

function settingsFor(as: FixtureAuthorizationServer, mode: Mode, password = as.user.password): RunnerSettings {
  return {
    mode,
    target: { url: `${as.issuer}/resource`, method: 'GET', body: undefined, mediaType: undefined, caPem: pki.root.certPem, servername: undefined },
    tlsProbe: { host: '127.0.0.1', port: Number(new URL(as.issuer).port) },
    clients: {
      primary: {
        clientId: 'partner-a',
        identity: identityOf(pki.partnerA),
        auth: { method: 'private_key_jwt', signingKeyPem, alg: 'ES256', kid: undefined },
        dpopAlgorithm: 'ES256',
      },
      second: { clientId: 'partner-b', identity: identityOf(pki.partnerB), auth: { method: 'tls_client_auth' }, dpopAlgorithm: 'ES256' },
    },
    certificates: {},
    tokens: { source: 'devIssuer' },
    authorizationServer: {
      issuer: as.issuer,
      tokenEndpoint: undefined,
      scope: 'accounts:read',
      caPem: pki.root.certPem,
      frontChannel: {
        redirectUri: REDIRECT_URI,
        scope: undefined,
        forms: [{ page: '/login$', form: 'name="username"', fields: { username: as.user.username, password } }],
        requestObject: false,
      },
    },
    sections: ['authorization-code'],
    requestTimeoutMs: 10_000,
    skip: [],
  }
}

async function assess(mode: Mode, flaws: readonly FrontChannelFlaw[] = [], password?: string): Promise<ConformanceReport> {
  const as = await startFixtureAuthorizationServer({ pki, clients, flaws })
  try {
    const report = await runConformance({ settings: settingsFor(as, mode, password), mintToken: () => Promise.reject(new Error('not used')) })
    const text = JSON.stringify(report)
    assert.ok(as.secrets.length > 0)
    for (const secret of [...as.secrets, as.user.password]) assert.ok(!text.includes(secret), 'no code, token, request_uri or password in the report')
    assert.doesNotMatch(text, /eyJ[A-Za-z0-9_-]{20,}\.eyJ/, 'no assertion or proof in the report')
    return report
  } finally {
    await as.close()
  }
}

const ids = (report: ConformanceReport, verdict: string) =>
  report.results
    .filter((r) => r.verdict === verdict)
    .map((r) => r.id)
    .sort()
const reasons = (report: ConformanceReport) => JSON.stringify(report.results.filter((r) => r.verdict !== 'pass').map((r) => [r.id, r.verdict, r.reason]))
const NOT_ASSESSED = [
  'as-ensure-unsigned-request-at-par-endpoint-fails',
  'as-jarm',
  'as-par-attempt-to-use-expired-request-uri',
  'as-signed-request-object-accepted',
]

describe('the authorization-code checks against a front channel that follows the specs', () => {
  it('dpop mode: every check that applies passes', async () => {
    const report = await assess('dpop')
    assert.deepEqual(ids(report, 'fail'), [], reasons(report))
    assert.deepEqual(ids(report, 'warn'), [], reasons(report))
    assert.deepEqual(ids(report, 'skip'), NOT_ASSESSED, reasons(report))
    assert.match(report.results.find((r) => r.id === 'as-reused-code-tokens-revoked')!.reason, /answered 200 before the reuse and 401 after it/)
    assert.ok(report.passed)
  })

  it('mtls mode: every check that applies passes, the DPoP binding checks left out', async () => {
    const report = await assess('mtls')
    assert.deepEqual(ids(report, 'fail'), [], reasons(report))
    assert.ok(!report.results.some((r) => r.id === 'as-ensure-mismatched-dpop-jkt-fails'))
    assert.match(report.results.find((r) => r.id === 'as-authorization-code-flow')!.reason, /token_type Bearer/)
  })

  it('a login form that is not accepted: the flow fails and the checks that need it are skipped, not passed', async () => {
    const report = await assess('dpop', [], 'wrong password')
    assert.equal(report.results.find((r) => r.id === 'as-authorization-code-flow')!.verdict, 'fail')
    assert.match(report.results.find((r) => r.id === 'as-authorization-code-flow')!.reason, /401 page/)
    assert.equal(report.results.find((r) => r.id === 'as-par-ensure-pkce-required')!.verdict, 'skip')
    assert.ok(!report.passed)
  })
})

describe('the authorization-code checks against flawed front channels', () => {
  it('PKCE not enforced: the four PKCE checks fail', async () => {
    const report = await assess('dpop', ['skip-pkce'])
    assert.deepEqual(
      ids(report, 'fail'),
      [
        'as-par-ensure-pkce-code-verifier-required',
        'as-par-ensure-pkce-required',
        'as-par-ensure-plain-pkce-rejected',
        'as-par-incorrect-pkce-code-verifier-rejected',
      ],
      reasons(report),
    )
    assert.match(report.results.find((r) => r.id === 'as-par-ensure-pkce-required')!.reason, /a code was issued/)
    assert.ok(!report.passed)
  })

  it('a code accepted twice: AttemptReuseAuthorizationCodeAfterOneSecond fails', async () => {
    const report = await assess('dpop', ['reuse-code'])
    assert.deepEqual(ids(report, 'fail'), ['as-attempt-reuse-authorization-code-after-one-second'], reasons(report))
    // Its first token is not revoked either: a warning, the check being recommended.
    assert.deepEqual(ids(report, 'warn'), ['as-reused-code-tokens-revoked'], reasons(report))
    assert.match(report.results.find((r) => r.id === 'as-attempt-reuse-authorization-code-after-one-second')!.reason, /answered 200/)
    assert.ok(!report.passed)
  })

  it('no iss in the authorization response: the iss check fails', async () => {
    const report = await assess('dpop', ['omit-iss'])
    assert.deepEqual(ids(report, 'fail'), ['as-authorization-response-iss'], reasons(report))
    assert.ok(!report.passed)
  })
})
