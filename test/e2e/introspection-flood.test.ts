// Unauthenticated introspection floods: every string in Authorization that is not a JWS costs the
// gateway a call to the issuer. A flood of random strings from one address must not starve a
// legitimate client of the issuer connections, and must not turn into 503s for it.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createPartnerClient, createProof, generateDpopKey, type DpopKey, type PartnerResponse } from '../../src/client/partner-client.ts'
import type { DevPki } from '../../dev/pki.ts'
import { startTestGateway, testPki, type TestGateway } from '../support/gateway.ts'
import { issuerId, startIssuerServer, type IntrospectionCall, type IssuerServer } from '../unit/tokens/issuer-server.ts'

const AUDIENCE = 'https://api.bank.example'
// The flood comes from another loopback address than the legitimate partner (Linux routes all of 127/8 locally).
const ATTACKER_ADDRESS = '127.0.0.2'

function introspectingIssuer(server: IssuerServer, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'dev',
    issuer: issuerId,
    caFile: 'client-ca.crt',
    audience: AUDIENCE,
    introspection: {
      endpoint: server.introspectionEndpoint,
      clientId: 'fapi-gateway',
      auth: { method: 'client_secret_basic', secretEnv: 'INTROSPECTION_SECRET' },
      ...extra,
    },
  }
}

function activeAnswer(key: DpopKey): Record<string, unknown> {
  return {
    active: true,
    iss: issuerId,
    aud: AUDIENCE,
    exp: Math.floor(Date.now() / 1000) + 300,
    scope: 'accounts:read',
    client_id: 'partner-a',
    sub: 'customer-9',
    token_type: 'DPoP',
    cnf: { jkt: key.jkt },
  }
}

async function sendDpop(gw: TestGateway, key: DpopKey, token: string): Promise<PartnerResponse> {
  const proof = await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: token })
  return gw.client().send('GET', '/accounts/1', [
    ['authorization', `DPoP ${token}`],
    ['dpop', proof],
  ])
}

describe('a flood of random opaque tokens from one address (default limits)', () => {
  let pki: DevPki
  let server: IssuerServer
  let gw: TestGateway
  before(async () => {
    pki = await testPki()
    server = await startIssuerServer(pki)
    gw = await startTestGateway({ pki, env: { INTROSPECTION_SECRET: 'dev-introspection-secret' }, config: { issuers: [introspectingIssuer(server)] } })
  })
  after(async () => {
    await gw.close()
    await server.stop()
  })

  it('does not keep a legitimate partner from the issuer: its new token is still accepted', async () => {
    const key = await generateDpopKey('ES256')
    const legitimate = randomBytes(32).toString('base64url')
    // The issuer holds every flood token until the legitimate request has been answered.
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    let holding!: () => void
    const held = new Promise<void>((resolve) => (holding = resolve))
    const floodCalls: IntrospectionCall[] = []
    server.introspect = async (call) => {
      if (call.form.get('token') === legitimate) return { body: activeAnswer(key) }
      floodCalls.push(call)
      if (floodCalls.length === 4) holding()
      await released
      return { body: { active: false } }
    }
    const attacker = createPartnerClient({ baseUrl: gw.baseUrl, caPem: pki.root.certPem, localAddress: ATTACKER_ADDRESS })
    try {
      const flood = Array.from({ length: 100 }, () =>
        attacker.send('GET', '/accounts/1', [['authorization', `Bearer ${randomBytes(24).toString('base64url')}`]]),
      )
      await held
      const before = gw.upstream.received.length
      const ok = await sendDpop(gw, key, legitimate)
      release()
      assert.equal(ok.status, 200, ok.body)
      assert.equal(gw.upstream.received.length, before + 1)

      const answers = await Promise.all(flood)
      const codes = new Map<string, number>()
      for (const answer of answers)
        codes.set(`${answer.status} ${String(answer.json?.code)}`, (codes.get(`${answer.status} ${String(answer.json?.code)}`) ?? 0) + 1)
      assert.deepEqual(
        [...codes.keys()].filter((code) => code !== '401 GW_TOKEN_INACTIVE' && code !== '429 GW_INTROSPECTION_THROTTLED'),
        [],
        JSON.stringify([...codes]),
      )
      assert.ok((codes.get('429 GW_INTROSPECTION_THROTTLED') ?? 0) > 0, 'the flooding address is throttled')
      assert.equal(answers.find((answer) => answer.status === 429)?.headers['retry-after'], '1')
      assert.ok(floodCalls.length < answers.length, 'throttled strings never reach the issuer')
      assert.equal(gw.upstream.received.length, before + 1, 'nothing of the flood is forwarded')
      const metrics = await gw.gateway.metrics.registry.metrics()
      assert.match(metrics, /fapi_gateway_introspection_refused_total\{issuer="dev",reason="client_limit"\} [1-9]/)
      assert.match(metrics, /fapi_gateway_introspection_calls_total\{issuer="dev",outcome="active"\} 1\n/)
      assert.match(metrics, /fapi_gateway_refusals_total\{route="accounts-read",reason="GW_INTROSPECTION_THROTTLED"\} [1-9]/)
    } finally {
      release()
      await attacker.close()
    }
  })
})

describe('issuers[].introspection.tokenShape', () => {
  let pki: DevPki
  let server: IssuerServer
  let gw: TestGateway
  before(async () => {
    pki = await testPki()
    server = await startIssuerServer(pki)
    const tokenShape = { prefix: 'at_', minLength: 40, maxLength: 64, charset: 'base64url' }
    gw = await startTestGateway({
      pki,
      env: { INTROSPECTION_SECRET: 'dev-introspection-secret' },
      config: { issuers: [introspectingIssuer(server, { tokenShape })] },
    })
  })
  after(async () => {
    await gw.close()
    await server.stop()
  })

  it("refuses a string that cannot be the issuer's token without asking it, and accepts one that is", async () => {
    const key = await generateDpopKey('ES256')
    const legitimate = `at_${randomBytes(32).toString('base64url')}`
    server.introspect = (call) => ({ body: call.form.get('token') === legitimate ? activeAnswer(key) : { active: false } })
    const before = server.introspectionCalls.length
    for (const value of [randomBytes(32).toString('base64url'), `at_${randomBytes(8).toString('base64url')}`, `at_${randomBytes(32).toString('base64')}`]) {
      const refused = await gw.client().send('GET', '/accounts/1', [['authorization', `Bearer ${value}`]])
      assert.equal(refused.status, 401, value)
      assert.equal(refused.json?.code, 'GW_TOKEN_INVALID')
    }
    assert.equal(server.introspectionCalls.length, before)
    assert.match(await gw.gateway.metrics.registry.metrics(), /fapi_gateway_introspection_refused_total\{issuer="dev",reason="shape"\} 3/)
    const ok = await sendDpop(gw, key, legitimate)
    assert.equal(ok.status, 200, ok.body)
    assert.equal(server.introspectionCalls.length, before + 1)
  })
})
