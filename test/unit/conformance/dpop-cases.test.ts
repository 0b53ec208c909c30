// Every DPoP case the runner sends, judged by the project's own resource-side checks (the
// node:crypto fast path and the jose reference): each negative is refused for the one reason
// the case names, each positive is accepted with the token's key. If a case drifted (a
// "missing typ" proof that also had a bad signature), this is where it shows.
import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import { checkDpop, type DpopSettings } from '../../../src/checks/dpop/check.ts'
import { checkDpopWithJose } from '../../support/dpop-verify-with-jose.ts'
import { createProofKeyCache } from '../../../src/checks/dpop/proof-key-cache.ts'
import { isGatewayError } from '../../../src/errors.ts'
import { DPOP_CASES_AFTER_REPLAY, DPOP_CASES_BEFORE_REPLAY, type DpopCase, type DpopEnv } from '../../../src/conformance/checks/dpop-checks.ts'
import { accessTokenHash, generateDpopKey, type DpopKey } from '../../../src/conformance/proofs.ts'
import type { DpopCredentials } from '../../../src/conformance/context.ts'
import { headerJwkThumbprint } from '../checks/dpop/proof-factory.ts'

const NOW_MS = 1_760_000_000_500
const NOW = Math.floor(NOW_MS / 1000)
const URL_UNDER_TEST = 'https://api.bank.example/accounts/123'
const settings: DpopSettings = {
  algorithms: ['ES256', 'PS256', 'EdDSA'],
  maxAgeSeconds: 60,
  maxFutureSeconds: 10,
  maxJtiLength: 256,
  nonceMode: 'off',
  nonces: undefined,
}

/** What the gateway's check must say about each negative: the GatewayError code and the start of its detail. */
const EXPECTED_REFUSALS: Record<string, [code: string, detail: RegExp | undefined]> = {
  'dpop-two-headers-refused': ['GW_DPOP_MULTIPLE', undefined],
  'dpop-two-part-jwt-refused': ['GW_DPOP_INVALID', /^malformed/],
  'dpop-missing-typ-refused': ['GW_DPOP_INVALID', /^typ: missing/],
  'dpop-missing-alg-refused': ['GW_DPOP_INVALID', /^alg: missing/],
  'dpop-missing-jwk-refused': ['GW_DPOP_INVALID', /^jwk: missing/],
  'dpop-missing-jti-refused': ['GW_DPOP_INVALID', /^jti: missing/],
  'dpop-missing-htm-refused': ['GW_DPOP_INVALID', /^htm: missing/],
  'dpop-missing-htu-refused': ['GW_DPOP_INVALID', /^htu: missing/],
  'dpop-missing-iat-refused': ['GW_DPOP_INVALID', /^iat: missing/],
  'dpop-missing-ath-refused': ['GW_DPOP_INVALID', /^ath: missing/],
  'dpop-wrong-typ-refused': ['GW_DPOP_INVALID', /^typ: not dpop\+jwt/],
  'dpop-rs256-refused': ['GW_DPOP_INVALID', /^alg: not allowed/],
  'dpop-alg-none-refused': ['GW_DPOP_INVALID', /^alg: not allowed/],
  'dpop-hs256-refused': ['GW_DPOP_INVALID', /^alg: not allowed/],
  'dpop-corrupted-signature-refused': ['GW_DPOP_INVALID', /^signature/],
  'dpop-jwk-private-refused': ['GW_DPOP_INVALID', /^jwk private/],
  'dpop-wrong-htm-refused': ['GW_DPOP_INVALID', /^htm: does not match/],
  'dpop-htu-wrong-path-refused': ['GW_DPOP_INVALID', /^htu: does not match/],
  'dpop-iat-future-1h-refused': ['GW_DPOP_INVALID', /^iat: in the future/],
  'dpop-iat-past-1h-refused': ['GW_DPOP_INVALID', /^iat: too old/],
  'dpop-wrong-ath-refused': ['GW_DPOP_INVALID', /^ath: does not match/],
  'dpop-no-proof-refused': ['GW_DPOP_MISSING', undefined],
}
/** Proofs that are valid in themselves but signed by a key the token is not bound to (RFC 9449 §7.1 check 12b): refused before the signature. */
const WRONG_KEY = new Set(['dpop-other-key-refused', 'dpop-cross-client-refused'])
/** Not a proof problem: the gateway's binding step refuses these. */
const NOT_A_PROOF_CASE = new Set(['dpop-bearer-downgrade-refused'])

let key: DpopKey
let rsa: DpopCredentials
let second: DpopCredentials
const TOKEN = 'primary-access-token.value'

before(async () => {
  key = await generateDpopKey('ES256')
  rsa = { key: await generateDpopKey('PS256'), token: 'rsa-bound-token' }
  second = { key: await generateDpopKey('ES256'), token: 'second-client-token' }
})

