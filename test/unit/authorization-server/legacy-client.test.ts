// The gateway's client of the legacy server, against a real oidc-provider over TLS and a misbehaving HTTPS server.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { once } from 'node:events'
import { inspect } from 'node:util'
import type { TLSSocket } from 'node:tls'
import { chainPem } from '../../../dev/pki.ts'
import { testPki } from '../../support/gateway.ts'
import { startLegacyServer } from '../../../dev/legacy-server.ts'
import { OAuthError, type OAuthErrorCode } from '../../../src/authorization-server/errors.ts'
import { createLegacyClient, LEGACY_MAX_ANSWER_BYTES, type LegacyClientSettings } from '../../../src/authorization-server/legacy-client.ts'
import type { LegacyCredentials } from '../../../src/authorization-server/partners.ts'

const pki = await testPki()
const basic: LegacyCredentials = { clientId: 'gateway-basic', authentication: 'client_secret_basic', secret: 'basic-secret' }
const post: LegacyCredentials = { clientId: 'gateway-post', authentication: 'client_secret_post', secret: 'post-secret' }
// RFC 6749 §2.3.1: a colon, a plus, a percent and a space survive only if form-encoded before Basic.
const awkward: LegacyCredentials = { clientId: 'gateway:awkward', authentication: 'client_secret_basic', secret: 'p@ss w+rd:%41' }
const legacy = await startLegacyServer({
  pki: await testPki(),
  clients: [
    { clientId: basic.clientId, clientSecret: basic.secret, scopes: ['accounts'] },
    { clientId: post.clientId, clientSecret: post.secret, authentication: 'client_secret_post', scopes: ['accounts'] },
    { clientId: awkward.clientId, clientSecret: awkward.secret, scopes: ['accounts'] },
  ],
})

const settings = (overrides: Partial<LegacyClientSettings> = {}): LegacyClientSettings => ({
  tokenEndpoint: legacy.tokenEndpoint,
  revocationEndpoint: legacy.revocationEndpoint,
  caPem: legacy.caPem,
  connectTimeoutMs: 5_000,
  timeoutMs: 5_000,
  connections: 4,
  ...overrides,
})
const client = createLegacyClient(settings())
after(async () => {
  await client.close()
  await legacy.close()
})

const clientCredentials = () => new URLSearchParams({ grant_type: 'client_credentials', scope: 'accounts' })

