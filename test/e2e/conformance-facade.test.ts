// The conformance runner's authorization-server checks against the gateway's own token
// endpoint (the façade of issue 13) in front of a real legacy OAuth 2.0 server: every check
// that applies passes, in dpop and in mtls mode; and the whole run, tokens from the façade,
// passes against the resource side too.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { exportPKCS8 } from 'jose'
import { startFacadeEnvironment, type FacadeEnvironment } from '../../dev/facade-environment.ts'
import { chainPem, type Issued } from '../../dev/pki.ts'
import { identityLabel, type RunnerSettings } from '../../src/conformance/config.ts'
import type { ConformanceReport, Mode, SectionId } from '../../src/conformance/model.ts'
import { runConformance } from '../../src/conformance/runner.ts'
import { createLogger } from '../../src/observability/log.ts'
import { testPki } from '../support/gateway.ts'

let env: FacadeEnvironment

before(async () => {
  env = await startFacadeEnvironment({ logger: createLogger('silent'), pki: await testPki() })
})

after(async () => {
  await env?.close()
})

function identityOf(leaf: Issued) {
  // The test PKI is shared: every environment's partners hold the same certificates.
  const certPem = chainPem(leaf, env.pki.intermediate)
  return { label: identityLabel(certPem), certPem, keyPem: leaf.keyPem }
}

async function settings(env: FacadeEnvironment, mode: Mode, sections?: SectionId[]): Promise<RunnerSettings> {
  const signingKeyPem = await exportPKCS8(env.partnerA.privateKey)
  const url = `${env.issuer}/accounts/42`
  const port = Number(new URL(env.issuer).port)
  return {
    mode,
    target: { url, method: 'GET', body: undefined, mediaType: undefined, caPem: env.pki.root.certPem, servername: undefined },
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
    authorizationServer: { issuer: env.issuer, tokenEndpoint: undefined, scope: 'accounts:read', caPem: env.pki.root.certPem },
    ...(sections && { sections }),
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

describe('the conformance runner against the gateway as the FAPI 2.0 face of a legacy server', () => {
  it('dpop mode: every authorization-server check that applies passes', async () => {
    const report = await runConformance({ settings: await settings(env, 'dpop', ['authorization-server']) })
    assert.deepEqual(ids(report, 'fail'), [], reasons(report))
    assert.deepEqual(ids(report, 'warn'), [], reasons(report))
    // partner-a signs with ES256; the legacy server issues no refresh token with client credentials; no nonces here.
    assert.deepEqual(ids(report, 'skip'), ['as-dpop-nonce-required', 'as-refresh-token-bound-to-client', 'as-signed-client-assertion-with-rs256-fails'])
    assert.equal(report.results.length, 20)
  })

  it('mtls mode: every authorization-server check that applies passes', async () => {
    const report = await runConformance({ settings: await settings(env, 'mtls', ['authorization-server']) })
    assert.deepEqual(ids(report, 'fail'), [], reasons(report))
    assert.deepEqual(ids(report, 'warn'), [], reasons(report))
    assert.match(report.results.find((r) => r.id === 'as-token-request-accepted')!.reason, /token_type Bearer/)
  })

  it('dpop mode, the façade asking for DPoP nonces: the nonce check passes too', async () => {
    const nonceEnv = await startFacadeEnvironment({
      logger: createLogger('silent'),
      pki: env.pki,
      config: { dpop: { nonce: { mode: 'required', secretEnv: 'NONCE_SECRET' } } },
      env: { NONCE_SECRET: randomBytes(32).toString('base64url') },
    })
    try {
      const report = await runConformance({ settings: await settings(nonceEnv, 'dpop', ['authorization-server']) })
      assert.deepEqual(ids(report, 'fail'), [], reasons(report))
      assert.deepEqual(ids(report, 'skip'), ['as-refresh-token-bound-to-client', 'as-signed-client-assertion-with-rs256-fails'])
      assert.equal(report.results.find((r) => r.id === 'as-dpop-nonce-required')!.verdict, 'pass')
    } finally {
      await nonceEnv.close()
    }
  })

  it('the whole run in dpop mode, the resource checks with tokens from the façade', async () => {
    const report = await runConformance({ settings: await settings(env, 'dpop') })
    assert.deepEqual(ids(report, 'fail'), [], reasons(report))
    assert.deepEqual(ids(report, 'warn'), [], reasons(report))
    assert.ok(report.passed)
    assert.ok(report.results.some((r) => r.id === 'dpop-baseline-accepted' && r.verdict === 'pass'))
  })
})
