import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHeaderPolicy, buildResponseHeaders, type Identity, type RequestContext } from '../../../src/forward/headers.ts'
import { GatewayError } from '../../../src/errors.ts'

const identity: Identity = {
  clientId: 'client-1',
  subject: 'alice',
  scopes: ['accounts', 'payments'],
  certThumbprint: 'x5t-thumb',
  keyThumbprint: 'jkt-thumb',
  issuer: 'https://as.example',
  route: 'accounts',
}

const context: RequestContext = { identity, clientIp: '203.0.113.7', target: '/accounts/1?page=2', interactionId: 'c770aef3-6784-41f7-8e0e-ff5f97bddb3a' }

function pairs(headers: readonly string[]): [string, string][] {
  const list: [string, string][] = []
  for (let i = 0; i < headers.length; i += 2) list.push([headers[i]!.toLowerCase(), headers[i + 1]!])
  return list
}

function values(headers: readonly string[], name: string): string[] {
  return pairs(headers)
    .filter(([n]) => n === name)
    .map(([, v]) => v)
}

function assertRefused(fn: () => unknown, code: string) {
  assert.throws(fn, (err: unknown) => err instanceof GatewayError && err.code === code)
}

test('ordinary headers pass through in order with duplicates; identity and forwarding headers are added', () => {
  const policy = createHeaderPolicy({ publicHost: 'api.example.com' })
  const { request, interactionId } = policy.buildRequestHeaders(
    ['Accept', 'application/json', 'X-Dup', 'a', 'Content-Type', 'text/plain', 'X-Dup', 'b', 'x-fapi-auth-date', 'Tue, 11 Sep 2012 19:43:31 GMT'],
    context,
  )
  assert.equal(interactionId, context.interactionId)
  assert.deepEqual(pairs(request).slice(0, 5), [
    ['accept', 'application/json'],
    ['x-dup', 'a'],
    ['content-type', 'text/plain'],
    ['x-dup', 'b'],
    ['x-fapi-auth-date', 'Tue, 11 Sep 2012 19:43:31 GMT'],
  ])
  assert.deepEqual(pairs(request).slice(5), [
    ['x-fapi-gateway-client-id', 'client-1'],
    ['x-fapi-gateway-subject', 'alice'],
    ['x-fapi-gateway-scopes', 'accounts payments'],
    ['x-fapi-gateway-cert-thumbprint', 'x5t-thumb'],
    ['x-fapi-gateway-key-thumbprint', 'jkt-thumb'],
    ['x-fapi-gateway-issuer', 'https://as.example'],
    ['x-fapi-gateway-route', 'accounts'],
    ['x-forwarded-for', '203.0.113.7'],
    ['x-forwarded-proto', 'https'],
    ['x-forwarded-host', 'api.example.com'],
    ['forwarded', 'for=203.0.113.7;proto=https;host=api.example.com'],
    ['x-fapi-interaction-id', context.interactionId],
  ])
})

test('hop-by-hop, Connection-nominated, credential, identity, forwarding and client-cert headers from the client are removed', () => {
  const policy = createHeaderPolicy({ publicHost: 'api.example.com', stripHeaders: ['x-internal-*', 'X-Debug'] })
  const spoofed = [
    'Host',
    'evil.example',
    'Connection',
    'keep-alive, X-Hop-Custom',
    'Connection',
    'x-second-hop',
    'X-Hop-Custom',
    'evil',
    'X-Second-Hop',
    'evil',
    'Keep-Alive',
    'timeout=5',
    'Proxy-Authorization',
    'Basic evil',
    'Proxy-Connection',
    'keep-alive',
    'TE',
    'trailers',
    'Trailer',
    'x-evil',
    'Transfer-Encoding',
    'chunked',
    'Upgrade',
    'h2c',
    'Expect',
    '100-continue',
    'Authorization',
    'DPoP evil',
    'DPoP',
    'evil',
    'X-FAPI-Gateway-Subject',
    'evil',
    'x-fapi-gateway-client-id',
    'evil',
    'X-Fapi-Gateway-Anything-Else',
    'evil',
    'X-Fapi-Interaction-Id',
    'evil',
    'Forwarded',
    'for=evil',
    'X-Forwarded-For',
    'evil',
    'X-Forwarded-Host',
    'evil',
    'X-Forwarded-Proto',
    'evil',
    'X-Forwarded-Client-Cert',
    'evil',
    'X-Real-IP',
    'evil',
    'X-Client-Cert',
    'evil',
    'X-Client-Cert-Chain',
    'evil',
    'SSL-Client-Cert',
    'evil',
    'Client-Cert',
    'evil',
    'Client-Cert-Chain',
    'evil',
    'X-SSL-Client-Verify',
    'evil',
    'X-Internal-Token',
    'evil',
    'x-debug',
    'evil',
    'X-Kept',
    'fine',
  ]
  const { request } = policy.buildRequestHeaders(spoofed, context)
  assert.ok(!request.includes('evil'), `a client value leaked: ${JSON.stringify(request)}`)
  assert.deepEqual(values(request, 'x-kept'), ['fine'])
  for (const name of [
    'host',
    'connection',
    'keep-alive',
    'te',
    'trailer',
    'transfer-encoding',
    'upgrade',
    'expect',
    'authorization',
    'dpop',
    'proxy-authorization',
    'proxy-connection',
  ]) {
    assert.deepEqual(values(request, name), [], name)
  }
  assert.deepEqual(values(request, 'x-fapi-gateway-subject'), ['alice'])
  assert.deepEqual(values(request, 'x-forwarded-for'), ['203.0.113.7'])
  assert.deepEqual(values(request, 'x-fapi-interaction-id'), [context.interactionId])
})

