import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { asksForNonce, isNonce, isUuid, parseChallenges } from '../../../src/conformance/challenges.ts'

describe('WWW-Authenticate parsing (RFC 9110 §11.6.1)', () => {
  it('reads several challenges in one field, quoted and token values', () => {
    const [dpop, bearer] = parseChallenges([
      'DPoP error="invalid_dpop_proof", error_description="The \\"proof\\" is bad", algs="ES256 PS256", Bearer realm=api, error=invalid_token',
    ])
    assert.equal(dpop!.scheme, 'DPoP')
    assert.deepEqual(dpop!.params, { error: 'invalid_dpop_proof', error_description: 'The "proof" is bad', algs: 'ES256 PS256' })
    assert.ok(dpop!.quoted.has('error'))
    assert.equal(bearer!.scheme, 'Bearer')
    assert.deepEqual(bearer!.params, { realm: 'api', error: 'invalid_token' })
    assert.ok(!bearer!.quoted.has('error'), 'a token value is not quoted')
  })

  it('reads one challenge per field and bare schemes', () => {
    const challenges = parseChallenges(['DPoP algs="ES256"', 'Bearer'])
    assert.deepEqual(
      challenges.map((c) => c.scheme),
      ['DPoP', 'Bearer'],
    )
    assert.deepEqual(challenges[1]!.params, {})
  })

  it('names parameters case-insensitively and survives garbage', () => {
    assert.equal(parseChallenges(['DPoP ERROR="use_dpop_nonce"'])[0]!.params.error, 'use_dpop_nonce')
    assert.equal(parseChallenges(['', ',,, ']).length, 0)
    assert.doesNotThrow(() => parseChallenges(['"x', '=', 'DPoP error="unterminated', 'DPoP a=b=c']))
  })
})

describe('nonce and interaction id syntax', () => {
  it('DPoP-Nonce is 1*NQCHAR (RFC 9449 §8.1)', () => {
    assert.ok(isNonce('eyJ7S_zG.eyJH0-Z.HX4w-7v'))
    for (const bad of ['', 'a b', 'a"b', 'a\\b', 'é']) assert.ok(!isNonce(bad), JSON.stringify(bad))
  })

  it('interaction ids are UUIDs', () => {
    assert.ok(isUuid('c2f6a7f1-8e2d-4d44-9a4b-3f1c2b7d9e10'))
    assert.ok(!isUuid('not-a-uuid'))
  })

  it('recognises a resource nonce challenge (401 + DPoP error) and an AS one (400 + JSON error)', () => {
    assert.ok(asksForNonce(401, ['WWW-Authenticate', 'DPoP error="use_dpop_nonce"'], ''))
    assert.ok(asksForNonce(400, [], '{"error":"use_dpop_nonce"}'))
    assert.ok(!asksForNonce(401, ['WWW-Authenticate', 'DPoP error="invalid_dpop_proof"'], ''))
    assert.ok(!asksForNonce(401, [], '{"error":"use_dpop_nonce"}'), 'a resource says it in the challenge')
  })
})
