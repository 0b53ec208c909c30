// Bad input at a running gateway over real TLS: fast-check throws malformed Authorization
// and DPoP headers, mutated tokens and proofs, and random paths and queries through one
// keep-alive connection. Every answer must be a catalogued refusal that says nothing
// internal, nothing may reach the upstream, and the gateway must stay healthy.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { createProof, generateDpopKey, type DpopKey, type PartnerClient, type PartnerResponse } from '../../src/client/partner-client.ts'
import { catalogue, type ErrorCode } from '../../src/errors.ts'
import { refusalBody } from '../../src/respond.ts'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'

const ADMIN_TOKEN = 'malformed-input-admin-token'
const PATH = '/accounts/1'
const B64URL = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_']
// Header values and request targets are kept to what undici will send and Node's parser will
// read at all (visible ASCII and space; raw UTF-8 bytes as obs-text): anything else never
// reaches the gateway's handler, undici refuses it before sending.
const VISIBLE = Array.from({ length: 0x7e - 0x20 + 1 }, (_, i) => String.fromCharCode(0x20 + i))
const PATH_CHARS = VISIBLE.filter((c) => c !== ' ' && c !== '?' && c !== '#')
const QUERY_CHARS = VISIBLE.filter((c) => c !== ' ' && c !== '#')
// Well under listener.limits.maxHeaderBytes (16 KiB by default), so no answer is a 431.
const HEADER_BUDGET = 14_000
const BODY_KEYS = ['code', 'error', 'error_description', 'interaction_id']
const INTERACTION_ID = /^[\x21-\x7e]{1,128}$/
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

let gw: TestGateway
let client: PartnerClient
let key: DpopKey
/** A DPoP-bound token and a proof for it that are valid together but never sent together by the property. */
let validToken: string
let validProof: string

before(async () => {
  gw = await startTestGateway({ env: { FAPI_GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN } })
  client = gw.client()
  key = await generateDpopKey('ES256')
  validToken = await gw.issuer.mint({ jkt: key.jkt })
  validProof = await createProof(key, { htm: 'GET', htu: gw.url(PATH), accessToken: validToken })
})

after(async () => {
  await gw?.close()
})

const b64url = (text: string) => Buffer.from(text, 'utf8').toString('base64url')
/** Raw UTF-8 bytes as a latin1 string: what a client sending unicode puts on the wire. */
const utf8Bytes = (text: string) => Buffer.from(text, 'utf8').toString('latin1')

function mutate(original: string): fc.Arbitrary<string> {
  const position = fc.nat({ max: original.length - 1 })
  const char = fc.constantFrom(...B64URL, '.', '=', '+', '/', '~', '"', ',', ' ')
  return fc
    .oneof(
      fc.tuple(position, char).map(([at, c]) => original.slice(0, at) + c + original.slice(at + 1)),
      fc.tuple(position, char).map(([at, c]) => original.slice(0, at) + c + original.slice(at)),
      position.map((at) => original.slice(0, at) + original.slice(at + 1)),
      position.map((at) => original.slice(0, at)),
      fc.constant(original.split('.').reverse().join('.')),
      fc.constant(`${original}.${original.split('.')[2]}`),
    )
    .filter((mutated) => mutated.trim() !== original)
}