test('Authorization and DPoP are kept when configured, and DPoP can be rewritten to Bearer', () => {
  const raw = ['Authorization', 'DPoP tok.en', 'DPoP', 'proof']
  const keep = createHeaderPolicy({ publicHost: 'h', stripAuthorization: false, stripDpop: false }).buildRequestHeaders(raw, context)
  assert.deepEqual(values(keep.request, 'authorization'), ['DPoP tok.en'])
  assert.deepEqual(values(keep.request, 'dpop'), ['proof'])

  const rewrite = createHeaderPolicy({ publicHost: 'h', stripAuthorization: false, rewriteDpopToBearer: true })
  assert.deepEqual(values(rewrite.buildRequestHeaders(raw, context).request, 'authorization'), ['Bearer tok.en'])
  assert.deepEqual(values(rewrite.buildRequestHeaders(['authorization', 'dPoP abc'], context).request, 'authorization'), ['Bearer abc'])
  assert.deepEqual(values(rewrite.buildRequestHeaders(['authorization', 'Bearer abc'], context).request, 'authorization'), ['Bearer abc'])
  assert.deepEqual(values(rewrite.buildRequestHeaders(raw, context).request, 'dpop'), [])

  assert.throws(() => createHeaderPolicy({ publicHost: 'h', rewriteDpopToBearer: true }), TypeError)
})

test('a custom identity prefix is stripped and used', () => {
  const policy = createHeaderPolicy({ publicHost: 'h', identityPrefix: 'X-Gw-' })
  const { request } = policy.buildRequestHeaders(['x-gw-subject', 'evil', 'X-GW-other', 'evil', 'x-fapi-gateway-subject', 'other'], context)
  assert.ok(!request.includes('evil'))
  assert.deepEqual(values(request, 'x-gw-subject'), ['alice'])
  assert.deepEqual(values(request, 'x-fapi-gateway-subject'), ['other'])
  assert.throws(() => createHeaderPolicy({ publicHost: 'h', identityPrefix: 'bad prefix' }), TypeError)
  assert.throws(() => createHeaderPolicy({ publicHost: 'h', stripHeaders: ['bad name'] }), TypeError)
})

test('undefined identity values are omitted; empty scopes are sent empty', () => {
  const policy = createHeaderPolicy({ publicHost: 'h' })
  const { request } = policy.buildRequestHeaders([], { ...context, identity: { scopes: [], route: 'r' } })
  const names = pairs(request)
    .map(([name]) => name)
    .filter((name) => name.startsWith('x-fapi-gateway-'))
  assert.deepEqual(names, ['x-fapi-gateway-scopes', 'x-fapi-gateway-route'])
  assert.deepEqual(values(request, 'x-fapi-gateway-scopes'), [''])
})

