import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { catalogue, GatewayError, isGatewayError, refuse, type ErrorCode, type ErrorSpec } from '../../src/errors.ts'

const entries = Object.entries(catalogue) as [ErrorCode, ErrorSpec][]
const ERRORS_DOC = join(import.meta.dirname, '..', '..', 'docs', 'errors.md')

/** Statuses that answer an authentication or authorization problem, and so may carry a challenge. */
const AUTH_STATUSES = new Set([400, 401, 403])

test('every catalogue entry has a code name, an HTTP error status and a description for clients', () => {
  assert.ok(entries.length > 0)
  for (const [code, spec] of entries) {
    assert.match(code, /^GW_[A-Z]+(?:_[A-Z]+)*$/, code)
    assert.ok(Number.isInteger(spec.status) && spec.status >= 400 && spec.status <= 599, `${code}: status ${spec.status}`)
    assert.ok(typeof spec.description === 'string' && spec.description.length > 0, `${code}: description`)
    assert.match(spec.description, /^[A-Z].*\.$/, `${code}: description is a sentence`)
    // RFC 6750 §3: error_description is limited to %x20-21 / %x23-5B / %x5D-7E (no " or \).
    assert.match(spec.description, /^[\x20\x21\x23-\x5b\x5d-\x7e]+$/, `${code}: description characters`)
    assert.ok(['token', 'dpop', 'none'].includes(spec.challenge), `${code}: challenge`)
  }
})

test('every 401 with a challenge carries an OAuth error, except GW_TOKEN_MISSING (RFC 6750 §3.1)', () => {
  for (const [code, spec] of entries) {
    if (spec.status !== 401) continue
    assert.notEqual(spec.challenge, 'none', `${code}: a 401 needs WWW-Authenticate (RFC 9110 §15.5.2)`)
    if (code === 'GW_TOKEN_MISSING') assert.equal(spec.error, undefined, 'a request without a token gets no error code')
    else assert.ok(spec.error, `${code}: OAuth error`)
  }
})

test('OAuth error values are the registered ones', () => {
  const registered = new Set(['invalid_request', 'invalid_token', 'insufficient_scope', 'invalid_dpop_proof', 'use_dpop_nonce'])
  for (const [code, spec] of entries) {
    if (spec.error !== undefined) assert.ok(registered.has(spec.error), `${code}: ${spec.error}`)
  }
  assert.equal(catalogue.GW_SCOPE_INSUFFICIENT.status, 403)
  assert.equal(catalogue.GW_SCOPE_INSUFFICIENT.error, 'insufficient_scope')
  for (const [code, spec] of entries) {
    if (spec.error === 'invalid_request') assert.equal(spec.status, 400, code)
    if (spec.error === 'invalid_token' || spec.error === 'invalid_dpop_proof' || spec.error === 'use_dpop_nonce') assert.equal(spec.status, 401, code)
  }
})

test('every status that is not about authentication has challenge none and no OAuth error', () => {
  const nonAuth = entries.filter(([, spec]) => !AUTH_STATUSES.has(spec.status))
  assert.ok(nonAuth.length > 0)
  for (const [code, spec] of nonAuth) {
    assert.equal(spec.challenge, 'none', code)
    assert.equal(spec.error, undefined, code)
  }
})

test('refuse throws a GatewayError with the code and the internal detail', () => {
  const cause = new Error('socket hang up')
  assert.throws(
    () => refuse('GW_TOKEN_EXPIRED', 'exp 5 s ago', cause),
    (error: unknown) => {
      assert.ok(isGatewayError(error))
      assert.ok(error instanceof GatewayError && error instanceof Error)
      assert.equal(error.code, 'GW_TOKEN_EXPIRED')
      assert.equal(error.detail, 'exp 5 s ago')
      assert.equal(error.cause, cause)
      assert.equal(error.name, 'GatewayError')
      assert.equal(error.message, 'GW_TOKEN_EXPIRED: exp 5 s ago')
      return true
    },
  )
  assert.equal(new GatewayError('GW_INTERNAL').message, 'GW_INTERNAL')
  assert.equal(new GatewayError('GW_INTERNAL').detail, undefined)
  assert.equal(isGatewayError(new Error('GW_INTERNAL')), false)
  assert.equal(isGatewayError({ code: 'GW_INTERNAL' }), false)
})