/** Values for either header: nothing in here is a valid credential. */
function malformedValues(issuer: string): fc.Arbitrary<string> {
  const segment = fc.string({ unit: fc.constantFrom(...B64URL), maxLength: 80 })
  const visible = (maxLength: number) => fc.string({ unit: fc.constantFrom(...VISIBLE), maxLength })
  const jsonSegment = fc.jsonValue({ maxDepth: 3 }).map((value) => b64url(JSON.stringify(value)))
  const header = fc.record(
    {
      alg: fc.constantFrom('ES256', 'PS256', 'EdDSA', 'none', 'HS256', 'RS256', 'ES256K', ''),
      typ: fc.constantFrom('at+jwt', 'dpop+jwt', 'JWT', 'application/at+jwt', 'x'),
      kid: fc.string({ maxLength: 20 }),
      jwk: fc.oneof(fc.object({ maxDepth: 1 }), fc.constant(key.publicJwk), fc.constant({ ...key.publicJwk, d: 'AAAA' })),
      crit: fc.array(fc.string({ maxLength: 8 }), { maxLength: 2 }),
      b64: fc.boolean(),
    },
    { requiredKeys: [] },
  )
  const payload = fc.record(
    {
      iss: fc.oneof(fc.constant(issuer), fc.string({ maxLength: 20 })),
      aud: fc.oneof(fc.constant('https://api.bank.example'), fc.string({ maxLength: 20 })),
      exp: fc.oneof(fc.integer(), fc.constant(Math.floor(Date.now() / 1000) + 300), fc.string({ maxLength: 5 })),
      iat: fc.oneof(fc.integer(), fc.constant(Math.floor(Date.now() / 1000))),
      cnf: fc.oneof(fc.constant({ jkt: key.jkt }), fc.object({ maxDepth: 1 })),
      htm: fc.constantFrom('GET', 'get', 'POST'),
      htu: fc.constantFrom(gw.url(PATH), gw.url('/')),
      jti: fc.string({ maxLength: 300 }),
      ath: segment,
      scope: fc.string({ maxLength: 20 }),
    },
    { requiredKeys: [] },
  )
  const jwt = fc.tuple(
    fc.oneof(
      header.map((h) => b64url(JSON.stringify(h))),
      jsonSegment,
      segment,
    ),
    fc.oneof(
      payload.map((p) => b64url(JSON.stringify(p))),
      jsonSegment,
      segment,
    ),
    segment,
  )
  return fc.oneof(
    visible(200),
    segment,
    fc.tuple(segment, segment).map((parts) => parts.join('.')),
    fc.tuple(segment, segment, segment).map((parts) => parts.join('.')),
    fc.tuple(segment, segment, segment, segment).map((parts) => parts.join('.')),
    jwt.map((parts) => parts.join('.')),
    jwt.map(([h, p, s]) => `${h}.${p}.${s}.${s}`),
    jwt.map(([h, p]) => `${h}.${p}`),
    fc.string({ unit: 'grapheme', maxLength: 40 }).map(utf8Bytes),
    fc
      .tuple(fc.integer({ min: 1000, max: HEADER_BUDGET }), fc.constantFrom('A', 'eyJ', 'a.', '=', ' '))
      .map(([length, unit]) => unit.repeat(Math.ceil(length / unit.length)).slice(0, length)),
    mutate(validToken),
    mutate(validProof),
  )
}

function authorizationValues(issuer: string): fc.Arbitrary<string> {
  const scheme = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('DPoP', 'Bearer') },
    { weight: 2, arbitrary: fc.constantFrom('dpop', 'BEARER', 'Basic', 'Negotiate', 'MAC', 'DPoP,', 'Bearer=', '') },
    { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(...VISIBLE), maxLength: 12 }) },
  )
  const separator = fc.oneof({ weight: 6, arbitrary: fc.constant(' ') }, { weight: 1, arbitrary: fc.constantFrom('  ', '', '\t', ' , ') })
  return fc.oneof(
    { weight: 6, arbitrary: fc.tuple(scheme, separator, malformedValues(issuer)).map(([s, sep, value]) => `${s}${sep}${value}`) },
    { weight: 1, arbitrary: malformedValues(issuer) },
    // The valid token with the wrong scheme or spacing, or with the right one and a proof that is not valid.
    { weight: 2, arbitrary: fc.tuple(scheme, separator).map(([s, sep]) => `${s}${sep}${validToken}`) },
    { weight: 3, arbitrary: fc.constant(`DPoP ${validToken}`) },
  )
}

interface BadRequest {
  readonly path: string
  readonly randomPath: boolean
  readonly authorization: readonly string[]
  readonly dpop: readonly string[]
  readonly interactionId: string | undefined
}

