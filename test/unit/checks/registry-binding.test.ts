import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { applyBindingRecord } from '../../../src/checks/registry-binding.ts'
import type { BindingRecord } from '../../../src/tokens/binding-registry.ts'
import type { AccessToken } from '../../../src/types.ts'

const NOW_MS = 1_700_000_100_000
const thumbprint = (seed: string) => createHash('sha256').update(seed).digest('base64url')
const JKT = thumbprint('key')

const record: BindingRecord = {
  kind: 'access_token',
  issuerName: 'legacy',
  clientId: 'partner-a',
  legacyClientId: 'legacy-shared',
  jkt: JKT,
  scope: 'accounts:read payments:write',
  sub: 'record-sub',
  issuedAt: 1_700_000_000,
  expiresAt: 1_700_000_600,
}

function legacy(overrides: Partial<AccessToken> = {}): AccessToken {
  return {
    format: 'jwt',
    issuerName: 'legacy',
    iss: 'https://legacy.example',
    sub: undefined,
    clientId: 'legacy-shared',
    scopes: new Set(),
    audiences: ['https://api.example'],
    exp: undefined,
    jti: 'j',
    binding: {},
    tokenType: 'Bearer',
    facade: 'jwks',
    ...overrides,
  }
}

const applied = (token: AccessToken, stored: unknown = record) => applyBindingRecord(token, JSON.stringify(stored), NOW_MS)

test('the record completes a token that says nothing: binding, scopes, client, subject, expiry', () => {
  const token = applied(legacy())
  assert.deepEqual(token.binding, { jkt: JKT })
  assert.deepEqual([...token.scopes], ['accounts:read', 'payments:write'])
  assert.equal(token.clientId, 'partner-a')
  assert.equal(token.sub, 'record-sub')
  assert.equal(token.exp, record.expiresAt)
  assert.equal(token.tokenType, undefined, 'a legacy token_type says nothing of the binding')
})

test("what the token says wins where it is narrower: its subject, its scopes within the record's, the earlier expiry", () => {
  const token = applied(legacy({ sub: 'token-sub', scopes: new Set(['accounts:read', 'admin']), exp: record.expiresAt - 100 }))
  assert.equal(token.sub, 'token-sub')
  assert.deepEqual([...token.scopes], ['accounts:read'], 'admin was never granted through the gateway')
  assert.equal(token.exp, record.expiresAt - 100)
  assert.equal(applied(legacy({ exp: record.expiresAt + 100 })).exp, record.expiresAt)
  assert.equal(token.clientId, 'partner-a', 'the partner, not the legacy client')
})

test("no record, a corrupt one, another issuer's or a refresh token's: GW_TOKEN_UNREGISTERED", () => {
  const unregistered = { code: 'GW_TOKEN_UNREGISTERED' }
  assert.throws(() => applyBindingRecord(legacy(), undefined, NOW_MS), unregistered)
  assert.throws(() => applyBindingRecord(legacy(), '{"kind":"access_token"', NOW_MS), unregistered)
  assert.throws(() => applied(legacy(), { ...record, jkt: 'not-a-thumbprint' }), unregistered)
  assert.throws(() => applied(legacy(), { ...record, issuerName: 'other' }), unregistered)
  assert.throws(() => applied(legacy(), { ...record, kind: 'refresh_token' }), unregistered)
})

test('an expired record is GW_TOKEN_EXPIRED; a cnf in the token that disagrees with the record is GW_TOKEN_INVALID', () => {
  assert.throws(() => applied(legacy(), { ...record, expiresAt: NOW_MS / 1000 }), { code: 'GW_TOKEN_EXPIRED' })
  assert.throws(() => applied(legacy({ binding: { jkt: thumbprint('other key') } })), { code: 'GW_TOKEN_INVALID' })
  assert.throws(() => applied(legacy({ binding: { x5t: thumbprint('cert') } })), { code: 'GW_TOKEN_INVALID' })
  assert.deepEqual(applied(legacy({ binding: { jkt: JKT } })).binding, { jkt: JKT })
})