/** Rows `| \`GW_X\` | 401 | ... |` of the "Error codes" section of docs/errors.md: code -> status cell. */
function readmeErrorTable(): Map<string, string> | string {
  let text: string
  try {
    text = readFileSync(ERRORS_DOC, 'utf8')
  } catch (error) {
    return `docs/errors.md cannot be read (${(error as NodeJS.ErrnoException).code})`
  }
  const lines = text.split('\n')
  const heading = lines.findIndex((line) => /^#{1,6}\s+Error codes\s*$/i.test(line))
  if (heading === -1) return 'docs/errors.md has no "Error codes" heading'
  const level = lines[heading]!.match(/^#+/)![0].length
  const rows = new Map<string, string>()
  for (const line of lines.slice(heading + 1)) {
    const next = line.match(/^(#{1,6})\s/)
    if (next && next[1]!.length <= level) break
    const row = line.match(/^\|\s*`(GW_[A-Z_]+)`\s*\|(.*)$/)
    if (!row) continue
    const cells = row[2]!.split('|').map((cell) => cell.trim().replace(/^`|`$/g, ''))
    rows.set(row[1]!, cells.find((cell) => /^\d{3}$/.test(cell)) ?? `(no status in: ${line.trim()})`)
  }
  if (rows.size === 0) return 'docs/errors.md\'s "Error codes" section has no rows starting with "| `GW_...` |"'
  return rows
}

test('docs/errors.md documents every error code with its status, and no code that does not exist', () => {
  const table = readmeErrorTable()
  const codes = entries.map(([code]) => code)
  if (typeof table === 'string') {
    assert.fail(
      `${table}; codes to document in its "Error codes" table (| \`CODE\` | status | ... |):\n  ${codes.map((c) => `${c} ${catalogue[c].status}`).join('\n  ')}`,
    )
  }
  const missing = codes.filter((code) => !table.has(code))
  const wrongStatus = codes.filter((code) => table.has(code) && table.get(code) !== String(catalogue[code].status))
  const unknown = [...table.keys()].filter((code) => !(code in catalogue))
  const problems = [
    ...missing.map((code) => `missing from docs/errors.md: ${code} (${catalogue[code].status})`),
    ...wrongStatus.map((code) => `wrong status in docs/errors.md: ${code} is ${catalogue[code].status}, docs/errors.md says ${table.get(code)}`),
    ...unknown.map((code) => `in docs/errors.md but not in the catalogue: ${code}`),
  ]
  assert.deepEqual(problems, [], problems.join('\n'))
})

test('GatewayError: the rule is the label the detail starts with, or the one given; none for a detail without a label', () => {
  assert.equal(new GatewayError('GW_DPOP_INVALID', { detail: 'iat: too old' }).rule, 'iat')
  assert.equal(new GatewayError('GW_DPOP_INVALID', { detail: 'jwk private: has private members' }).rule, 'jwk private')
  assert.equal(new GatewayError('GW_CLIENT_CERT_REVOKED', { detail: 'deny list: listed; serial 01' }).rule, 'deny list')
  assert.equal(new GatewayError('GW_TOKEN_REVOKED', { detail: 'on the revoked-token list' }).rule, undefined)
  assert.equal(new GatewayError('GW_TOKEN_MISSING').rule, undefined)
  assert.equal(new GatewayError('GW_DPOP_NONCE', { detail: 'missing', rule: 'nonce' }).rule, 'nonce')
  assert.equal(new GatewayError('GW_INTERNAL', { detail: 'see: https://example/x' }).rule, 'see', 'a label is a label')
})
