// Every step of the pipeline through a real TLS socket, a real issuer over HTTPS and a real
// upstream: for each check one request it refuses (status, scheme, error code, upstream
// untouched) and the legitimate request that passes.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { connect } from 'node:tls'
import { createProof, generateDpopKey, challengeError, type DpopKey, type PartnerResponse } from '../../src/client/partner-client.ts'
import { certThumbprint, startTestGateway, testPki, type TestGateway } from '../support/gateway.ts'

async function rawRequest(gw: TestGateway, request: string): Promise<string> {
  const pki = await testPki()
  const url = new URL(gw.baseUrl)
  return new Promise((resolve, reject) => {
    const socket = connect({ host: url.hostname, port: Number(url.port), ca: pki.root.certPem }, () => socket.end(request))
    let answer = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => (answer += chunk))
    socket.on('end', () => resolve(answer))
    socket.on('error', reject)
  })
}

function challenges(response: PartnerResponse): string[] {
  const header = response.headers['www-authenticate']
  return Array.isArray(header) ? header : header ? [header] : []
}

describe('enforcement pipeline end to end', () => {
  let gw: TestGateway
  let key: DpopKey
  let token: string

  before(async () => {
    gw = await startTestGateway()
    key = await generateDpopKey('ES256')
    token = await gw.issuer.mint({ jkt: key.jkt })
  })
  after(() => gw.close())

  async function dpopGet(
    path: string,
    options: { token?: string; key?: DpopKey; htu?: string; extra?: [string, string][]; client?: ReturnType<TestGateway['client']> } = {},
  ) {
    const useToken = options.token ?? token
    const proof = await createProof(options.key ?? key, { htm: 'GET', htu: options.htu ?? gw.url(path.split('?')[0]!), accessToken: useToken })
    return (options.client ?? gw.client()).send('GET', path, [['authorization', `DPoP ${useToken}`], ['dpop', proof], ...(options.extra ?? [])])
  }

  /** Runs `send`, then asserts the refusal and that the upstream saw nothing new. */
  async function expectRefused(send: () => Promise<PartnerResponse>, status: number, code: string, scheme?: 'DPoP' | 'Bearer', error?: string) {
    const before = gw.upstream.received.length
    const response = await send()
    assert.equal(response.status, status, `status for ${code}: ${response.body}`)
    assert.equal(response.json?.code, code)
    assert.deepEqual(Object.keys(response.json ?? {}).sort(), ['code', 'error', 'error_description', 'interaction_id'])
    if (scheme) assert.equal(challengeError(response, scheme), error, `WWW-Authenticate ${challenges(response).join(' | ')}`)
    assert.ok(response.headers.date, 'Date header on refusals')
    assert.ok(response.headers['x-fapi-interaction-id'])
    assert.equal(gw.upstream.received.length, before, 'nothing forwarded upstream')
    return response
  }

  describe('1. client certificates', () => {
    it('passes a certificate-bound token over mTLS with the right certificate', async () => {
      const pki = await testPki()
      const certToken = await gw.issuer.mint({ x5t: certThumbprint(pki.partnerA) })
      const response = await gw.client(pki.partnerA).send('GET', '/accounts/1', [['authorization', `Bearer ${certToken}`]])
      assert.equal(response.status, 200)
      const seen = gw.upstream.received.at(-1)!
      assert.equal(seen.headers['x-fapi-gateway-cert-thumbprint'], certThumbprint(pki.partnerA))
    })
    it('refuses an mTLS-only route without a certificate', async () => {
      const pki = await testPki()
      const certToken = await gw.issuer.mint({ x5t: certThumbprint(pki.partnerA), scope: 'payments:write' })
      await expectRefused(
        () => gw.client().send('POST', '/payments', [['authorization', `Bearer ${certToken}`]], '{}'),
        401,
        'GW_CLIENT_CERT_MISSING',
        'Bearer',
        'invalid_token',
      )
    })
    // The 1024-bit RSA certificate cannot even be loaded by a client at OpenSSL's default
    // security level; test/unit/checks/client-cert.test.ts covers it below that level.
    for (const bad of ['expired', 'untrusted', 'serverAuthOnly'] as const) {
      it(`refuses a presented ${bad} certificate even on a DPoP route`, async () => {
        const pki = await testPki()
        await expectRefused(() => dpopGet('/accounts/1', { client: gw.client(pki[bad]) }), 401, 'GW_CLIENT_CERT_INVALID', 'DPoP', 'invalid_token')
      })
    }
    it('accepts a DPoP request without any certificate (FAPI DPoP-only clients)', async () => {
      assert.equal((await dpopGet('/accounts/1')).status, 200)
    })
  })

  describe('2. access tokens', () => {
    it('answers a request without a token with bare challenges (RFC 6750 §3.1)', async () => {
      const response = await expectRefused(() => gw.client().send('GET', '/accounts/1', []), 401, 'GW_TOKEN_MISSING')
      assert.deepEqual(challenges(response), ['DPoP algs="PS256 ES256 EdDSA"', 'Bearer'])
    })
    it('refuses two Authorization headers with invalid_request', async () => {
      const proof = await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: token })
      await expectRefused(
        () =>
          gw.client().send('GET', '/accounts/1', [
            ['authorization', `DPoP ${token}`],
            ['authorization', `Bearer ${token}`],
            ['dpop', proof],
          ]),
        400,
        'GW_TOKEN_MULTIPLE',
        'DPoP',
        'invalid_request',
      )
    })
    it('refuses a token in the query string', async () => {
      await expectRefused(() => gw.client().send('GET', `/accounts/1?access_token=${token}`, []), 400, 'GW_TOKEN_IN_QUERY', 'Bearer', 'invalid_request')
    })
    it('refuses a token in a form body, read once the headers passed', async () => {
      const proof = await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: token })
      const form = [
        ['authorization', `DPoP ${token}`],
        ['dpop', proof],
        ['content-type', 'application/x-www-form-urlencoded'],
      ] satisfies [string, string][]
      await expectRefused(() => gw.client().send('GET', '/accounts/1', form, `access_token=${token}`), 400, 'GW_TOKEN_IN_QUERY', 'DPoP', 'invalid_request')
      // Without valid credentials the body is not even read.
      await expectRefused(
        () => gw.client().send('GET', '/accounts/1', [['content-type', 'application/x-www-form-urlencoded']], `access_token=${token}`),
        401,
        'GW_TOKEN_MISSING',
      )
    })
    it('refuses a token with typ JWT', async () => {
      const jwt = await gw.issuer.mint({ jkt: key.jkt, typ: 'JWT' })
      await expectRefused(() => dpopGet('/accounts/1', { token: jwt }), 401, 'GW_TOKEN_INVALID', 'DPoP', 'invalid_token')
    })
    it('refuses an expired token', async () => {
      const expired = await gw.issuer.mint({ jkt: key.jkt, expiresInSeconds: -120 })
      await expectRefused(() => dpopGet('/accounts/1', { token: expired }), 401, 'GW_TOKEN_EXPIRED', 'DPoP', 'invalid_token')
    })
    it('refuses a token for another audience', async () => {
      const other = await gw.issuer.mint({ jkt: key.jkt, audience: 'https://other.example' })
      await expectRefused(() => dpopGet('/accounts/1', { token: other }), 401, 'GW_TOKEN_AUDIENCE', 'DPoP', 'invalid_token')
    })
    it('refuses a token from another issuer', async () => {
      const other = await gw.issuer.mint({ jkt: key.jkt, issuer: 'https://evil.example' })
      await expectRefused(() => dpopGet('/accounts/1', { token: other }), 401, 'GW_TOKEN_INVALID', 'DPoP', 'invalid_token')
    })
    it('refuses a token an operator revoked through the admin endpoint, and only that one', async () => {
      const revoked = await gw.issuer.mint({ jkt: key.jkt })
      assert.equal((await dpopGet('/accounts/1', { token: revoked })).status, 200)
      // Without FAPI_GATEWAY_ADMIN_TOKEN the endpoint is off.
      const off = await fetch(`http://127.0.0.1:${gw.gateway.adminPort}/revoked-tokens`, { method: 'POST', body: JSON.stringify({ token: revoked }) })
      assert.equal(off.status, 404)
      await off.body?.cancel()
      const adminGw = await startTestGateway({ env: { FAPI_GATEWAY_ADMIN_TOKEN: 'test-admin-token' } })
      try {
        const adminToken = await adminGw.issuer.mint({ jkt: key.jkt })
        const send = () =>
          createProof(key, { htm: 'GET', htu: adminGw.url('/accounts/1'), accessToken: adminToken }).then((proof) =>
            adminGw.client().send('GET', '/accounts/1', [
              ['authorization', `DPoP ${adminToken}`],
              ['dpop', proof],
            ]),
          )
        assert.equal((await send()).status, 200)
        const admin = `http://127.0.0.1:${adminGw.gateway.adminPort}/revoked-tokens`
        const denied = await fetch(admin, { method: 'POST', headers: { authorization: 'Bearer wrong' }, body: JSON.stringify({ token: adminToken }) })
        assert.equal(denied.status, 401)
        await denied.body?.cancel()
        const added = await fetch(admin, { method: 'POST', headers: { authorization: 'Bearer test-admin-token' }, body: JSON.stringify({ token: adminToken }) })
        assert.equal(added.status, 201)
        await added.body?.cancel()
        const response = await send()
        assert.equal(response.status, 401)
        assert.equal(response.json?.code, 'GW_TOKEN_REVOKED')
        const fresh = await adminGw.issuer.mint({ jkt: key.jkt })
        const proof = await createProof(key, { htm: 'GET', htu: adminGw.url('/accounts/1'), accessToken: fresh })
        assert.equal(
          (
            await adminGw.client().send('GET', '/accounts/1', [
              ['authorization', `DPoP ${fresh}`],
              ['dpop', proof],
            ])
          ).status,
          200,
        )
      } finally {
        await adminGw.close()
      }
    })
  })

  describe('3. DPoP proofs', () => {
    it('refuses the DPoP scheme without a proof', async () => {
      await expectRefused(
        () => gw.client().send('GET', '/accounts/1', [['authorization', `DPoP ${token}`]]),
        401,
        'GW_DPOP_MISSING',
        'DPoP',
        'invalid_dpop_proof',
      )
    })
    it('refuses two DPoP headers', async () => {
      const a = await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: token })
      const b = await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: token })
      await expectRefused(
        () =>
          gw.client().send('GET', '/accounts/1', [
            ['authorization', `DPoP ${token}`],
            ['dpop', a],
            ['dpop', b],
          ]),
        400,
        'GW_DPOP_MULTIPLE',
        'DPoP',
        'invalid_request',
      )
    })
    it('refuses a proof for another URL', async () => {
      await expectRefused(() => dpopGet('/accounts/1', { htu: gw.url('/accounts/2') }), 401, 'GW_DPOP_INVALID', 'DPoP', 'invalid_dpop_proof')
    })
    it('refuses a proof whose ath is for another token', async () => {
      const proof = await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: 'another-token' })
      await expectRefused(
        () =>
          gw.client().send('GET', '/accounts/1', [
            ['authorization', `DPoP ${token}`],
            ['dpop', proof],
          ]),
        401,
        'GW_DPOP_INVALID',
        'DPoP',
        'invalid_dpop_proof',
      )
    })
    it('refuses a proof with the wrong method', async () => {
      const proof = await createProof(key, { htm: 'PUT', htu: gw.url('/accounts/1'), accessToken: token })
      await expectRefused(
        () =>
          gw.client().send('GET', '/accounts/1', [
            ['authorization', `DPoP ${token}`],
            ['dpop', proof],
          ]),
        401,
        'GW_DPOP_INVALID',
        'DPoP',
        'invalid_dpop_proof',
      )
    })
    it('refuses a proof an hour old', async () => {
      const proof = await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: token, iat: Math.floor(Date.now() / 1000) - 3600 })
      await expectRefused(
        () =>
          gw.client().send('GET', '/accounts/1', [
            ['authorization', `DPoP ${token}`],
            ['dpop', proof],
          ]),
        401,
        'GW_DPOP_INVALID',
        'DPoP',
        'invalid_dpop_proof',
      )
    })
    it('accepts the conformance-suite positives: htu with query and fragment, request query, upper-case host, :443-less port form, scheme case', async () => {
      const withQuery = await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1') + '?x=1#frag', accessToken: token })
      assert.equal(
        (
          await gw.client().send('GET', '/accounts/1?page=2', [
            ['authorization', `dPoP ${token}`],
            ['DPOP', withQuery],
          ])
        ).status,
        200,
      )
      const upper = await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1').replace('https://', 'HTTPS://'), accessToken: token })
      assert.equal(
        (
          await gw.client().send('GET', '/accounts/1', [
            ['authorization', `DPoP ${token}`],
            ['dpop', upper],
          ])
        ).status,
        200,
      )
    })
    it('still accepts the token after a run of bad proofs (failed proofs never lock the token)', async () => {
      for (let i = 0; i < 5; i++) await dpopGet('/accounts/1', { htu: gw.url('/elsewhere') })
      assert.equal((await dpopGet('/accounts/1')).status, 200)
    })
  })

  describe('4. binding', () => {
    it('refuses a stolen token used with another key (cnf.jkt)', async () => {
      const imposter = await generateDpopKey('ES256')
      await expectRefused(() => dpopGet('/accounts/1', { key: imposter }), 401, 'GW_DPOP_BINDING_MISMATCH', 'DPoP', 'invalid_token')
    })
    it('refuses a proof by another key for the binding before checking its signature, naming that key in the event', async () => {
      const imposter = await generateDpopKey('ES256')
      const [header, claims, signature] = (await createProof(imposter, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: token })).split('.')
      const broken = Buffer.from(signature!, 'base64url')
      broken[0]! ^= 0x01
      const proof = `${header}.${claims}.${broken.toString('base64url')}`
      const extra: [string, string][] = [
        ['authorization', `DPoP ${token}`],
        ['dpop', proof],
        ['x-fapi-interaction-id', 'wrong-key-broken-signature'],
      ]
      await expectRefused(() => gw.client().send('GET', '/accounts/1', extra), 401, 'GW_DPOP_BINDING_MISMATCH', 'DPoP', 'invalid_token')
      const event = gw.log.events().find((e) => e.http?.request?.id === 'wrong-key-broken-signature')
      assert.equal(event?.fapi?.key_thumbprint, imposter.jkt)
    })
    it('refuses the Bearer downgrade of a DPoP-bound token, with both challenges', async () => {
      const response = await expectRefused(
        () => gw.client().send('GET', '/accounts/1', [['authorization', `Bearer ${token}`]]),
        401,
        'GW_TOKEN_DOWNGRADE',
        'Bearer',
        'invalid_token',
      )
      assert.ok(challenges(response).some((c) => c.startsWith('DPoP algs=')))
    })
    it('refuses a certificate-bound token presented with another partner certificate', async () => {
      const pki = await testPki()
      const certToken = await gw.issuer.mint({ x5t: certThumbprint(pki.partnerA) })
      await expectRefused(
        () => gw.client(pki.partnerB).send('GET', '/accounts/1', [['authorization', `Bearer ${certToken}`]]),
        401,
        'GW_CERT_BINDING_MISMATCH',
        'Bearer',
        'invalid_token',
      )
    })
    it('refuses an unbound token', async () => {
      const unbound = await gw.issuer.mint({})
      await expectRefused(
        () => gw.client().send('GET', '/accounts/1', [['authorization', `Bearer ${unbound}`]]),
        401,
        'GW_TOKEN_UNBOUND',
        'Bearer',
        'invalid_token',
      )
    })
    it('refuses a DPoP-bound token on an mTLS-only route', async () => {
      const pki = await testPki()
      const payToken = await gw.issuer.mint({ jkt: key.jkt, scope: 'payments:write' })
      const proof = await createProof(key, { htm: 'POST', htu: gw.url('/payments'), accessToken: payToken })
      await expectRefused(
        () =>
          gw.client(pki.partnerA).send(
            'POST',
            '/payments',
            [
              ['authorization', `DPoP ${payToken}`],
              ['dpop', proof],
            ],
            '{}',
          ),
        401,
        'GW_BINDING_NOT_ALLOWED',
        'DPoP',
        'invalid_token',
      )
    })
  })

  describe('5. replay', () => {
    it('accepts a proof once and refuses it the second time', async () => {
      const proof = await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: token, jti: randomUUID() })
      const send = () =>
        gw.client().send('GET', '/accounts/1', [
          ['authorization', `DPoP ${token}`],
          ['dpop', proof],
        ])
      assert.equal((await send()).status, 200)
      await expectRefused(send, 401, 'GW_DPOP_REPLAY', 'DPoP', 'invalid_dpop_proof')
    })
    it('does not burn the jti of a refused request', async () => {
      const jti = randomUUID()
      const wrongPath = await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: token, jti })
      // Refused by the scope check (after the proof passed): the jti must stay unclaimed.
      const narrow = await gw.issuer.mint({ jkt: key.jkt, scope: 'other' })
      const narrowProof = await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: narrow, jti })
      await expectRefused(
        () =>
          gw.client().send('GET', '/accounts/1', [
            ['authorization', `DPoP ${narrow}`],
            ['dpop', narrowProof],
          ]),
        403,
        'GW_SCOPE_INSUFFICIENT',
        'DPoP',
        'insufficient_scope',
      )
      assert.equal(
        (
          await gw.client().send('GET', '/accounts/1', [
            ['authorization', `DPoP ${token}`],
            ['dpop', wrongPath],
          ])
        ).status,
        200,
      )
    })
  })

  describe('6. policies', () => {
    it('refuses a path no policy names (deny by default)', async () => {
      await expectRefused(() => dpopGet('/admin/users'), 404, 'GW_ROUTE_UNKNOWN')
    })
    it('refuses a method the route does not allow', async () => {
      const proof = await createProof(key, { htm: 'DELETE', htu: gw.url('/accounts/1'), accessToken: token })
      await expectRefused(
        () =>
          gw.client().send('DELETE', '/accounts/1', [
            ['authorization', `DPoP ${token}`],
            ['dpop', proof],
          ]),
        405,
        'GW_METHOD_NOT_ALLOWED',
      )
    })
    it('refuses a missing scope with 403 insufficient_scope and the scope', async () => {
      const narrow = await gw.issuer.mint({ jkt: key.jkt, scope: 'profile' })
      const response = await expectRefused(() => dpopGet('/accounts/1', { token: narrow }), 403, 'GW_SCOPE_INSUFFICIENT', 'DPoP', 'insufficient_scope')
      assert.match(challenges(response).join(), /scope="accounts:read"/)
    })
    it('refuses a path that an upstream could normalise into another route', async () => {
      // Sent raw: a WHATWG URL client would itself resolve the encoded dot segments.
      for (const path of ['/accounts/%2e%2e/payments', '/accounts/../payments', '/accounts//1', '/accounts/1%2F..%2F2']) {
        const before = gw.upstream.received.length
        const answer = await rawRequest(gw, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: DPoP ${token}\r\nConnection: close\r\n\r\n`)
        assert.match(answer, /^HTTP\/1\.1 400 /, path)
        assert.match(answer, /"code":"GW_REQUEST_MALFORMED"/, path)
        assert.equal(gw.upstream.received.length, before)
      }
    })
  })

  describe('7. forwarding', () => {
    it('sends the verified identity upstream and strips what a client could spoof', async () => {
      const response = await dpopGet('/accounts/1?page=2', {
        extra: [
          ['x-fapi-gateway-client-id', 'spoofed'],
          ['x-forwarded-for', '6.6.6.6'],
          ['x-fapi-interaction-id', 'c0ffee00-0000-4000-8000-000000000001'],
          ['x-custom', 'kept'],
        ],
      })
      assert.equal(response.status, 200)
      assert.equal(response.headers['x-fapi-interaction-id'], 'c0ffee00-0000-4000-8000-000000000001')
      assert.ok(response.headers.date)
      const seen = gw.upstream.received.at(-1)!
      assert.equal(seen.url, '/accounts/1?page=2')
      assert.equal(seen.headers['x-fapi-gateway-client-id'], 'partner-a')
      assert.equal(seen.headers['x-fapi-gateway-subject'], 'customer-1')
      assert.equal(seen.headers['x-fapi-gateway-scopes'], 'accounts:read')
      assert.equal(seen.headers['x-fapi-gateway-key-thumbprint'], key.jkt)
      assert.equal(seen.headers['x-fapi-gateway-route'], 'accounts-read')
      assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1')
      assert.equal(seen.headers['x-fapi-interaction-id'], 'c0ffee00-0000-4000-8000-000000000001')
      assert.equal(seen.headers['x-custom'], 'kept')
      assert.equal(seen.headers.authorization, undefined)
      assert.equal(seen.headers.dpop, undefined)
    })
    it('generates an interaction id when the client sends none', async () => {
      const response = await dpopGet('/accounts/1')
      assert.match(String(response.headers['x-fapi-interaction-id']), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    })
  })

  describe('8–9. answers and operations', () => {
    it('emits one security event per refusal, without tokens or proofs', async () => {
      const imposter = await generateDpopKey('ES256')
      await dpopGet('/accounts/1', { key: imposter, extra: [['x-fapi-interaction-id', 'event-check-1']] })
      const event = gw.log.events().find((e) => e.http?.request?.id === 'event-check-1')
      assert.ok(event)
      assert.equal(event.event.action, 'request.refused')
      assert.equal(event.event.reason, 'GW_DPOP_BINDING_MISMATCH')
      assert.equal(event.fapi?.route, 'accounts-read')
      assert.equal(event.fapi?.client_id, 'partner-a')
      const all = gw.log.lines.join('\n')
      assert.ok(!all.includes(token), 'no access token in logs')
      assert.ok(!/eyJ[A-Za-z0-9_-]+\.eyJ/.test(all), 'no JWT of any kind in logs')
    })
    it('serves health, readiness and metrics on the admin listener', async () => {
      const admin = `http://127.0.0.1:${gw.gateway.adminPort}`
      assert.equal((await fetch(`${admin}/healthz`)).status, 200)
      const ready = await fetch(`${admin}/readyz`)
      assert.equal(ready.status, 200)
      assert.deepEqual(await ready.json(), { status: 'ready', checks: { replay_store: true, issuer_keys: true, 'upstream:data-api': true } })
      const metrics = await (await fetch(`${admin}/metrics`)).text()
      assert.match(metrics, /fapi_gateway_requests_total\{route="accounts-read",outcome="allowed"\} \d+/)
      assert.match(metrics, /fapi_gateway_refusals_total\{route="accounts-read",reason="GW_DPOP_BINDING_MISMATCH"\} \d+/)
      assert.match(metrics, /fapi_gateway_request_duration_seconds_bucket/)
      assert.match(metrics, /fapi_gateway_upstream_duration_seconds_bucket\{le="[^"]+",upstream="data-api"\}/)
      assert.match(metrics, /fapi_gateway_cache_lookups_total\{cache="verified_tokens",result="hit"\} [1-9]/)
    })
  })
})
