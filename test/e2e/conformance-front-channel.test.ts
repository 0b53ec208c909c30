// The conformance runner's authorization-code checks against the gateway's front channel (issue 14)
// in front of a real legacy server (oidc-provider), its login and consent pages filled in from a
// form description as a deployment would configure them.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { exportPKCS8 } from 'jose'
import { startFacadeEnvironment, type FacadeEnvironment } from '../../dev/facade-environment.ts'
import { chainPem, type Issued } from '../../dev/pki.ts'
import { identityLabel, type RunnerSettings } from '../../src/conformance/config.ts'
import type { ConformanceReport, Mode } from '../../src/conformance/model.ts'
import { runConformance } from '../../src/conformance/runner.ts'
import type { LoginFormDescription } from '../../src/conformance/user-agent.ts'
import { createLogger } from '../../src/observability/log.ts'
import { testPki } from '../support/gateway.ts'

let env: FacadeEnvironment

before(async () => {
  env = await startFacadeEnvironment({ logger: createLogger('silent'), pki: await testPki(), frontChannel: true })
})

after(async () => {
  await env?.close()
})

function identityOf(leaf: Issued) {
  const certPem = chainPem(leaf, env.pki.intermediate)
  return { label: identityLabel(certPem), certPem, keyPem: leaf.keyPem }
}

/** oidc-provider's development interaction pages: a login form, then a consent form, told apart by a hidden input. */
export const OIDC_PROVIDER_FORMS: LoginFormDescription[] = [
  { page: '/interaction/', form: 'name="prompt" value="login"', fields: { login: 'alice', password: 'any' } },
  { page: '/interaction/', form: 'name="prompt" value="consent"', fields: {} },
]

async function settings(mode: Mode, env: FacadeEnvironment, requestObject = false): Promise<RunnerSettings> {
  const signingKeyPem = await exportPKCS8(env.partnerA.privateKey)
  const port = Number(new URL(env.issuer).port)
  return {
    mode,
    target: { url: `${env.issuer}/accounts/42`, method: 'GET', body: undefined, mediaType: undefined, caPem: env.pki.root.certPem, servername: undefined },
    tlsProbe: { host: '127.0.0.1', port },
    clients: {
      primary: {
        clientId: env.partnerA.clientId,
        identity: identityOf(env.pki.partnerA),
        auth: { method: 'private_key_jwt', signingKeyPem, alg: 'ES256', kid: String(env.partnerA.publicJwk.kid) },
        dpopAlgorithm: 'ES256',
      },
      second: { clientId: env.partnerB.clientId, identity: identityOf(env.pki.partnerB), auth: { method: 'tls_client_auth' }, dpopAlgorithm: 'ES256' },
    },
    certificates: {},
    tokens: { source: 'tokenEndpoint', endpoint: env.tokenEndpoint, issuer: env.issuer, scope: 'accounts:read', caPem: env.pki.root.certPem },
    authorizationServer: {
      issuer: env.issuer,
      tokenEndpoint: undefined,
      scope: 'accounts:read',
      caPem: env.pki.root.certPem,
      frontChannel: { redirectUri: 'https://partner-a.example/callback', scope: undefined, forms: OIDC_PROVIDER_FORMS, requestObject },
    },
    sections: ['authorization-code'],
    requestTimeoutMs: 10_000,
    skip: [],
  }
}

const ids = (report: ConformanceReport, verdict: string) =>
  report.results
    .filter((r) => r.verdict === verdict)
    .map((r) => r.id)
    .sort()
const reasons = (report: ConformanceReport) => JSON.stringify(report.results.filter((r) => r.verdict !== 'pass').map((r) => [r.id, r.verdict, r.reason]))

describe('the conformance runner against the gateway’s authorization-code front channel', () => {
  it('dpop mode: every front-channel check that applies passes', async () => {
    const report = await runConformance({ settings: await settings('dpop', env) })
    assert.deepEqual(ids(report, 'fail'), [], reasons(report))
    assert.deepEqual(ids(report, 'warn'), [], reasons(report))
    assert.deepEqual(
      ids(report, 'skip'),
      // The gateway's request_uri lives 90 s; no request objects here; JARM is not assessed.
      ['as-ensure-unsigned-request-at-par-endpoint-fails', 'as-jarm', 'as-par-attempt-to-use-expired-request-uri', 'as-signed-request-object-accepted'],
      reasons(report),
    )
    assert.ok(report.results.every((r) => r.section === 'authorization-code'))
    assert.equal(
      report.results.find((r) => r.id === 'as-ensure-authorization-code-is-bound-to-client')!.verdict,
      'pass',
      'partner-b, a tls_client_auth partner',
    )
    assert.match(report.results.find((r) => r.id === 'as-reused-code-tokens-revoked')!.reason, /answered 200 before the reuse and 401 after it/)
    assert.doesNotMatch(JSON.stringify(report), /eyJ[A-Za-z0-9_-]{20,}\.eyJ/, 'no assertion or proof in the report')
  })

  it('mtls mode: the flow gets a certificate-bound token, every check that applies passes', async () => {
    const report = await runConformance({ settings: await settings('mtls', env) })
    assert.deepEqual(ids(report, 'fail'), [], reasons(report))
    assert.match(report.results.find((r) => r.id === 'as-authorization-code-flow')!.reason, /token_type Bearer/)
    assert.ok(!report.results.some((r) => r.id === 'as-ensure-mismatched-dpop-jkt-fails'))
  })

  it('request objects required and request_uris living 3 s: the signed-request and expiry checks run and pass', async () => {
    const strict = await startFacadeEnvironment({
      logger: createLogger('silent'),
      pki: env.pki,
      frontChannel: true,
      authorizationServer: { authorizationCode: { requestLifetimeSeconds: 3, requestObject: 'required' } },
    })
    try {
      const report = await runConformance({ settings: await settings('dpop', strict, true) })
      for (const id of ['as-signed-request-object-accepted', 'as-ensure-unsigned-request-at-par-endpoint-fails', 'as-par-attempt-to-use-expired-request-uri']) {
        assert.equal(report.results.find((r) => r.id === id)?.verdict, 'pass', reasons(report))
      }
    } finally {
      await strict.close()
    }
  })
})