function env(): DpopEnv {
  const base = { key, htm: 'GET', htu: URL_UNDER_TEST, accessToken: TOKEN, nonce: undefined, iat: NOW }
  return {
    token: TOKEN,
    key,
    method: 'GET',
    url: URL_UNDER_TEST,
    htu: URL_UNDER_TEST,
    nonce: undefined,
    now: NOW,
    input: (overrides) => ({ ...base, ...overrides }),
    rsa: async () => rsa,
    second: async () => second,
  }
}

/** `bindTo` 'proof key': judged as if the token were bound to the key in the proof's header. */
async function judge(c: DpopCase, bindTo: 'token' | 'proof key' = 'token') {
  const request = await c.build(env())
  const presented = request.authorization === undefined ? `DPoP ${TOKEN}` : request.authorization
  const accessToken = presented?.split(' ')[1] ?? ''
  const boundJkt =
    bindTo === 'proof key'
      ? headerJwkThumbprint(request.proofs[0])
      : new Map([
          [TOKEN, key.jkt],
          [rsa.token, rsa.key.jkt],
          [second.token, second.key.jkt],
        ]).get(accessToken)
  const input = {
    method: 'GET',
    url: request.url ?? URL_UNDER_TEST,
    proofHeaders: request.proofs,
    accessToken,
    accessTokenHash: accessTokenHash(accessToken),
    boundJkt,
  }
  const outcomes = []
  for (const check of [checkDpop, checkDpopWithJose]) {
    try {
      outcomes.push({ ok: true as const, proof: await check(input, settings, createProofKeyCache({ maxEntries: 10 }), NOW_MS) })
    } catch (error) {
      assert.ok(isGatewayError(error), `${c.id}: unexpected ${String(error)}`)
      outcomes.push({ ok: false as const, code: error.code, detail: error.detail ?? '' })
    }
  }
  return { request, outcomes }
}

describe("the runner's DPoP cases, judged by the gateway's own checks", () => {
  const cases = [...DPOP_CASES_BEFORE_REPLAY, ...DPOP_CASES_AFTER_REPLAY]

  it('covers every negative and positive the brief lists', () => {
    const ids = cases.map((c) => c.id)
    for (const name of ['typ', 'alg', 'jwk', 'jti', 'htm', 'htu', 'iat', 'ath']) assert.ok(ids.includes(`dpop-missing-${name}-refused`), name)
    for (const id of [...Object.keys(EXPECTED_REFUSALS), ...WRONG_KEY, ...NOT_A_PROOF_CASE]) assert.ok(ids.includes(id), id)
    assert.equal(new Set(ids).size, ids.length, 'ids are unique')
  })

  for (const c of [...DPOP_CASES_BEFORE_REPLAY, ...DPOP_CASES_AFTER_REPLAY]) {
    if (NOT_A_PROOF_CASE.has(c.id)) continue
    it(`${c.id}`, async () => {
      const { request, outcomes } = await judge(c)
      for (const [index, outcome] of outcomes.entries()) {
        const which = index === 0 ? 'node:crypto check' : 'jose reference'
        if (c.expect === 'accepted') {
          assert.ok(outcome.ok, `${which} refused an accepted case: ${outcome.ok ? '' : `${outcome.code} ${outcome.detail}`}`)
          assert.equal(outcome.proof.jkt, key.jkt, "signed by the token's key")
        } else if (WRONG_KEY.has(c.id)) {
          assert.ok(!outcome.ok, `${which} accepted ${c.id}`)
          assert.equal(outcome.code, 'GW_DPOP_BINDING_MISMATCH', `${which}: ${outcome.detail}`)
          const boundToItsKey = (await judge(c, 'proof key')).outcomes[index]!
          assert.ok(boundToItsKey.ok, `${which}: the proof itself must be valid`)
        } else {
          const [code, detail] = EXPECTED_REFUSALS[c.id]!
          assert.ok(!outcome.ok, `${which} accepted ${c.id}`)
          assert.equal(outcome.code, code, `${which}: ${outcome.detail}`)
          // The jose reference words some details differently; the fast path's are the contract.
          if (detail && index === 0) assert.match(outcome.detail, detail)
        }
      }
      if (c.id === 'dpop-header-name-case-accepted') assert.equal(request.proofHeaderName, 'DPOP')
      if (c.id === 'dpop-rs256-refused') assert.equal(request.authorization, `DPoP ${rsa.token}`, 'the RS256 proof is sent with the token bound to the RSA key')
    })
  }

  it('the Bearer downgrade sends the DPoP-bound token as Bearer without a proof', async () => {
    const c = cases.find((x) => x.id === 'dpop-bearer-downgrade-refused')!
    const request = await c.build(env())
    assert.equal(request.authorization, `Bearer ${TOKEN}`)
    assert.deepEqual(request.proofs, [])
  })
})
