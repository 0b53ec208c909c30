import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRouteTable, type RouteTable } from '../../../src/routes/route-table.ts'
import { routePolicySchema, type RoutePolicy } from '../../../src/config/schema.ts'
import type { ErrorCode } from '../../../src/errors.ts'

/** A policy as the loader would hand it over: parsed by the real schema, defaults applied. */
function policy(fields: Record<string, unknown>): RoutePolicy {
  return routePolicySchema.parse({ methods: ['GET'], upstream: 'api', ...fields })
}

function table(...policies: Record<string, unknown>[]): RouteTable {
  return createRouteTable(policies.map(policy), ['bank', 'fintech'])
}

function refusedWith(code: ErrorCode) {
  return (error: unknown) => {
    assert.equal((error as { code?: unknown }).code, code, String(error))
    return true
  }
}

function routeName(routes: RouteTable, target: string, method = 'GET'): string {
  return routes.match(method, target).route.name
}

test('an exact path matches only itself', () => {
  const routes = table({ name: 'payments', path: '/payments', methods: ['POST'] })
  assert.equal(routeName(routes, '/payments', 'POST'), 'payments')
  for (const target of ['/payments/1', '/paymentsX', '/payment', '/Payments', '/payments/']) {
    assert.throws(() => routes.match('POST', target), refusedWith('GW_ROUTE_UNKNOWN'), target)
  }
})

test('the root path matches only /', () => {
  const routes = table({ name: 'root', path: '/' })
  assert.equal(routeName(routes, '/'), 'root')
  assert.throws(() => routes.match('GET', '/a'), refusedWith('GW_ROUTE_UNKNOWN'))
})

test('* and {id} match exactly one non-empty segment', () => {
  for (const path of ['/accounts/*/balances', '/accounts/{accountId}/balances']) {
    const routes = table({ name: 'balances', path })
    assert.equal(routeName(routes, '/accounts/123/balances'), 'balances', path)
    assert.equal(routeName(routes, '/accounts/a-b_c~d/balances'), 'balances', path)
    for (const target of ['/accounts/balances', '/accounts/1/2/balances', '/accounts/1/balances/x', '/accounts/1/balance']) {
      assert.throws(() => routes.match('GET', target), refusedWith('GW_ROUTE_UNKNOWN'), `${path} ${target}`)
    }
  }
})

test('a trailing ** matches the prefix itself and anything below it, not a longer name', () => {
  const routes = table({ name: 'accounts', path: '/accounts/**' })
  for (const target of ['/accounts', '/accounts/', '/accounts/1', '/accounts/1/transactions/2']) {
    assert.equal(routeName(routes, target), 'accounts', target)
  }
  for (const target of ['/accountsX', '/accounts-old/1', '/other/accounts/1', '/']) {
    assert.throws(() => routes.match('GET', target), refusedWith('GW_ROUTE_UNKNOWN'), target)
  }
})

test('regex characters in a literal segment are matched literally', () => {
  const routes = table({ name: 'dotted', path: '/v1.0/items+list' })
  assert.equal(routeName(routes, '/v1.0/items+list'), 'dotted')
  assert.throws(() => routes.match('GET', '/v1x0/items+list'), refusedWith('GW_ROUTE_UNKNOWN'))
  assert.throws(() => routes.match('GET', '/v1.0/itemsslist'), refusedWith('GW_ROUTE_UNKNOWN'))
})

test('the first route whose path and method match wins', () => {
  const routes = table(
    { name: 'one-account', path: '/accounts/{id}' },
    { name: 'all-accounts', path: '/accounts/**' },
    { name: 'write-accounts', path: '/accounts/**', methods: ['POST'] },
  )
  assert.equal(routeName(routes, '/accounts/1'), 'one-account')
  assert.equal(routeName(routes, '/accounts/1/transactions'), 'all-accounts')
  assert.equal(routeName(routes, '/accounts'), 'all-accounts')
  // The first path match does not allow POST; a later route does.
  assert.equal(routeName(routes, '/accounts/1', 'POST'), 'write-accounts')
})

test('a path that matches with a method no matching route allows is GW_METHOD_NOT_ALLOWED', () => {
  const routes = table({ name: 'accounts', path: '/accounts/**', methods: ['GET', 'HEAD'] })
  assert.equal(routeName(routes, '/accounts/1', 'HEAD'), 'accounts')
  for (const method of ['POST', 'DELETE', 'PUT', 'get', 'OPTIONS']) {
    assert.throws(() => routes.match(method, '/accounts/1'), refusedWith('GW_METHOD_NOT_ALLOWED'), method)
  }
})

