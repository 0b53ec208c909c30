import { before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { hash, randomBytes } from 'node:crypto'
import fc from 'fast-check'
import type { DpopAlgorithm, DpopInput, DpopSettings } from '../../../../src/checks/dpop/check.ts'
import { createNonceIssuer } from '../../../../src/checks/dpop/nonce.ts'
import { createProofKeyCache, jwkThumbprint } from '../../../../src/checks/dpop/proof-key-cache.ts'
import {
  ACCESS_TOKEN_HASH,
  b64json,
  baseSettings,
  bothOutcomes,
  dpopInput,
  generateTestKey,
  makeProof,
  NOW,
  NOW_MS,
  RESOURCE_URL,
  signCompact,
  type Outcome,
  type TestKey,
} from './proof-factory.ts'

// Fixed seeds keep the suite deterministic; FC_SEED explores others.
const seed = (fallback: number): number => (process.env.FC_SEED ? Number(process.env.FC_SEED) : fallback)
const RUNS = Number(process.env.FC_RUNS ?? 300)
const ALGORITHMS = ['ES256', 'PS256', 'EdDSA'] as const
const nonces = createNonceIssuer({ secret: randomBytes(32), slotSeconds: 30 })
const keysByAlg = new Map<DpopAlgorithm, TestKey>()
const otherKeys = new Map<DpopAlgorithm, TestKey>()
const validProofs: string[] = []

before(async () => {
  for (const alg of ALGORITHMS) {
    keysByAlg.set(alg, await generateTestKey(alg))
    otherKeys.set(alg, await generateTestKey(alg))
  }
  for (const key of keysByAlg.values()) validProofs.push(await makeProof(key), await makeProof(key, { claims: { nbf: NOW, exp: NOW + 60, tx_id: 'x' } }))
})

function assertRefusedAlike(fast: Outcome, jose: Outcome, what: string): void {
  assert.equal(fast.accepted, false, `fast path accepted ${what}`)
  assert.equal(jose.accepted, false, `jose reference accepted ${what}`)
  if (fast.accepted || jose.accepted) return
  assert.match(fast.code, /^GW_DPOP_/, what)
  assert.deepEqual(fast, jose, `fast ${JSON.stringify(fast)}, jose ${JSON.stringify(jose)} for ${what}`)
}

/** Both checks, with a fresh key cache, must only ever refuse with a GatewayError (bothOutcomes rethrows anything else). */
async function outcomes(input: DpopInput, settings: DpopSettings = baseSettings): Promise<[Outcome, Outcome]> {
  return bothOutcomes(input, settings, NOW_MS, createProofKeyCache({ maxEntries: 4 }))
}

describe('checkDpop property tests (fast path and jose reference)', () => {
  test('arbitrary header values are refused with a GW_DPOP_* code, alike', async () => {
    const headerValue = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.stringMatching(/^[A-Za-z0-9_.=+/ -]{0,120}$/),
      fc.array(fc.base64String({ maxLength: 80 }), { minLength: 1, maxLength: 5 }).map((parts) => parts.join('.')),
    )
    await fc.assert(
      fc.asyncProperty(fc.array(headerValue, { maxLength: 3 }), async (headers) => {
        const [fast, jose] = await outcomes(dpopInput(headers))
        assertRefusedAlike(fast, jose, JSON.stringify(headers))
      }),
      { numRuns: RUNS, seed: seed(20260101) },
    )
  })

  test('arbitrary JSON headers and claims with an unverifiable signature are refused alike', async () => {
    const jsonObject = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 6 })
    const plausibleHeader = fc.record(
      {
        typ: fc.constantFrom('dpop+jwt', 'JWT'),
        alg: fc.constantFrom(...ALGORITHMS, 'none', 'HS256'),
        jwk: fc.constantFrom(...[...keysByAlg.values()].map((key) => key.publicJwk)),
      },
      { requiredKeys: [] },
    )
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.jsonValue({ maxDepth: 2 }), jsonObject, plausibleHeader),
        fc.oneof(fc.jsonValue({ maxDepth: 2 }), jsonObject),
        fc.uint8Array({ maxLength: 300 }),
        async (header, claims, signature) => {
          const proof = `${b64json(header)}.${b64json(claims)}.${Buffer.from(signature).toString('base64url')}`
          const [fast, jose] = await outcomes(dpopInput(proof))
          assertRefusedAlike(fast, jose, proof)
        },
      ),
      { numRuns: RUNS, seed: seed(20260102) },
    )
  })

  test('mutated valid proofs are never accepted', async () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/,'
    type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), char: fc.constantFrom(...alphabet) }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), char: fc.constantFrom(...alphabet) }),
      fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('swap' as const), a: fc.nat(2), b: fc.nat(2) }),
      fc.record({ kind: fc.constant('bitflip' as const), segment: fc.nat(2), at: fc.nat(), bit: fc.nat(7) }),
    )
    const mutate = (proof: string, m: Mutation): string => {
      const at = (n: number) => n % (proof.length + 1)
      switch (m.kind) {
        case 'replace':
          return proof.slice(0, at(m.at)) + m.char + proof.slice(at(m.at) + 1)
        case 'insert':
          return proof.slice(0, at(m.at)) + m.char + proof.slice(at(m.at))
        case 'delete':
          return proof.slice(0, at(m.at)) + proof.slice(at(m.at) + m.length)
        case 'truncate':
          return proof.slice(0, at(m.at))
        case 'swap': {
          const parts = proof.split('.')
          ;[parts[m.a], parts[m.b]] = [parts[m.b]!, parts[m.a]!]
          return parts.join('.')
        }
        case 'bitflip': {
          const parts = proof.split('.')
          const bytes = Buffer.from(parts[m.segment] ?? '', 'base64url')
          if (bytes.length === 0) return proof
          bytes[m.at % bytes.length]! ^= 1 << m.bit
          parts[m.segment] = bytes.toString('base64url')
          return parts.join('.')
        }
      }
    }
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.array(mutation, { minLength: 1, maxLength: 3 }), async (which, mutations) => {
        const original = validProofs[which % validProofs.length]!
        const mutated = mutations.reduce(mutate, original)
        fc.pre(mutated !== original)
        const [fast, jose] = await outcomes(dpopInput(mutated))
        assertRefusedAlike(fast, jose, `${original} -> ${mutated}`)
      }),
      { numRuns: RUNS, seed: seed(20260103) },
    )
    // The originals themselves pass, so the refusals above are due to the mutations.
    for (const proof of validProofs) {
      const [fast, jose] = await outcomes(dpopInput(proof))
      assert.ok(fast.accepted && jose.accepted)
    }
  })

  test('correctly signed proofs with injected faults: both checks agree, accept the sound ones, refuse for the injected fault', async () => {
    const absent = Symbol('absent')
    const json = fc.jsonValue({ maxDepth: 1 })
    const FAULTS = ['typ', 'alg', 'jwk', 'crit', 'jti', 'htm', 'htu', 'iat', 'nbf', 'exp', 'ath', 'nonce'] as const
    type Fault = (typeof FAULTS)[number]
    // What a refusal caused by each fault may be reported as.
    const reportedAs: Record<Fault, readonly string[]> = {
      typ: ['typ'],
      alg: ['alg'],
      jwk: ['jwk', 'jwk private', 'alg', 'signature'],
      crit: ['crit'],
      jti: ['jti'],
      htm: ['htm'],
      htu: ['htu'],
      iat: ['iat'],
      nbf: ['nbf'],
      exp: ['exp'],
      ath: ['ath'],
      nonce: ['nonce'],
    }
    const RESERVED = new Set(['typ', 'alg', 'jwk', 'crit', 'b64', 'jti', 'htm', 'htu', 'iat', 'nbf', 'exp', 'ath', 'nonce'])
    const extras = fc.dictionary(
      fc.string({ maxLength: 6 }).filter((name) => !RESERVED.has(name)),
      json,
      { maxKeys: 3 },
    )
    const field = <G, B>(good: fc.Arbitrary<G>, bad: fc.Arbitrary<B>) => ({ good, bad })

    const fields = {
      typ: field(fc.constant('dpop+jwt'), fc.oneof(fc.constantFrom<unknown>('DPOP+JWT', 'application/dpop+jwt', 'JWT', 'dpop+jwt ', absent), json)),
      alg: field(fc.constant('own'), fc.oneof(fc.constantFrom<unknown>('none', 'HS256', 'RS256', 'ES384', 'mismatch', absent), json)),
      jwk: field(
        fc.record({
          use: fc.constantFrom<unknown>(absent, 'sig'),
          alg: fc.constantFrom<unknown>(absent, 'own'),
          key_ops: fc.constantFrom<unknown>(absent, ['verify']),
          ext: fc.constantFrom<unknown>(absent, true, false),
          kid: fc.constantFrom<unknown>(absent, 'kid-1'),
        }),
        fc.oneof(
          fc.constantFrom<unknown>('other', 'private', 'another-type', absent),
          fc.constantFrom<unknown>(
            { use: 'enc' },
            { alg: 'RS256' },
            { key_ops: ['sign'] },
            { key_ops: [] },
            { key_ops: 'verify' },
            { ext: 'true' },
            { d: 'AAAA' },
            { k: 'AAAA' },
          ),
          json,
        ),
      ),
      crit: field(fc.constant<unknown>(absent), fc.constantFrom<unknown>(['b64'], [], 'x', null)),
      jti: field(fc.string({ minLength: 1, maxLength: 256 }), fc.oneof(fc.constantFrom<unknown>('', 'j'.repeat(257), absent), fc.integer())),
      htm: field(fc.constant('GET'), fc.oneof(fc.constantFrom<unknown>('PUT', 'get', 'POST', ' GET', absent), fc.integer())),
      htu: field(
        fc.constantFrom(
          RESOURCE_URL,
          `${RESOURCE_URL}?a=b#c`,
          'HTTPS://API.BANK.EXAMPLE/accounts/123/balances',
          'https://api.bank.example:443/accounts/123/%62alances',
        ),
        fc.oneof(
          fc.constantFrom<unknown>(
            `${RESOURCE_URL}/x`,
            'https://api.bank.example/accounts/124/balances',
            '/accounts/123/balances',
            'http://api.bank.example/accounts/123/balances',
            `${RESOURCE_URL} `,
            absent,
          ),
          fc.integer(),
        ),
      ),
      iat: field(
        fc.oneof(fc.integer({ min: NOW - 60, max: NOW + 10 }), fc.double({ min: NOW - 60, max: NOW + 10, noNaN: true })),
        fc.oneof(
          fc.integer({ min: NOW - 7200, max: NOW - 61 }),
          fc.integer({ min: NOW + 11, max: NOW + 7200 }),
          fc.constantFrom<unknown>(String(NOW), null, absent),
        ),
      ),
      nbf: field(
        fc.oneof(fc.constant<unknown>(absent), fc.integer({ min: NOW - 300, max: NOW + 10 })),
        fc.oneof(fc.integer({ min: NOW + 11, max: NOW + 600 }), fc.constantFrom<unknown>('now', null)),
      ),
      exp: field(
        fc.oneof(fc.constant<unknown>(absent), fc.integer({ min: NOW - 9, max: NOW + 600 })),
        fc.oneof(fc.integer({ min: NOW - 600, max: NOW - 10 }), fc.constantFrom<unknown>('later', null)),
      ),
      ath: field(
        fc.constant(ACCESS_TOKEN_HASH),
        fc.oneof(fc.constantFrom<unknown>(hash('sha256', 'other', 'base64url'), ACCESS_TOKEN_HASH.toLowerCase(), absent), fc.integer()),
      ),
      nonce: field(
        fc.oneof(
          fc.record({ mode: fc.constant('off' as const), nonce: fc.constantFrom<unknown>(absent, 'current', 'stale', 'bogus', 7) }),
          fc.record({ mode: fc.constant('optional' as const), nonce: fc.constantFrom<unknown>(absent, 'current', 'previous') }),
          fc.record({ mode: fc.constant('required' as const), nonce: fc.constantFrom<unknown>('current', 'previous') }),
        ),
        fc.oneof(
          fc.record({ mode: fc.constant('optional' as const), nonce: fc.constantFrom<unknown>('stale', 'bogus', 7) }),
          fc.record({ mode: fc.constant('required' as const), nonce: fc.constantFrom<unknown>(absent, 'stale', 'bogus', 7) }),
        ),
      ),
    }
    const faultSets = fc.oneof(
      { arbitrary: fc.constant<Fault[]>([]), weight: 2 },
      { arbitrary: fc.subarray([...FAULTS], { minLength: 1, maxLength: 2 }), weight: 3 },
    )
    const scenario = faultSets.chain((faults) =>
      fc.record({
        faults: fc.constant(faults),
        alg: fc.constantFrom(...ALGORITHMS),
        headerExtras: extras,
        claimExtras: extras,
        values: fc.record(
          Object.fromEntries(FAULTS.map((name) => [name, faults.includes(name) ? fields[name].bad : fields[name].good])) as {
            [K in Fault]: fc.Arbitrary<unknown>
          },
        ),
      }),
    )

    const present = (entries: Record<string, unknown>) => Object.fromEntries(Object.entries(entries).filter(([, value]) => value !== absent))
    let accepted = 0
    await fc.assert(
      fc.asyncProperty(scenario, async ({ faults, alg, headerExtras, claimExtras, values }) => {
        const key = keysByAlg.get(alg)!
        const jwkValue = (choice: unknown): unknown => {
          if (choice === 'other') return otherKeys.get(alg)!.publicJwk
          if (choice === 'private') return key.privateJwk
          if (choice === 'another-type') return keysByAlg.get(alg === 'ES256' ? 'EdDSA' : 'ES256')!.publicJwk
          if (typeof choice === 'object' && choice !== null && !Array.isArray(choice)) {
            const members = choice as Record<string, unknown>
            return present({ ...key.publicJwk, ...members, alg: members.alg === 'own' ? alg : (members.alg ?? absent) })
          }
          return choice
        }
        const algValue = values.alg === 'own' ? alg : values.alg === 'mismatch' ? (alg === 'ES256' ? 'PS256' : 'ES256') : values.alg
        const { mode, nonce } = values.nonce as { mode: DpopSettings['nonceMode']; nonce: unknown }
        const nonceValue =
          (
            { current: nonces.current(NOW_MS), previous: nonces.current(NOW_MS - 30_000), stale: nonces.current(NOW_MS - 60_000), bogus: 'bogus' } as Record<
              string,
              unknown
            >
          )[nonce as string] ?? nonce
        const header = present({ ...headerExtras, typ: values.typ, alg: algValue, jwk: jwkValue(values.jwk), crit: values.crit })
        const claims = present({
          ...claimExtras,
          jti: values.jti,
          htm: values.htm,
          htu: values.htu,
          iat: values.iat,
          nbf: values.nbf,
          exp: values.exp,
          ath: values.ath,
          nonce: nonceValue,
        })
        const proof = signCompact(header, claims, key, alg)
        const settings: DpopSettings = { ...baseSettings, nonceMode: mode, nonces }
        const [fast, jose] = await outcomes(dpopInput(proof), settings)
        assert.deepEqual(fast, jose, proof)

        if (faults.length === 0) assert.equal(fast.accepted, true, `sound proof refused: ${JSON.stringify(fast)}`)
        if (!fast.accepted) {
          assert.match(fast.code, /^GW_DPOP_(INVALID|NONCE)$/)
          const expected = faults.flatMap((fault) => reportedAs[fault])
          assert.ok(expected.includes(fast.category), `refused for ${fast.category}, injected ${faults.join(', ')}`)
          return
        }
        accepted++
        // Accepted: everything RFC 9449 §4.3 asks for holds, whatever was injected.
        assert.equal(header.typ, 'dpop+jwt')
        assert.equal(header.alg, alg)
        assert.equal(header.crit, undefined)
        assert.equal(fast.proof.jkt, jwkThumbprint(key.publicJwk))
        assert.equal(claims.htm, 'GET')
        assert.equal(claims.ath, ACCESS_TOKEN_HASH)
        assert.ok(typeof claims.jti === 'string' && claims.jti.length > 0 && claims.jti.length <= 256)
        assert.ok(typeof claims.iat === 'number' && claims.iat >= NOW - 60 && claims.iat <= NOW + 10)
        assert.ok(claims.nbf === undefined || (typeof claims.nbf === 'number' && claims.nbf <= NOW + 10))
        assert.ok(claims.exp === undefined || (typeof claims.exp === 'number' && claims.exp > NOW - 10))
        if (mode !== 'off' && claims.nonce !== undefined) assert.ok(nonce === 'current' || nonce === 'previous')
        if (mode === 'required') assert.ok(nonce === 'current' || nonce === 'previous')
        assert.equal(fast.proof.htu, RESOURCE_URL)
      }),
      { numRuns: RUNS, seed: seed(20260104) },
    )
    assert.ok(accepted > RUNS / 5, `only ${accepted} of ${RUNS} proofs were accepted`)
  })
})