test('identity values with control characters are refused; non-ASCII travels as UTF-8 octets', () => {
  const policy = createHeaderPolicy({ publicHost: 'h' })
  for (const subject of ['a\r\nx-evil: 1', 'a\nb', 'a\u0000b', 'a\u007fb', ' padded', 'tab\t']) {
    assertRefused(() => policy.buildRequestHeaders([], { ...context, identity: { ...identity, subject } }), 'GW_TOKEN_INVALID')
  }
  assertRefused(() => policy.buildRequestHeaders([], { ...context, identity: { ...identity, clientId: 'x\ry' } }), 'GW_TOKEN_INVALID')
  assertRefused(() => policy.buildRequestHeaders([], { ...context, identity: { ...identity, issuer: 'x\u0085' } }), 'GW_TOKEN_INVALID')
  assertRefused(() => policy.buildRequestHeaders([], { ...context, identity: { ...identity, scopes: ['a b'] } }), 'GW_TOKEN_INVALID')
  assertRefused(() => policy.buildRequestHeaders([], { ...context, identity: { ...identity, scopes: ['a\r\nb'] } }), 'GW_TOKEN_INVALID')
  assertRefused(() => policy.buildRequestHeaders([], { ...context, interactionId: 'x\r\ny' }), 'GW_REQUEST_MALFORMED')
  assertRefused(() => policy.buildRequestHeaders([], { ...context, interactionId: '' }), 'GW_REQUEST_MALFORMED')

  const { request } = policy.buildRequestHeaders([], { ...context, identity: { ...identity, subject: 'Müller' } })
  const [subject] = values(request, 'x-fapi-gateway-subject')
  assert.equal(Buffer.from(subject!, 'latin1').toString('utf8'), 'Müller')
})

test('RFC 7239 Forwarded quotes IPv6 and a host with a port; IPv4-mapped addresses are unwrapped', () => {
  const policy = createHeaderPolicy({ publicHost: 'api.example.com:8443' })
  const v6 = policy.buildRequestHeaders([], { ...context, clientIp: '2001:db8::1' }).request
  assert.deepEqual(values(v6, 'forwarded'), ['for="[2001:db8::1]";proto=https;host="api.example.com:8443"'])
  assert.deepEqual(values(v6, 'x-forwarded-for'), ['2001:db8::1'])
  assert.deepEqual(values(v6, 'x-forwarded-host'), ['api.example.com:8443'])

  const loopback = policy.buildRequestHeaders([], { ...context, clientIp: '::1' }).request
  assert.deepEqual(values(loopback, 'forwarded'), ['for="[::1]";proto=https;host="api.example.com:8443"'])

  const mapped = policy.buildRequestHeaders([], { ...context, clientIp: '::ffff:198.51.100.9' }).request
  assert.deepEqual(values(mapped, 'x-forwarded-for'), ['198.51.100.9'])
  assert.deepEqual(values(mapped, 'forwarded'), ['for=198.51.100.9;proto=https;host="api.example.com:8443"'])

  const unknown = policy.buildRequestHeaders([], { ...context, clientIp: undefined }).request
  assert.deepEqual(values(unknown, 'x-forwarded-for'), [])
  assert.deepEqual(values(unknown, 'forwarded'), ['for=unknown;proto=https;host="api.example.com:8443"'])
})

test('response headers lose hop-by-hop fields, keep duplicates and the upstream Date, and carry the interaction id', () => {
  const upstream = [
    'Content-Type',
    'application/json',
    'Set-Cookie',
    'a=1',
    'Connection',
    'keep-alive, X-Up-Hop',
    'X-Up-Hop',
    'secret',
    'Keep-Alive',
    'timeout=99',
    'Transfer-Encoding',
    'chunked',
    'Trailer',
    'x-t',
    'Proxy-Authenticate',
    'Basic',
    'Upgrade',
    'h2c',
    'Set-Cookie',
    'b=2',
    'Date',
    'Wed, 21 Oct 2015 07:28:00 GMT',
    'X-Fapi-Interaction-Id',
    'from-upstream',
  ]
  assert.deepEqual(pairs(buildResponseHeaders(upstream, 'id-1', 0)), [
    ['content-type', 'application/json'],
    ['set-cookie', 'a=1'],
    ['set-cookie', 'b=2'],
    ['date', 'Wed, 21 Oct 2015 07:28:00 GMT'],
    ['x-fapi-interaction-id', 'id-1'],
  ])
  const now = Date.UTC(2030, 0, 2, 3, 4, 5)
  assert.deepEqual(values(buildResponseHeaders(['content-length', '0'], 'id-1', now), 'date'), ['Wed, 02 Jan 2030 03:04:05 GMT'])
})

// CGI, WSGI, Rack and several PHP set-ups read `X_Forwarded_For` as `X-Forwarded-For`.
const UNDERSCORE_SPOOFS = [
  'X_Fapi_Gateway_Subject',
  'x_fapi_gateway_client-id',
  'X_Forwarded_For',
  'x_client_cert',
  'X_HTTP_Method_Override',
  'x_fapi_interaction_id',
]