test('deny by default: a path no route matches is GW_ROUTE_UNKNOWN, and an empty table refuses everything', () => {
  const routes = table({ name: 'accounts', path: '/accounts/**' })
  assert.throws(() => routes.match('GET', '/admin'), refusedWith('GW_ROUTE_UNKNOWN'))
  const empty = createRouteTable([], ['bank'])
  assert.deepEqual(empty.routes, [])
  assert.throws(() => empty.match('GET', '/'), refusedWith('GW_ROUTE_UNKNOWN'))
  assert.throws(() => empty.match('GET', '/accounts'), refusedWith('GW_ROUTE_UNKNOWN'))
})

test('ambiguous paths an upstream could read differently are refused with GW_REQUEST_MALFORMED', () => {
  const routes = table({ name: 'everything', path: '/**', methods: ['GET'] })
  const ambiguous = [
    '/a/../b',
    '/a/..;/b',
    '/a/..;jsessionid=1/b',
    '/a/.;x/b',
    '/a/..',
    '/../a',
    '/a/./b',
    '/./a',
    '/a/.',
    '/a/%2e%2e/b',
    '/a/%2E%2E/b',
    '/a/.%2e/b',
    '/a/%2e/b',
    '/a%2Fb',
    '/a%2fb',
    '/a%5cb',
    '/a%5Cb',
    '/a//b',
    '//a',
    '/a/b//',
    '/a\\b',
    '/a/..\\b',
    '/a\u0000b',
    '/a%00b',
    '/a b',
    '/a\tb',
    '/a\x7fb',
    'https://x/a',
    'http://127.0.0.1/a',
    '*',
    'a/b',
    '',
  ]
  for (const target of ambiguous) {
    assert.throws(() => routes.match('GET', target), refusedWith('GW_REQUEST_MALFORMED'), JSON.stringify(target))
  }
  // The legitimate neighbours pass.
  for (const target of ['/a/b', '/a/..b', '/a/b..', '/a/.well-known', '/a/%41', '/a/b%20c', '/a/b?x=../y', '/a/']) {
    assert.equal(routeName(routes, target), 'everything', target)
  }
})

test('the query string is not part of the match and is not returned in the path', () => {
  const routes = table({ name: 'payments', path: '/payments', methods: ['POST'] })
  assert.deepEqual(routes.match('POST', '/payments?x=1&y=/a/../b').path, '/payments')
  assert.equal(routes.match('POST', '/payments?').path, '/payments')
  assert.throws(() => routes.match('POST', '/other?/payments'), refusedWith('GW_ROUTE_UNKNOWN'))
  // Ambiguity is judged on the path only, and the path is still judged when a query follows.
  assert.throws(() => routes.match('POST', '/a/../payments?x=1'), refusedWith('GW_REQUEST_MALFORMED'))
})

test('upstreamPath replaces the matched prefix; no upstreamPath forwards the path unchanged', () => {
  const routes = table(
    { name: 'accounts', path: '/accounts/**', upstreamPath: '/v2/accounts' },
    { name: 'root-rewrite', path: '/legacy/**', upstreamPath: '/' },
    { name: 'trailing-slash', path: '/t/**', upstreamPath: '/api/' },
    { name: 'exact', path: '/payments', methods: ['POST'], upstreamPath: '/internal/pay' },
    { name: 'unchanged', path: '/plain/**' },
  )
  const rewrite = (target: string, method = 'GET') => {
    const { route, path } = routes.match(method, target)
    return route.rewrite ? route.rewrite(path) : path
  }
  assert.equal(rewrite('/accounts'), '/v2/accounts')
  assert.equal(rewrite('/accounts/1'), '/v2/accounts/1')
  assert.equal(rewrite('/accounts/1/transactions?from=2024'), '/v2/accounts/1/transactions')
  assert.equal(rewrite('/legacy'), '/')
  assert.equal(rewrite('/legacy/x/y'), '/x/y')
  assert.equal(rewrite('/t/x'), '/api/x')
  assert.equal(rewrite('/payments', 'POST'), '/internal/pay')
  assert.equal(rewrite('/plain/x'), '/plain/x')
  assert.equal(routes.match('GET', '/plain/x').route.rewrite, undefined)
})

