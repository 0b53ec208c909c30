// Deployment options end to end: DPoP server nonces, opaque tokens through introspection,
// an unreachable issuer or upstream, and a listener that demands client certificates.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { connect } from 'node:tls'
import { parse, stringify } from 'yaml'
import { createProof, generateDpopKey, challengeError, type DpopKey } from '../../src/client/partner-client.ts'
import { startTestGateway, testPki, certThumbprint, type TestGateway } from '../support/gateway.ts'

describe('dpop.verifyOn: eventLoop (proof signatures verified inline instead of on the thread pool)', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startTestGateway({ config: { dpop: { verifyOn: 'eventLoop' } } })
  })
  after(() => gw.close())

  it('accepts a good proof, refuses a forged signature and a replay, like the default', async () => {
    const key = await generateDpopKey('ES256')
    const token = await gw.issuer.mint({ jkt: key.jkt })
    const client = gw.client()
    const proof = await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: token })
    const good = await client.send('GET', '/accounts/1', [
      ['authorization', `DPoP ${token}`],
      ['dpop', proof],
    ])
    assert.equal(good.status, 200)
    const replayed = await client.send('GET', '/accounts/1', [
      ['authorization', `DPoP ${token}`],
      ['dpop', proof],
    ])
    assert.equal(replayed.json?.code, 'GW_DPOP_REPLAY')
    const fresh = await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: token })
    const forged = `${fresh.slice(0, fresh.lastIndexOf('.'))}.${Buffer.alloc(64, 7).toString('base64url')}`
    const refused = await client.send('GET', '/accounts/1', [
      ['authorization', `DPoP ${token}`],
      ['dpop', forged],
    ])
    assert.equal(refused.status, 401)
    assert.equal(refused.json?.code, 'GW_DPOP_INVALID')
    assert.equal(challengeError(refused, 'DPoP'), 'invalid_dpop_proof')
  })
})

describe('DPoP server nonces (RFC 9449 §9)', () => {
  let gw: TestGateway
  let key: DpopKey
  let token: string
  before(async () => {
    gw = await startTestGateway({
      config: { dpop: { nonce: { mode: 'required', secretEnv: 'NONCE_SECRET' } } },
      env: { NONCE_SECRET: randomBytes(32).toString('base64url') },
    })
    key = await generateDpopKey('ES256')
    token = await gw.issuer.mint({ jkt: key.jkt })
  })
  after(() => gw.close())

  it('answers a proof without a nonce with use_dpop_nonce and one DPoP-Nonce, then accepts the retry', async () => {
    const client = gw.client()
    const before = gw.upstream.received.length
    const first = await client.send('GET', '/accounts/1', [
      ['authorization', `DPoP ${token}`],
      ['dpop', await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: token })],
    ])
    assert.equal(first.status, 401)
    assert.equal(challengeError(first, 'DPoP'), 'use_dpop_nonce')
    const nonce = first.headers['dpop-nonce']
    assert.equal(typeof nonce, 'string', 'exactly one DPoP-Nonce header')
    assert.match(nonce as string, /^[\x21\x23-\x5b\x5d-\x7e]+$/, 'NQCHAR')
    assert.equal(gw.upstream.received.length, before)

    const retry = await client.send('GET', '/accounts/1', [
      ['authorization', `DPoP ${token}`],
      ['dpop', await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: token, nonce: nonce as string })],
    ])
    assert.equal(retry.status, 200)
    assert.equal(typeof retry.headers['dpop-nonce'], 'string', 'a fresh nonce on success too')
    assert.equal(retry.headers['cache-control'], 'no-store')
  })

  it('refuses a forged nonce', async () => {
    const response = await gw.client().send('GET', '/accounts/1', [
      ['authorization', `DPoP ${token}`],
      ['dpop', await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: token, nonce: 'forged-nonce' })],
    ])
    assert.equal(response.status, 401)
    assert.equal(response.json?.code, 'GW_DPOP_NONCE')
  })

  it('refuses to start without the nonce secret, naming the key', async () => {
    await assert.rejects(
      startTestGateway({ config: { dpop: { nonce: { mode: 'required', secretEnv: 'NONCE_SECRET' } } }, env: {} }),
      /dpop\.nonce\.secretEnv: environment variable NONCE_SECRET is not set/,
    )
  })
})