function badRequests(issuer: string): fc.Arbitrary<BadRequest> {
  const pathSegment = fc.string({ unit: fc.constantFrom(...PATH_CHARS), maxLength: 30 })
  const query = fc.oneof(
    fc.constant(''),
    fc.string({ unit: fc.constantFrom(...QUERY_CHARS), maxLength: 60 }).map((q) => `?${q}`),
    fc.constantFrom('?access_token=abc', `?access_token=${validToken}`, '?a=1&access_token=', '?%00', '?a=%ZZ'),
  )
  const path = fc.oneof(
    { weight: 4, arbitrary: fc.constant({ path: PATH, randomPath: false }) },
    { weight: 1, arbitrary: query.map((q) => ({ path: PATH + q, randomPath: false })) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom('/', '/accounts/', '/payments', '//', '/accounts/../', '/%2e%2e/', '/accounts%2f'), pathSegment, query)
        .map(([prefix, segment, q]) => ({ path: prefix + segment + q, randomPath: true })),
    },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }).map((s) => ({ path: `/accounts/${utf8Bytes(s)}`, randomPath: true })) },
  )
  const malformed = malformedValues(issuer)
  const dpop = fc.oneof(
    { weight: 2, arbitrary: fc.constant([]) },
    { weight: 6, arbitrary: malformed.map((value) => [value]) },
    { weight: 1, arbitrary: fc.array(malformed, { minLength: 2, maxLength: 3 }) },
    // Repeated DPoP headers, one of them the valid proof.
    { weight: 1, arbitrary: fc.array(fc.oneof(malformed, fc.constant(validProof)), { minLength: 1, maxLength: 2 }).map((others) => [validProof, ...others]) },
  )
  return fc
    .record({
      path,
      authorization: fc.oneof(
        { weight: 1, arbitrary: fc.constant([]) },
        { weight: 8, arbitrary: authorizationValues(issuer).map((value) => [value]) },
        { weight: 1, arbitrary: fc.array(authorizationValues(issuer), { minLength: 2, maxLength: 3 }) },
      ),
      dpop,
      interactionId: fc.option(fc.oneof(fc.uuid(), fc.string({ unit: fc.constantFrom(...VISIBLE), maxLength: 140 })), { nil: undefined }),
    })
    .map(({ path, authorization, dpop, interactionId }) => fitToBudget({ ...path, authorization, dpop, interactionId }))
}

/** Truncates header values so the whole head stays under the listener's header limit. */
function fitToBudget(request: BadRequest): BadRequest {
  let left = HEADER_BUDGET - request.path.length - (request.interactionId?.length ?? 0)
  const fit = (value: string) => {
    const kept = value.slice(0, Math.max(0, left))
    left -= kept.length + 20
    return kept
  }
  return { ...request, authorization: request.authorization.map(fit), dpop: request.dpop.map(fit) }
}

function headersOf(request: BadRequest): [string, string][] {
  return [
    ...request.authorization.map((value): [string, string] => ['authorization', value]),
    ...request.dpop.map((value): [string, string] => ['dpop', value]),
    ...(request.interactionId === undefined ? [] : [['x-fapi-interaction-id', request.interactionId] as [string, string]]),
  ]
}

function assertCataloguedRefusal(response: PartnerResponse, request: BadRequest): void {
  const allowed = request.randomPath ? [400, 401, 404, 405] : [400, 401]
  assert.ok(allowed.includes(response.status), `status ${response.status} for ${JSON.stringify(request).slice(0, 300)}: ${response.body}`)
  assert.equal(response.headers['content-type'], 'application/json')
  assert.equal(response.headers['cache-control'], 'no-store')
  const body = response.json
  assert.ok(body !== undefined, `a JSON body: ${response.body}`)
  assert.deepEqual(Object.keys(body).sort(), BODY_KEYS)
  const code = body.code as ErrorCode
  assert.ok(Object.hasOwn(catalogue, code), `code ${String(code)} is in the catalogue`)
  assert.equal(catalogue[code].status, response.status)
  // Exactly the catalogued words: no detail, cause or stack can have slipped in.
  const expected = refusalBody(code, String(body.interaction_id))
  assert.equal(body.error, expected.error)
  assert.equal(body.error_description, expected.error_description)
  assert.doesNotMatch(response.body, /\bat .+:\d+:\d+|node:internal|Error:|\/work\/|\.ts\b/)
  assert.equal(response.headers['x-fapi-interaction-id'], body.interaction_id)
  // A well-formed interaction id is echoed (except by the parser-level 400); anything else is replaced.
  const sentId = request.interactionId?.trim()
  const wellFormed = sentId !== undefined && INTERACTION_ID.test(sentId)
  if (wellFormed && code !== 'GW_REQUEST_MALFORMED') assert.equal(body.interaction_id, sentId)
  else if (!wellFormed) assert.match(String(body.interaction_id), UUID)
  if (response.status === 401) assert.ok(response.headers['www-authenticate'], 'a 401 carries WWW-Authenticate')
}

