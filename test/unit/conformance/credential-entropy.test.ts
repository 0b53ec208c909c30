import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { judgeEntropy } from '../../../src/conformance/credential-entropy.ts'

const random = (n: number) => Array.from({ length: n }, () => randomBytes(32).toString('base64url'))

describe('the credential entropy heuristic (FAPI 2.0 SP 5.4.1-4)', () => {
  it('passes 32 random bytes in base64url, also behind a shared prefix', () => {
    assert.equal(judgeEntropy('access tokens', random(3)).verdict, 'enough')
    assert.equal(
      judgeEntropy(
        'access tokens',
        random(3).map((t) => `at_${t}`),
      ).verdict,
      'enough',
    )
    assert.equal(judgeEntropy('access tokens', [randomBytes(16).toString('hex')]).verdict, 'enough')
  })

  it('passes signed JWTs by their signature, fails unsecured ones', () => {
    const jwt = (alg: string, signature: string) =>
      `${Buffer.from(JSON.stringify({ alg })).toString('base64url')}.${Buffer.from('{"sub":"x"}').toString('base64url')}.${signature}`
    assert.equal(judgeEntropy('access tokens', [jwt('ES256', randomBytes(64).toString('base64url'))]).verdict, 'enough')
    assert.equal(judgeEntropy('access tokens', [jwt('none', '')]).verdict, 'too-little')
  })

  it('fails values too short for 128 bits, UUIDs, counters behind a shared prefix and values that are not random', () => {
    assert.match(judgeEntropy('access tokens', [randomBytes(15).toString('base64url')]).reason, /20 base64 characters: 120 bits at most/)
    assert.match(judgeEntropy('access tokens', [randomUUID()]).reason, /UUID \(version 4\) holds at most 122/)
    const counter = ['token-000000000000000000000000000001', 'token-000000000000000000000000000002']
    assert.equal(judgeEntropy('access tokens', counter).verdict, 'too-little')
    assert.match(judgeEntropy('access tokens', ['ababababababababababababababababab']).reason, /only 2 distinct ones: not random/)
  })

  it('says so when there is nothing to judge', () => {
    assert.equal(judgeEntropy('refresh tokens', []).verdict, 'unknown')
  })
})