test('request header names with an underscore are refused by default; a header the gateway strips anyway is not', () => {
  const policy = createHeaderPolicy({ publicHost: 'h', stripHeaders: ['ssl_client_cert'] })
  for (const name of [...UNDERSCORE_SPOOFS, 'x_custom']) assertRefused(() => policy.buildRequestHeaders([name, 'evil'], context), 'GW_HEADER_UNDERSCORE')
  const { request } = policy.buildRequestHeaders(['ssl_client_cert', 'from-the-load-balancer', 'x-custom', 'fine'], context)
  assert.deepEqual(values(request, 'ssl_client_cert'), [])
  assert.deepEqual(values(request, 'x-custom'), ['fine'])
})

test('underscoreHeaders drop removes them; allow forwards them but strips every spelling of a stripped header', () => {
  const raw = [...UNDERSCORE_SPOOFS.flatMap((name) => [name, 'evil']), 'x_custom', 'kept', 'X_Internal', 'evil']
  const dropped = createHeaderPolicy({ publicHost: 'h', underscoreHeaders: 'drop' }).buildRequestHeaders(raw, context).request
  assert.ok(!dropped.includes('evil') && !dropped.includes('kept'), JSON.stringify(dropped))

  const allowed = createHeaderPolicy({ publicHost: 'h', underscoreHeaders: 'allow', stripHeaders: ['x-internal'] }).buildRequestHeaders(raw, context).request
  assert.ok(!allowed.includes('evil'), `a spoofed spelling leaked: ${JSON.stringify(allowed)}`)
  assert.deepEqual(values(allowed, 'x_custom'), ['kept'])
  for (const request of [dropped, allowed]) {
    assert.deepEqual(values(request, 'x-fapi-gateway-subject'), ['alice'])
    assert.deepEqual(values(request, 'x-forwarded-for'), ['203.0.113.7'])
  }
})

const OVERRIDES = ['X-HTTP-Method-Override', 'X-HTTP-Method', 'X-Method-Override', 'X-Original-Method', 'X-Original-URL', 'X-Original-URI', 'X-Rewrite-URL']

test('method and URL override headers are stripped unless blockOverrides is false', () => {
  const raw = [...OVERRIDES.flatMap((name) => [name, 'DELETE']), 'Accept', 'application/json']
  const { request } = createHeaderPolicy({ publicHost: 'h' }).buildRequestHeaders(raw, context)
  assert.ok(!request.includes('DELETE'), JSON.stringify(request))
  assert.deepEqual(values(request, 'accept'), ['application/json'])
  const passed = createHeaderPolicy({ publicHost: 'h', blockOverrides: false }).buildRequestHeaders(raw, context).request
  assert.equal(passed.filter((value) => value === 'DELETE').length, OVERRIDES.length)
})

test('a _method query or form parameter is refused, in every spelling a framework reads as _method', () => {
  const policy = createHeaderPolicy({ publicHost: 'h' })
  const refused = [
    '/accounts/1?_method=DELETE',
    '/a?x=1&%5Fmethod=PUT',
    '/a?_METHOD=DELETE',
    '/a?.method=DELETE',
    '/a?_method',
    '/a?[method=PATCH',
    '/a?_%6Dethod=DELETE',
  ]
  for (const target of refused) {
    assertRefused(() => policy.buildRequestHeaders([], { ...context, target }), 'GW_METHOD_OVERRIDE')
  }
  assertRefused(
    () => policy.buildRequestHeaders([], { ...context, target: '/payments', formBody: Buffer.from('amount=1&_method=DELETE') }),
    'GW_METHOD_OVERRIDE',
  )
  for (const target of ['/accounts/1', '/accounts/1?method=x&page=2', '/a?x=_method', '/a_method?b__method=1']) {
    assert.doesNotThrow(() => policy.buildRequestHeaders([], { ...context, target, formBody: Buffer.from('amount=1&method=card') }), target)
  }
  const open = createHeaderPolicy({ publicHost: 'h', blockOverrides: false })
  assert.doesNotThrow(() => open.buildRequestHeaders([], { ...context, target: '/a?_method=DELETE', formBody: Buffer.from('_method=PUT') }))
})

test('response headers that name or fingerprint internal servers are removed, with the configured extras', () => {
  const upstream = [
    'Server',
    'Apache/2.4.1 (internal-build-7)',
    'X-Powered-By',
    'PHP/8.1',
    'Via',
    '1.1 lb-3.internal',
    'X-AspNet-Version',
    '4.0.30319',
    'X-AspNetMvc-Version',
    '5.2',
    'X-Runtime',
    '0.0123',
    'X-Backend-Server',
    'app-17.internal',
    'X-Debug-Token-Link',
    'http://app-17.internal/_profiler/abc',
    'X-Internal-Trace',
    'secret',
    'Content-Type',
    'application/json',
    'ETag',
    '"v1"',
  ]
  const policy = createHeaderPolicy({ publicHost: 'h', stripResponseHeaders: ['X-Internal-*'] })
  const { response } = policy.buildRequestHeaders([], context)
  assert.deepEqual(pairs(buildResponseHeaders(upstream, 'id-1', 0, response, { origin: 'http://10.0.0.5:8080', basePath: '' })).slice(0, 2), [
    ['content-type', 'application/json'],
    ['etag', '"v1"'],
  ])
  // Without rules (a caller that built none) the defaults still apply.
  const defaults = pairs(buildResponseHeaders(upstream, 'id-1', 0)).map(([name]) => name)
  assert.deepEqual(defaults, ['x-internal-trace', 'content-type', 'etag', 'date', 'x-fapi-interaction-id'])
})