test('malformed credentials, paths and queries are refused with a catalogued answer and never forwarded', async () => {
  await fc.assert(
    fc.asyncProperty(badRequests(gw.issuer.issuer), async (request) => {
      const response = await client.send('GET', request.path, headersOf(request))
      assertCataloguedRefusal(response, request)
      assert.equal(gw.upstream.received.length, 0, 'the upstream was never reached')
    }),
    { numRuns: 300 },
  )
  const events = gw.log.events().filter((event) => event.event.type.includes('denied'))
  assert.ok(events.length >= 300)
  assert.equal(events.filter((event) => event.event.reason === 'GW_INTERNAL').length, 0, 'no input made the pipeline fail unexpectedly')
  const errors = gw.log.lines.map((line) => JSON.parse(line) as { level: number; msg: string }).filter((entry) => entry.level >= 50)
  assert.deepEqual(
    errors.map((entry) => entry.msg),
    [],
    'nothing was logged as an error',
  )
})

test('afterwards the gateway is healthy: the valid pair passes, /healthz and /readyz answer', async () => {
  const legitimate = await client.send('GET', PATH, [
    ['authorization', `DPoP ${validToken}`],
    ['dpop', validProof],
  ])
  assert.equal(legitimate.status, 200, legitimate.body)
  assert.equal(gw.upstream.received.length, 1)
  for (const probe of ['/healthz', '/readyz']) {
    const response = await fetch(`http://127.0.0.1:${gw.gateway.adminPort}${probe}`)
    assert.equal(response.status, 200, probe)
    await response.body?.cancel()
  }
})

/** The same signature bytes spelled differently: the last base64url character of an ES256 signature carries 4 unused bits. */
function respellSignature(token: string): string {
  const last = B64URL.indexOf(token.at(-1)!)
  return token.slice(0, -1) + B64URL[(last & ~0xf) | ((last + 1) & 0xf)]
}

test('a revoked token is refused', async () => {
  const token = await gw.issuer.mint({ jkt: key.jkt })
  await revoke(token)
  const proof = await createProof(key, { htm: 'GET', htu: gw.url(PATH), accessToken: token })
  const response = await client.send('GET', PATH, [
    ['authorization', `DPoP ${token}`],
    ['dpop', proof],
  ])
  assert.equal(response.status, 401)
  assert.equal(response.json?.code, 'GW_TOKEN_REVOKED')
})

test('a revoked token re-spelled in non-canonical base64url is refused', async () => {
  const token = await gw.issuer.mint({ jkt: key.jkt })
  await revoke(token)
  const respelled = respellSignature(token)
  assert.notEqual(respelled, token)
  const proof = await createProof(key, { htm: 'GET', htu: gw.url(PATH), accessToken: respelled })
  const received = gw.upstream.received.length
  const response = await client.send('GET', PATH, [
    ['authorization', `DPoP ${respelled}`],
    ['dpop', proof],
  ])
  assert.equal(response.status, 401, `status ${response.status}`)
  assert.equal(gw.upstream.received.length, received)
})

async function revoke(token: string): Promise<void> {
  const response = await fetch(`http://127.0.0.1:${gw.gateway.adminPort}/revoked-tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  })
  assert.equal(response.status, 201)
  await response.body?.cancel()
}