test("pathMapping names the prefixes the rewrite swapped, so the upstream's URLs can be mapped back", () => {
  const routes = table(
    { name: 'accounts', path: '/accounts/**', upstreamPath: '/v2/accounts' },
    { name: 'balances', path: '/tenants/{id}/balances/**', upstreamPath: '/b/' },
    { name: 'root-rewrite', path: '/legacy/**', upstreamPath: '/' },
    { name: 'exact', path: '/payments', methods: ['POST'], upstreamPath: '/internal/pay' },
    { name: 'unchanged', path: '/plain/**' },
  )
  const mapping = (target: string, method = 'GET') => {
    const { route, path } = routes.match(method, target)
    return route.pathMapping?.(path)
  }
  assert.deepEqual(mapping('/accounts/1?x=2'), { public: '/accounts', upstream: '/v2/accounts' })
  assert.deepEqual(mapping('/tenants/t-9/balances/current'), { public: '/tenants/t-9/balances', upstream: '/b' })
  assert.deepEqual(mapping('/legacy/x'), { public: '/legacy', upstream: '' })
  assert.deepEqual(mapping('/payments', 'POST'), { public: '/payments', upstream: '/internal/pay' })
  assert.equal(mapping('/plain/x'), undefined)
})

test('upstreamPath replaces a prefix that contains wildcards by what the request matched', () => {
  const routes = table({ name: 'balances', path: '/accounts/{id}/balances/**', upstreamPath: '/b' }, { name: 'one', path: '/things/*', upstreamPath: '/thing' })
  const rewrite = (target: string) => {
    const { route, path } = routes.match('GET', target)
    return route.rewrite!(path)
  }
  assert.equal(rewrite('/accounts/1234567890/balances/current'), '/b/current')
  assert.equal(rewrite('/accounts/1/balances'), '/b')
  assert.equal(rewrite('/things/1234567890'), '/thing')
  assert.equal(rewrite('/things/1'), '/thing')
})

test('clientCertificate: mtls routes require one; others default to optional; an explicit value is kept', () => {
  const routes = table(
    { name: 'mtls', path: '/m', binding: 'mtls' },
    { name: 'dpop', path: '/d', binding: 'dpop' },
    { name: 'either', path: '/e' },
    { name: 'none', path: '/n', binding: 'none' },
    { name: 'dpop-with-cert', path: '/dc', binding: 'dpop', clientCertificate: 'required' },
    { name: 'mtls-explicit', path: '/me', binding: 'mtls', clientCertificate: 'required' },
  )
  const byName = new Map(routes.routes.map((r) => [r.name, r]))
  assert.equal(byName.get('mtls')!.clientCertificate, 'required')
  assert.equal(byName.get('dpop')!.clientCertificate, 'optional')
  assert.equal(byName.get('either')!.clientCertificate, 'optional')
  assert.equal(byName.get('none')!.clientCertificate, 'optional')
  assert.equal(byName.get('dpop-with-cert')!.clientCertificate, 'required')
  assert.equal(byName.get('mtls-explicit')!.clientCertificate, 'required')
})

test('acceptsDpop and acceptsBearer follow the binding', () => {
  const routes = table(
    { name: 'mtls', path: '/m', binding: 'mtls' },
    { name: 'dpop', path: '/d', binding: 'dpop' },
    { name: 'either', path: '/e', binding: 'dpop-or-mtls' },
    { name: 'none', path: '/n', binding: 'none' },
  )
  const accepts = Object.fromEntries(routes.routes.map((r) => [r.name, [r.acceptsDpop, r.acceptsBearer]]))
  assert.deepEqual(accepts, {
    mtls: [false, true],
    dpop: [true, false],
    either: [true, true],
    none: [true, true],
  })
  assert.equal(routes.match('GET', '/e').route.binding, 'dpop-or-mtls')
})

test('issuerNames default to every configured issuer; a policy list narrows them', () => {
  const routes = table({ name: 'all', path: '/all' }, { name: 'one', path: '/one', issuers: ['fintech'] })
  assert.deepEqual(routes.match('GET', '/all').route.issuerNames, ['bank', 'fintech'])
  assert.deepEqual(routes.match('GET', '/one').route.issuerNames, ['fintech'])
})

test('a route carries the policy fields it enforces and cannot be changed', () => {
  const routes = table({
    name: 'pay',
    path: '/pay',
    methods: ['POST', 'PUT'],
    scopes: ['payments:write'],
    audience: 'https://api.example',
    upstream: 'payments',
  })
  const { route } = routes.match('PUT', '/pay')
  assert.equal(route.name, 'pay')
  assert.equal(route.upstream, 'payments')
  assert.equal(route.audience, 'https://api.example')
  assert.deepEqual(route.scopes, ['payments:write'])
  assert.deepEqual([...route.methods], ['POST', 'PUT'])
  assert.ok(Object.isFrozen(route))
  assert.throws(() => {
    ;(route as { binding: string }).binding = 'none'
  }, TypeError)
})
