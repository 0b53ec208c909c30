// The authorization-server checks against a token endpoint that behaves per spec (every
// required check passes, in both modes) and against the same endpoint with one flaw each
// (client_secret_basic offered, unbound Bearer tokens, an array aud, the password grant,
// refresh tokens for any client, short tokens): each is reported as the check it breaks.
import { before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { exportJWK, exportPKCS8, generateKeyPair } from 'jose'
import { chainPem, createDevPki, type DevPki, type Issued } from '../../../dev/pki.ts'
import { identityLabel, type RunnerSettings } from '../../../src/conformance/config.ts'
import type { ConformanceReport, Mode } from '../../../src/conformance/model.ts'
import { runConformance } from '../../../src/conformance/runner.ts'
import {
  TOKEN_ENDPOINT_FLAWS,
  startFixtureTokenEndpoint,
  type FixtureClient,
  type FixtureTokenEndpoint,
  type TokenEndpointFlaw,
} from '../../fixtures/token-endpoint/fapi-token-endpoint.ts'

let pki: DevPki
let signingKeyPem: string
let clients: FixtureClient[]

before(async () => {
  pki = await createDevPki()
  // An RSA key, so that the RS256 check can sign with the partner's own key.
  const { privateKey, publicKey } = await generateKeyPair('PS256', { extractable: true })
  signingKeyPem = await exportPKCS8(privateKey)
  clients = [
    { clientId: 'partner-a', jwk: await exportJWK(publicKey), secret: 'legacy-secret-of-partner-a' },
    { clientId: 'partner-b', certificateCn: 'partner-b' },
  ]
})

function identityOf(leaf: Issued) {
  const certPem = chainPem(leaf, pki.intermediate)
  return { label: identityLabel(certPem), certPem, keyPem: leaf.keyPem }
}

function settingsFor(as: FixtureTokenEndpoint, mode: Mode): RunnerSettings {
  return {
    mode,
    target: { url: `${as.issuer}/unused`, method: 'GET', body: undefined, mediaType: undefined, caPem: pki.root.certPem, servername: undefined },
    tlsProbe: { host: '127.0.0.1', port: Number(new URL(as.issuer).port) },
    clients: {
      primary: {
        clientId: 'partner-a',
        identity: identityOf(pki.partnerA),
        auth: { method: 'private_key_jwt', signingKeyPem, alg: 'PS256', kid: 'partner-a-1' },
        dpopAlgorithm: 'ES256',
      },
      second: { clientId: 'partner-b', identity: identityOf(pki.partnerB), auth: { method: 'tls_client_auth' }, dpopAlgorithm: 'ES256' },
    },
    certificates: {},
    tokens: { source: 'devIssuer' },
    authorizationServer: { issuer: as.issuer, tokenEndpoint: undefined, scope: 'accounts:read', caPem: pki.root.certPem },
    sections: ['authorization-server'],
    requestTimeoutMs: 10_000,
    skip: [],
  }
}

/** The partners swapped: the tls_client_auth partner first. */
function swapped(settings: RunnerSettings): RunnerSettings {
  return { ...settings, clients: { primary: settings.clients.second!, second: settings.clients.primary } }
}

async function assess(
  mode: Mode,
  flaws: readonly TokenEndpointFlaw[] = [],
  adapt = (s: RunnerSettings) => s,
): Promise<{ report: ConformanceReport; as: FixtureTokenEndpoint }> {
  const as = await startFixtureTokenEndpoint({ pki, clients, flaws })
  try {
    const report = await runConformance({ settings: adapt(settingsFor(as, mode)), mintToken: () => Promise.reject(new Error('not used')) })
    return { report, as }
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

describe('the authorization-server checks against a token endpoint that follows the specs', () => {
  it('dpop mode: every check passes, and no report text holds a token, proof or assertion', async () => {
    const { report, as } = await assess('dpop')
    assert.deepEqual(ids(report, 'fail'), [], reasons(report))
    assert.deepEqual(ids(report, 'warn'), [], reasons(report))
    assert.deepEqual(ids(report, 'skip'), [], reasons(report))
    assert.deepEqual(
      report.results.map((r) => r.id),
      [
        'as-metadata-published',
        'as-client-auth-methods-advertised',
        'as-token-request-accepted',
        'as-ensure-client-assertion-in-token-endpoint',
        'as-token-endpoint-as-audience-fails',
        'as-array-audience-fails',
        'as-client-assertion-with-no-sub-fails',
        'as-client-assertion-with-exp-is-5-minutes-in-past-fails',
        'as-signed-client-assertion-with-rs256-fails',
        'as-client-assertion-with-iat-nbf-8-seconds-in-the-future-is-accepted',
        'as-client-assertion-with-iat-nbf-over-60-seconds-in-the-future-fails',
        'as-ensure-client-id-in-token-endpoint',
        'as-ensure-holder-of-key-required',
        'as-dpop-invalid-proof-refused',
        'as-dpop-nonce-required',
        'as-dpop-proof-with-iat-10-seconds-before-succeeds',
        'as-dpop-proof-with-iat-10-seconds-after-succeeds',
        'as-refresh-token-bound-to-client',
        'as-password-grant-refused',
        'as-credential-entropy',
      ],
    )
    assert.ok(report.passed)
    assert.equal(report.target.authorizationServer, as.issuer)
    const find = (id: string) => report.results.find((r) => r.id === id)!
    assert.match(find('as-token-request-accepted').reason, /token_type DPoP, with a refresh token/)
    assert.match(find('as-ensure-client-id-in-token-endpoint').reason, /401 error="invalid_client"/)
    assert.match(find('as-ensure-holder-of-key-required').reason, /400 error="invalid_request"/)
    assert.match(find('as-password-grant-refused').reason, /400 error="unsupported_grant_type"/)
    assert.match(find('as-credential-entropy').reason, /43 apparently random base64 characters/)
    // The nonce dance: the first answer asks for one, the retry gets the token.
    assert.deepEqual(
      find('as-dpop-nonce-required').exchanges.map((e) => e.received.status),
      [400, 200],
    )
    // The partner's certificate goes with every request but the one that leaves it out on purpose.
    for (const result of report.results) {
      for (const exchange of result.exchanges) {
        const expected = result.id === 'as-ensure-holder-of-key-required' ? 'none' : /partner-/
        if (expected === 'none') assert.equal(exchange.sent.clientCertificate, 'none')
        else assert.match(exchange.sent.clientCertificate, expected, result.id)
      }
    }
    const text = JSON.stringify(report)
    assert.ok(as.secrets.length > 20)
    for (const secret of as.secrets) assert.ok(!text.includes(secret) && !text.includes(secret.slice(-16)), 'a secret in the report')
  })

  it('dpop mode, a tls_client_auth partner: the assertion checks are skipped, the rest pass', async () => {
    const { report } = await assess('dpop', [], swapped)
    assert.deepEqual(ids(report, 'fail'), [], reasons(report))
    assert.deepEqual(ids(report, 'skip'), [
      'as-array-audience-fails',
      'as-client-assertion-with-exp-is-5-minutes-in-past-fails',
      'as-client-assertion-with-iat-nbf-8-seconds-in-the-future-is-accepted',
      'as-client-assertion-with-iat-nbf-over-60-seconds-in-the-future-fails',
      'as-client-assertion-with-no-sub-fails',
      'as-ensure-client-assertion-in-token-endpoint',
      'as-signed-client-assertion-with-rs256-fails',
      'as-token-endpoint-as-audience-fails',
    ])
    assert.match(report.results.find((r) => r.id === 'as-ensure-holder-of-key-required')!.reason, /401 error="invalid_client"/)
  })

  it('mtls mode: certificate-bound tokens; the DPoP checks are skipped', async () => {
    const { report } = await assess('mtls')
    assert.deepEqual(ids(report, 'fail'), [], reasons(report))
    assert.deepEqual(ids(report, 'skip'), [
      'as-dpop-invalid-proof-refused',
      'as-dpop-nonce-required',
      'as-dpop-proof-with-iat-10-seconds-after-succeeds',
      'as-dpop-proof-with-iat-10-seconds-before-succeeds',
    ])
    assert.match(report.results.find((r) => r.id === 'as-token-request-accepted')!.reason, /token_type Bearer/)
  })
})

const EXPECTED_FAILURES: Readonly<Record<TokenEndpointFlaw, readonly string[]>> = {
  'client-secret-basic': ['as-client-auth-methods-advertised'],
  'unbound-token': ['as-dpop-invalid-proof-refused', 'as-ensure-holder-of-key-required', 'as-token-request-accepted'],
  'array-audience': ['as-array-audience-fails'],
  'password-grant': ['as-password-grant-refused'],
  'refresh-any-client': ['as-refresh-token-bound-to-client'],
  'short-tokens': ['as-credential-entropy'],
}

describe('the authorization-server checks against a flawed token endpoint', () => {
  for (const flaw of TOKEN_ENDPOINT_FLAWS) {
    it(`${flaw}: reported as ${EXPECTED_FAILURES[flaw].join(', ')}, and the run fails`, async () => {
      const { report } = await assess('dpop', [flaw])
      assert.deepEqual(ids(report, 'fail'), [...EXPECTED_FAILURES[flaw]].sort(), reasons(report))
      assert.equal(report.passed, false)
    })
  }

  it('unbound-token: says the token is not DPoP-bound, and that one was issued without a proof or certificate', async () => {
    const { report } = await assess('dpop', ['unbound-token'])
    assert.match(report.results.find((r) => r.id === 'as-token-request-accepted')!.reason, /token_type is "Bearer", expected DPoP: the token is not DPoP-bound/)
    assert.match(report.results.find((r) => r.id === 'as-ensure-holder-of-key-required')!.reason, /answered 200 with an access token/)
  })

  it('client-secret-basic: names the method it should not offer', async () => {
    const { report } = await assess('dpop', ['client-secret-basic'])
    assert.match(report.results.find((r) => r.id === 'as-client-auth-methods-advertised')!.reason, /also lists "client_secret_basic"/)
  })
})