describe('DPoP server nonces, optional (a migration mode)', () => {
  const warnings = (gw: TestGateway) => gw.log.lines.map((line) => JSON.parse(line)).filter((entry) => entry.level === 40 && entry.key === 'dpop.nonce.mode')

  it('warns at start-up naming dpop.nonce.mode, hands out nonces and still accepts a proof without one', async () => {
    const gw = await startTestGateway({
      config: { dpop: { nonce: { mode: 'optional', secretEnv: 'NONCE_SECRET' } } },
      env: { NONCE_SECRET: randomBytes(32).toString('base64url') },
    })
    try {
      const [warning, ...more] = warnings(gw)
      assert.equal(more.length, 0, 'one warning')
      assert.match(warning.msg, /^dpop\.nonce\.mode: optional .*migration mode.*required/)
      const key = await generateDpopKey('ES256')
      const token = await gw.issuer.mint({ jkt: key.jkt })
      const response = await gw.client().send('GET', '/accounts/1', [
        ['authorization', `DPoP ${token}`],
        ['dpop', await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: token })],
      ])
      assert.equal(response.status, 200, response.body)
      assert.equal(typeof response.headers['dpop-nonce'], 'string', 'a nonce is handed out')
    } finally {
      await gw.close()
    }
  })

  it('does not warn when nonces are required, and warns once when a reload makes them optional', async () => {
    const gw = await startTestGateway({
      config: { dpop: { nonce: { mode: 'required', secretEnv: 'NONCE_SECRET' } }, reload: { pollIntervalMs: 0 } },
      env: { NONCE_SECRET: randomBytes(32).toString('base64url') },
    })
    try {
      assert.deepEqual(warnings(gw), [])
      const config = parse(readFileSync(gw.configFile, 'utf8')) as { dpop: { nonce: { mode: string } } }
      config.dpop.nonce.mode = 'optional'
      writeFileSync(gw.configFile, stringify(config))
      assert.equal((await gw.gateway.reload()).outcome, 'reloaded')
      assert.equal(warnings(gw).length, 1)
      assert.equal((await gw.gateway.reload()).outcome, 'reloaded')
      assert.equal(warnings(gw).length, 1, 'not again while it stays optional')
    } finally {
      await gw.close()
    }
  })
})

describe('opaque tokens through RFC 7662 introspection', () => {
  it('accepts an active bound token and refuses an inactive one', async () => {
    const key = await generateDpopKey('ES256')
    // A first environment provides the issuer; the gateway under test trusts it for opaque tokens only.
    const probe = await startTestGateway({})
    const issuer = probe.issuer
    const opaque = await startTestGateway({
      env: { INTROSPECTION_SECRET: 'dev-introspection-secret' },
      config: {
        issuers: [
          {
            name: 'dev',
            issuer: issuer.issuer,
            caFile: 'client-ca.crt',
            audience: 'https://api.bank.example',
            introspection: {
              endpoint: issuer.introspectionUri,
              clientId: 'fapi-gateway',
              auth: { method: 'client_secret_basic', secretEnv: 'INTROSPECTION_SECRET' },
            },
          },
        ],
      },
    })
    try {
      const active = randomBytes(32).toString('base64url')
      issuer.registerOpaque(active, {
        iss: issuer.issuer,
        aud: 'https://api.bank.example',
        exp: Math.floor(Date.now() / 1000) + 300,
        scope: 'accounts:read',
        client_id: 'partner-a',
        sub: 'customer-9',
        token_type: 'DPoP',
        cnf: { jkt: key.jkt },
      })
      const proof = await createProof(key, { htm: 'GET', htu: opaque.url('/accounts/1'), accessToken: active })
      const ok = await opaque.client().send('GET', '/accounts/1', [
        ['authorization', `DPoP ${active}`],
        ['dpop', proof],
      ])
      assert.equal(ok.status, 200, ok.body)
      assert.equal(opaque.upstream.received.at(-1)!.headers['x-fapi-gateway-subject'], 'customer-9')

      const unknown = randomBytes(32).toString('base64url')
      const before = opaque.upstream.received.length
      const refused = await opaque.client().send('GET', '/accounts/1', [
        ['authorization', `DPoP ${unknown}`],
        ['dpop', await createProof(key, { htm: 'GET', htu: opaque.url('/accounts/1'), accessToken: unknown })],
      ])
      assert.equal(refused.status, 401)
      assert.equal(refused.json?.code, 'GW_TOKEN_INACTIVE')
      assert.equal(opaque.upstream.received.length, before)
    } finally {
      await opaque.close()
      await probe.close()
    }
  })
})

