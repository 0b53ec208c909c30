import { test } from 'node:test'
import assert from 'node:assert/strict'
import { checkPolicy } from '../../../src/checks/policy.ts'
import { routePolicySchema } from '../../../src/config/schema.ts'
import { createRouteTable, type Route } from '../../../src/routes/route-table.ts'
import type { ErrorCode } from '../../../src/errors.ts'
import type { AccessToken } from '../../../src/types.ts'

function route(scopes: string[] | undefined): Route {
  const policy = routePolicySchema.parse({ name: 'r', path: '/r', methods: ['GET'], upstream: 'api', ...(scopes && { scopes }) })
  return createRouteTable([policy], ['bank']).match('GET', '/r').route
}

function token(scopes: string[]): AccessToken {
  return {
    format: 'jwt',
    issuerName: 'bank',
    iss: 'https://as.example',
    sub: 'user',
    clientId: 'partner-a',
    scopes: new Set(scopes),
    audiences: ['https://api.example'],
    exp: 2_000_000_000,
    jti: 'jti-1',
    binding: { jkt: 'k' },
    tokenType: undefined,
  }
}

function refusedWith(code: ErrorCode) {
  return (error: unknown) => {
    assert.equal((error as { code?: unknown }).code, code, String(error))
    return true
  }
}

test('a token with every required scope passes, also with more scopes than required', () => {
  assert.doesNotThrow(() => checkPolicy(route(['accounts:read']), token(['accounts:read'])))
  assert.doesNotThrow(() => checkPolicy(route(['accounts:read', 'payments:write']), token(['payments:write', 'openid', 'accounts:read'])))
})

test('a route that requires no scope accepts a token without scopes', () => {
  assert.doesNotThrow(() => checkPolicy(route(undefined), token([])))
  assert.doesNotThrow(() => checkPolicy(route([]), token(['x'])))
})

test('a token missing any required scope is GW_SCOPE_INSUFFICIENT', () => {
  const required = route(['accounts:read', 'payments:write'])
  assert.throws(() => checkPolicy(required, token(['accounts:read'])), refusedWith('GW_SCOPE_INSUFFICIENT'))
  assert.throws(() => checkPolicy(required, token(['payments:write'])), refusedWith('GW_SCOPE_INSUFFICIENT'))
  assert.throws(() => checkPolicy(required, token([])), refusedWith('GW_SCOPE_INSUFFICIENT'))
})

test('scopes are compared exactly: no prefix, case or whitespace leniency', () => {
  const required = route(['accounts:read'])
  for (const scopes of [['accounts'], ['accounts:read:all'], ['Accounts:Read'], ['accounts:read '], ['accounts:read payments:write'], ['accounts:*']]) {
    assert.throws(() => checkPolicy(required, token(scopes)), refusedWith('GW_SCOPE_INSUFFICIENT'), JSON.stringify(scopes))
  }
})

test('the refusal names the missing scopes only in the internal detail', () => {
  assert.throws(
    () => checkPolicy(route(['a', 'b', 'c']), token(['b'])),
    (error: unknown) => {
      assert.equal((error as { detail?: unknown }).detail, 'missing scope a c')
      return true
    },
  )
})