test('Location and Content-Location on the upstream origin and base path are rewritten to the public base URL', () => {
  const { response } = createHeaderPolicy({ publicHost: 'api.example.com' }).buildRequestHeaders([], context)
  const relay = (name: string, value: string, upstream = { origin: 'http://10.0.0.5:8080', basePath: '/v1' }, rules = response) =>
    values(buildResponseHeaders([name, value], 'id-1', 0, rules, upstream), name.toLowerCase())[0]
  assert.equal(relay('Location', 'http://10.0.0.5:8080/v1/accounts/2?x=1#f'), 'https://api.example.com/accounts/2?x=1#f')
  assert.equal(relay('Content-Location', 'http://10.0.0.5:8080/v1/accounts/2'), 'https://api.example.com/accounts/2')
  assert.equal(relay('location', 'HTTP://10.0.0.5:8080/v1'), 'https://api.example.com')
  assert.equal(relay('Location', '//10.0.0.5:8080/v1/a'), 'https://api.example.com/a')
  assert.equal(relay('Location', 'http://up.internal:80/a', { origin: 'http://up.internal', basePath: '' }), 'https://api.example.com/a')
  // Outside the base path, another origin, another scheme, relative references: as sent.
  const asSent = [
    'http://10.0.0.5:8080/v10/a',
    'http://10.0.0.5:8080/other',
    'https://10.0.0.5:8080/v1/a',
    'http://10.0.0.5:9090/v1/a',
    'https://other.example/v1/a',
    '/v1/accounts/2',
    'accounts/2',
    'http://[bad',
  ]
  for (const value of asSent) {
    assert.equal(relay('Location', value), value, value)
  }
  const withPath = createHeaderPolicy({ publicHost: 'api.example.com', publicBaseUrl: 'https://api.example.com/fapi/' }).buildRequestHeaders(
    [],
    context,
  ).response
  assert.equal(relay('Location', 'http://10.0.0.5:8080/v1/accounts/2', undefined, withPath), 'https://api.example.com/fapi/accounts/2')
  const off = createHeaderPolicy({ publicHost: 'api.example.com', rewriteLocation: false }).buildRequestHeaders([], context).response
  assert.equal(relay('Location', 'http://10.0.0.5:8080/v1/accounts/2', undefined, off), 'http://10.0.0.5:8080/v1/accounts/2')
})

test("Location under the route's rewritten prefix gets the request's prefix back; other paths keep theirs", () => {
  const policy = createHeaderPolicy({ publicHost: 'api.example.com' })
  const relay = (value: string, pathMapping?: { public: string; upstream: string }) => {
    const { response } = policy.buildRequestHeaders([], { ...context, pathMapping })
    return values(buildResponseHeaders(['Location', value], 'id-1', 0, response, { origin: 'http://10.0.0.5:8080', basePath: '/base' }), 'location')[0]
  }
  const accounts = { public: '/tenants/t-9/accounts', upstream: '/v2/accounts' }
  assert.equal(relay('http://10.0.0.5:8080/base/v2/accounts/456?x=1', accounts), 'https://api.example.com/tenants/t-9/accounts/456?x=1')
  assert.equal(relay('http://10.0.0.5:8080/base/v2/accounts', accounts), 'https://api.example.com/tenants/t-9/accounts')
  assert.equal(relay('http://10.0.0.5:8080/base/v2/accountsx/1', accounts), 'https://api.example.com/v2/accountsx/1')
  assert.equal(relay('http://10.0.0.5:8080/base/other/1', accounts), 'https://api.example.com/other/1')
  assert.equal(relay('http://10.0.0.5:8080/base/x/1', { public: '/legacy', upstream: '' }), 'https://api.example.com/legacy/x/1')
  assert.equal(relay('/v2/accounts/456', accounts), '/v2/accounts/456')
  assert.equal(relay('http://10.0.0.5:8080/base/v2/accounts/456'), 'https://api.example.com/v2/accounts/456')
})