describe('unreachable issuer and upstream', () => {
  it('refuses with 503 when the JWKS cannot be fetched and nothing is cached', async () => {
    const gw = await startTestGateway({})
    try {
      const key = await generateDpopKey('ES256')
      const token = await gw.issuer.mint({ jkt: key.jkt })
      const down = await startTestGateway({
        config: {
          issuers: [
            { name: 'dev', issuer: gw.issuer.issuer, jwksUri: 'https://127.0.0.1:1/jwks', caFile: 'client-ca.crt', audience: 'https://api.bank.example' },
          ],
        },
      })
      try {
        const response = await down.client().send('GET', '/accounts/1', [
          ['authorization', `DPoP ${token}`],
          ['dpop', await createProof(key, { htm: 'GET', htu: down.url('/accounts/1'), accessToken: token })],
        ])
        assert.equal(response.status, 503)
        assert.equal(response.json?.code, 'GW_ISSUER_UNAVAILABLE')
        assert.equal(down.upstream.received.length, 0)
        const ready = await fetch(`http://127.0.0.1:${down.gateway.adminPort}/readyz`)
        assert.equal(ready.status, 503)
        await ready.body?.cancel()
      } finally {
        await down.close()
      }
    } finally {
      await gw.close()
    }
  })

  it('answers 502 when the upstream refuses connections', async () => {
    const gw = await startTestGateway({ config: { upstreams: { 'data-api': { url: 'http://127.0.0.1:1' } } } })
    try {
      const key = await generateDpopKey('ES256')
      const token = await gw.issuer.mint({ jkt: key.jkt })
      const response = await gw.client().send('GET', '/accounts/1', [
        ['authorization', `DPoP ${token}`],
        ['dpop', await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: token })],
      ])
      assert.equal(response.status, 502)
      assert.equal(response.json?.code, 'GW_UPSTREAM_UNAVAILABLE')
    } finally {
      await gw.close()
    }
  })
})

describe('listener that requires client certificates (mTLS ecosystems)', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startTestGateway({
      config: {
        listener: {
          tls: {
            certFile: 'server-chain.crt',
            keyFile: 'server.key',
            clientCaFile: 'client-ca.crt',
            clientIntermediatesFile: 'client-intermediates.crt',
            clientCertificate: 'require',
          },
        },
      },
    })
  })
  after(() => gw.close())

  it('ends the handshake without a certificate', async () => {
    const pki = await testPki()
    const url = new URL(gw.baseUrl)
    const outcome = await new Promise<string>((resolve) => {
      const socket = connect({ host: url.hostname, port: Number(url.port), ca: pki.root.certPem }, () => {
        socket.write('GET /accounts/1 HTTP/1.1\r\nHost: x\r\n\r\n')
      })
      socket.on('data', () => resolve('data'))
      socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'))
      socket.on('close', () => resolve('closed'))
    })
    assert.notEqual(outcome, 'data')
    assert.equal(gw.upstream.received.length, 0)
  })

  it('serves a partner with a valid certificate and a certificate-bound token', async () => {
    const pki = await testPki()
    const token = await gw.issuer.mint({ x5t: certThumbprint(pki.partnerA) })
    const response = await gw.client(pki.partnerA).send('GET', '/accounts/1', [['authorization', `Bearer ${token}`]])
    assert.equal(response.status, 200)
  })
})
