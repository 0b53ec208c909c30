// The gateway's own keys (issue 14 point 6) through a real gateway in front of the real legacy server:
// jwks_uri in the metadata, the JWKS endpoint with its short cache lifetime and only public members, a key
// not yet due unpublished, and the expiry gauge on the admin listener.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse, stringify } from 'yaml'
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
  async function publishedKeys(): Promise<Record<string, unknown>[]> {
    const response = await request(`${env.issuer}/oauth2/jwks`, { dispatcher: t.agent })
    return ((await response.body.json()) as { keys: Record<string, unknown>[] }).keys
  }

  it('reads a replaced key file again on reload, refuses a reload with a bad key and keeps the keys in force', async () => {
    const before = (await publishedKeys()).find((k) => k.kid === 'jarm-1')!
    writeFileSync(join(env.dir, 'jarm-1.pem'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }))
    const reloaded = await env.gateways[0]!.reload()
    assert.equal(reloaded.outcome, 'reloaded')
    assert.ok(reloaded.changed.includes('authorizationServer'))
    const after = (await publishedKeys()).find((k) => k.kid === 'jarm-1')!
    assert.notEqual(after.x, before.x)

    writeFileSync(join(env.dir, 'jarm-1.pem'), generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ format: 'pem', type: 'pkcs8' }))
    const refused = await env.gateways[0]!.reload()
    assert.equal(refused.outcome, 'refused')
    assert.ok(
      refused.problems.some((p) => p.endsWith('authorizationServer.keys.0.alg: ES256 needs an EC P-256 key, this is on secp384r1 (kid jarm-1)')),
      String(refused.problems),
    )
    assert.equal((await publishedKeys()).find((k) => k.kid === 'jarm-1')!.x, after.x)
  })

  it('publishes a key added on a reload at once', async () => {
    writeFileSync(join(env.dir, 'jarm-1.pem'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }))
    writeFileSync(join(env.dir, 'jarm-3.pem'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }))
    const config = parse(readFileSync(env.configFile, 'utf8')) as { authorizationServer: { keys: unknown[] } }
    const activeFrom = new Date(Date.now() + 10 * 60_000).toISOString()
    config.authorizationServer.keys.push({ kid: 'jarm-3', use: 'sig', alg: 'ES256', privateKeyFile: 'jarm-3.pem', activeFrom })
    writeFileSync(env.configFile, stringify(config))
    assert.equal((await env.gateways[0]!.reload()).outcome, 'reloaded')
    assert.deepEqual(
      (await publishedKeys()).map((k) => k.kid),
      ['jarm-1', 'request-enc-1', 'jarm-3'],
    )
    // When it may sign (an hour after this reload, not in ten minutes) is file-key-source.test.ts's to show.
  })
})