async function refusedWith(promise: Promise<unknown>, code: OAuthErrorCode, secret?: string): Promise<OAuthError> {
  const error = await promise.then(
    () => assert.fail(`expected ${code}`),
    (caught: unknown) => caught,
  )
  assert.ok(error instanceof OAuthError, `not an OAuthError: ${String(error)}`)
  assert.equal(error.code, code, error.message)
  if (secret) assert.doesNotMatch(inspect(error, { depth: 10 }), new RegExp(secret.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
  return error
}

test('client_secret_basic: the token answer comes back as status and body, and the secret is not in the form', async () => {
  const before = legacy.requestsTo('/token').length
  const answer = await client.token(clientCredentials(), basic)
  assert.equal(answer.status, 200)
  assert.equal(answer.body.token_type, 'Bearer')
  assert.equal(typeof answer.body.access_token, 'string')
  assert.deepEqual(legacy.requestsTo('/token').slice(before), [{ method: 'POST', path: '/token', clientId: basic.clientId, grantType: 'client_credentials' }])
})

test('client_secret_basic form-encodes the id and secret (RFC 6749 §2.3.1)', async () => {
  const answer = await client.token(clientCredentials(), awkward)
  assert.equal(answer.status, 200, JSON.stringify(answer.body))
})

test('client_secret_post sends the id and secret in the form, in place of any the caller left', async () => {
  const params = new URLSearchParams({ grant_type: 'client_credentials', client_id: 'partner-a', client_secret: 'leftover' })
  const answer = await client.token(params, post)
  assert.equal(answer.status, 200, JSON.stringify(answer.body))
  assert.equal(params.get('client_secret'), 'leftover', "the caller's form is not changed")
})

test('a wrong secret: the legacy 401 invalid_client comes back as an answer, for the token endpoint to map', async () => {
  const answer = await client.token(clientCredentials(), { ...basic, secret: 'not-the-secret' })
  assert.equal(answer.status, 401)
  assert.equal(answer.body.error, 'invalid_client')
})

test('revoke: RFC 7009 at the legacy server (an empty 200 is an answer); AS_INTERNAL without a revocation endpoint', async () => {
  const issued = await client.token(clientCredentials(), basic)
  const answer = await client.revoke(new URLSearchParams({ token: issued.body.access_token as string, token_type_hint: 'access_token' }), basic)
  assert.deepEqual(answer, { status: 200, body: {} })

  const noRevocation = createLegacyClient(settings({ revocationEndpoint: undefined }))
  try {
    await refusedWith(noRevocation.revoke(new URLSearchParams({ token: 'x' }), basic), 'AS_INTERNAL')
  } finally {
    await noRevocation.close()
  }
})

test('a hung legacy server: AS_LEGACY_TIMEOUT, and the request is sent once', async () => {
  const server = await startLegacyServer({ pki: await testPki(), clients: [{ clientId: basic.clientId, clientSecret: basic.secret, scopes: ['accounts'] }] })
  const impatient = createLegacyClient(settings({ tokenEndpoint: server.tokenEndpoint, caPem: server.caPem, timeoutMs: 300 }))
  try {
    server.hang()
    const error = await refusedWith(impatient.token(clientCredentials(), basic), 'AS_LEGACY_TIMEOUT', basic.secret)
    assert.equal(error.rule, 'timeout')
    assert.equal(server.requestsTo('/token').length, 1)
  } finally {
    await impatient.close()
    await server.close()
  }
})

test('a legacy server that is down: AS_LEGACY_UNAVAILABLE', async () => {
  const server = await startLegacyServer({ pki: await testPki(), clients: [{ clientId: basic.clientId, clientSecret: basic.secret }] })
  const unlucky = createLegacyClient(settings({ tokenEndpoint: server.tokenEndpoint, caPem: server.caPem }))
  try {
    await server.stop()
    const error = await refusedWith(unlucky.token(clientCredentials(), basic), 'AS_LEGACY_UNAVAILABLE', basic.secret)
    assert.match(error.detail!, /ECONNREFUSED/)
  } finally {
    await unlucky.close()
    await server.close()
  }
})

test('a legacy server certificate from another CA: AS_LEGACY_UNAVAILABLE, nothing sent', async () => {
  const before = legacy.requests.length
  const distrustful = createLegacyClient(settings({ caPem: pki.untrustedRoot.certPem }))
  try {
    const error = await refusedWith(distrustful.token(clientCredentials(), basic), 'AS_LEGACY_UNAVAILABLE', basic.secret)
    assert.equal(error.rule, 'connection')
    assert.equal(legacy.requests.length, before)
  } finally {
    await distrustful.close()
  }
})

test('settings: https endpoints only, a client certificate with its key', () => {
  assert.throws(() => createLegacyClient(settings({ tokenEndpoint: 'http://127.0.0.1/token' })), /https/)
  assert.throws(() => createLegacyClient(settings({ revocationEndpoint: 'http://127.0.0.1/revoke' })), /https/)
  assert.throws(() => createLegacyClient(settings({ certPem: pki.partnerA.certPem })), /key/)
})

// An HTTPS server that answers as told, counting the requests it gets.
async function misbehaving(
  answer: (req: IncomingMessage, res: ServerResponse) => void,
  tls: { requestCert?: boolean; ca?: string } = {},
): Promise<{ url: string; count: () => number; server: Server }> {
  let count = 0
  const server = createServer({ cert: chainPem(pki.server, pki.intermediate), key: pki.server.keyPem, ...tls }, (req, res) => {
    count++
    req.resume()
    req.once('end', () => answer(req, res))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  return { url: `https://127.0.0.1:${port}/token`, count: () => count, server }
}

const answers: { name: string; code: OAuthErrorCode; rule: string; answer: (req: IncomingMessage, res: ServerResponse) => void }[] = [
  { name: 'a 503', code: 'AS_LEGACY_UNAVAILABLE', rule: 'status', answer: (_req, res) => res.writeHead(503, { 'content-type': 'application/json' }).end('{}') },
  {
    name: 'a 500 in HTML',
    code: 'AS_LEGACY_UNAVAILABLE',
    rule: 'status',
    answer: (_req, res) => res.writeHead(500, { 'content-type': 'text/html' }).end('<h1>oops</h1>'),
  },
  {
    name: 'a redirect',
    code: 'AS_LEGACY_BAD_ANSWER',
    rule: 'status',
    answer: (_req, res) => res.writeHead(302, { location: 'https://elsewhere.example/' }).end(),
  },
  {
    name: 'HTML at 200',
    code: 'AS_LEGACY_BAD_ANSWER',
    rule: 'answer',
    answer: (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html></html>'),
  },
  {
    name: 'broken JSON',
    code: 'AS_LEGACY_BAD_ANSWER',
    rule: 'answer',
    answer: (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token":'),
  },
  {
    name: 'a JSON array',
    code: 'AS_LEGACY_BAD_ANSWER',
    rule: 'answer',
    answer: (_req, res) => res.writeHead(400, { 'content-type': 'application/json' }).end('[]'),
  },
  {
    name: 'an answer past the size cap',
    code: 'AS_LEGACY_BAD_ANSWER',
    rule: 'answer',
    answer: (_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: 'x'.repeat(LEGACY_MAX_ANSWER_BYTES) })),
  },
  { name: 'a reset connection', code: 'AS_LEGACY_UNAVAILABLE', rule: 'connection', answer: (req) => req.socket.destroy() },
]

for (const { name, code, rule, answer } of answers) {
  test(`${name} from the legacy token endpoint: ${code}, and the request is not retried`, async () => {
    const fake = await misbehaving(answer)
    const victim = createLegacyClient(settings({ tokenEndpoint: fake.url, caPem: pki.root.certPem }))
    try {
      const error = await refusedWith(victim.token(clientCredentials(), basic), code, basic.secret)
      assert.equal(error.rule, rule, error.message)
      assert.equal(fake.count(), 1)
    } finally {
      await victim.close()
      fake.server.closeAllConnections()
      fake.server.close()
    }
  })
}

test('JSON with a charset is JSON', async () => {
  const fake = await misbehaving((_req, res) => res.writeHead(400, { 'content-type': 'application/json;charset=UTF-8' }).end('{"error":"invalid_grant"}'))
  const patient = createLegacyClient(settings({ tokenEndpoint: fake.url, caPem: pki.root.certPem }))
  try {
    assert.deepEqual(await patient.token(clientCredentials(), basic), { status: 400, body: { error: 'invalid_grant' } })
  } finally {
    await patient.close()
    fake.server.closeAllConnections()
    fake.server.close()
  }
})

test('a closed client refuses with AS_LEGACY_UNAVAILABLE', async () => {
  const closed = createLegacyClient(settings())
  await closed.close()
  const error = await refusedWith(closed.token(clientCredentials(), basic), 'AS_LEGACY_UNAVAILABLE')
  assert.equal(error.rule, 'closed')
})

test('a legacy server that asks for a client certificate gets the configured one; without it, AS_LEGACY_UNAVAILABLE', async () => {
  const fake = await misbehaving(
    (req, res) => {
      const subject = (req.socket as TLSSocket).getPeerCertificate().subject?.CN
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ subject }))
    },
    { requestCert: true, ca: pki.root.certPem },
  )
  const withCertificate = createLegacyClient(
    settings({ tokenEndpoint: fake.url, caPem: pki.root.certPem, certPem: chainPem(pki.partnerA, pki.intermediate), keyPem: pki.partnerA.keyPem }),
  )
  const without = createLegacyClient(settings({ tokenEndpoint: fake.url, caPem: pki.root.certPem }))
  try {
    assert.deepEqual(await withCertificate.token(clientCredentials(), basic), { status: 200, body: { subject: 'partner-a' } })
    await refusedWith(without.token(clientCredentials(), basic), 'AS_LEGACY_UNAVAILABLE', basic.secret)
  } finally {
    await Promise.all([withCertificate.close(), without.close()])
    fake.server.closeAllConnections()
    fake.server.close()
  }
})
