import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { OAuthError, oauthCatalogue, type OAuthErrorCode, type OAuthErrorSpec } from '../../../src/authorization-server/errors.ts'

const entries = Object.entries(oauthCatalogue) as [OAuthErrorCode, OAuthErrorSpec][]

test('every façade error is an RFC 6749 §5.2 answer: its status, a registered error value, a sentence for clients', () => {
  for (const [code, spec] of entries) {
    assert.match(code, /^AS_[A-Z]+(?:_[A-Z]+)*$/, code)
    assert.match(spec.description, /^[A-Z][\x20\x21\x23-\x5b\x5d-\x7e]*\.$/, `${code}: description`)
    if (spec.error === 'invalid_client') assert.equal(spec.status, 401, `${code}: invalid_client is a 401 (RFC 6749 §5.2)`)
    // RFC 9449 §5: at the token endpoint a bad proof or a missing nonce is a 400, not the resource's 401.
    if (spec.error === 'invalid_dpop_proof' || spec.error === 'use_dpop_nonce') assert.equal(spec.status, 400, code)
    if (spec.status >= 500) assert.ok(spec.error === 'server_error' || spec.error === 'temporarily_unavailable', code)
  }
})

test('docs/errors.md lists every façade error code with its status and error value, and no other', () => {
  const text = readFileSync(join(import.meta.dirname, '..', '..', '..', 'docs', 'errors.md'), 'utf8')
  const rows = new Map<string, [string, string]>()
  for (const match of text.matchAll(/^\|\s*`(AS_[A-Z_]+)`\s*\|\s*(\d{3})\s*\|\s*`([a-z_]+)`\s*\|/gm)) rows.set(match[1]!, [match[2]!, match[3]!])
  const problems = [
    ...entries.filter(([code]) => !rows.has(code)).map(([code]) => `missing: ${code}`),
    ...entries
      .filter(([code, spec]) => rows.has(code) && (rows.get(code)![0] !== String(spec.status) || rows.get(code)![1] !== spec.error))
      .map(([code]) => `wrong status or error: ${code}`),
    ...[...rows.keys()].filter((code) => !(code in oauthCatalogue)).map((code) => `not in the catalogue: ${code}`),
  ]
  assert.deepEqual(problems, [])
})

test('a legacy error passed on replaces the catalogue value; the rule is the detail label', () => {
  const error = new OAuthError('AS_LEGACY_REFUSED', { detail: 'legacy: invalid_grant', passOnError: 'invalid_grant' })
  assert.equal(error.error, 'invalid_grant')
  assert.equal(error.rule, 'legacy')
  assert.equal(new OAuthError('AS_CLIENT_ASSERTION_INVALID', { detail: 'aud: an array' }).error, 'invalid_client')
})
