// The gateway's own keys (issue 14 point 6) through a real gateway in front of the real legacy server:
// jwks_uri in the metadata, the JWKS endpoint with its short cache lifetime and only public members, a key
// not yet due unpublished, and the expiry gauge on the admin listener.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { request } from 'undici'
import { startFacadeEnvironment, type FacadeEnvironment } from '../../dev/facade-environment.ts'
import { captureLog, testPki } from '../support/gateway.ts'
import { discover, transport, type Transport } from '../support/fapi-client.ts'
import { createLogger } from '../../src/observability/log.ts'

const DAY_MS = 24 * 3600 * 1000
const retireAt = new Date(Date.now() + 30 * DAY_MS).toISOString()

describe("the gateway's own keys", () => {
  let env: FacadeEnvironment
  let t: Transport

  before(async () => {
    const { sink } = captureLog()
    const sigPem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string
    const encJwk = JSON.stringify(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }))
    const nextPem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }) as string
    env = await startFacadeEnvironment({
      logger: createLogger('info', sink),
      pki: await testPki(),
      gateway: { eventStream: sink },
      files: { 'jarm-1.pem': sigPem, 'jarm-2.pem': nextPem },
      env: { GATEWAY_ENC_KEY: encJwk },
      authorizationServer: {
        keys: [
          { kid: 'jarm-1', use: 'sig', alg: 'ES256', privateKeyFile: 'jarm-1.pem', retireAt },
          // Due in ten days: not published yet (publishAheadSeconds is an hour).
          { kid: 'jarm-2', use: 'sig', alg: 'EdDSA', privateKeyFile: 'jarm-2.pem', activeFrom: new Date(Date.now() + 10 * DAY_MS).toISOString() },
          { kid: 'request-enc-1', use: 'enc', alg: 'RSA-OAEP-256', privateKeyEnv: 'GATEWAY_ENC_KEY' },
        ],
      },
    })
    t = await transport()
  })

  after(async () => {
    await t?.agent.close()
    await env?.close()
  })

  it('publishes jwks_uri in the metadata, and the public keys there (short cache, no private member)', async () => {
    const as = await discover(env.issuer, t)
    assert.equal(as.jwks_uri, `${env.issuer}/oauth2/jwks`)
    const response = await request(as.jwks_uri!, { dispatcher: t.agent })
    const jwks = (await response.body.json()) as { keys: Record<string, unknown>[] }
    assert.equal(response.statusCode, 200)
    assert.equal(response.headers['cache-control'], 'public, max-age=300')
    assert.equal(response.headers['content-type'], 'application/jwk-set+json')
    assert.deepEqual(
      jwks.keys.map((k) => [k.kid, k.use, k.alg, k.kty]),
      [
        ['jarm-1', 'sig', 'ES256', 'EC'],
        ['request-enc-1', 'enc', 'RSA-OAEP-256', 'RSA'],
      ],
    )
    for (const key of jwks.keys) for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']) assert.equal(member in key, false)
  })

  it('answers only GET and HEAD there', async () => {
    const response = await request(`${env.issuer}/oauth2/jwks`, { method: 'POST', dispatcher: t.agent, body: '' })
    const body = (await response.body.json()) as { error: string }
    assert.equal(response.statusCode, 405)
    assert.equal(response.headers.allow, 'GET, HEAD')
    assert.equal(body.error, 'invalid_request')
  })

  it('reports the seconds until each key with a retireAt retires', async () => {
    const response = await request(`http://127.0.0.1:${env.gateways[0]!.adminPort}/metrics`)
    const text = await response.body.text()
    const line = text.split('\n').find((l) => l.startsWith('fapi_gateway_as_key_expiry_seconds{'))
    assert.match(line ?? '', /^fapi_gateway_as_key_expiry_seconds\{kid="jarm-1",use="sig"\} \d+$/)
    const seconds = Number(line!.split(' ')[1])
    assert.ok(seconds > 29 * 86400 && seconds <= 30 * 86400, String(seconds))
    assert.equal(text.includes('kid="jarm-2"'), false)
  })
})
