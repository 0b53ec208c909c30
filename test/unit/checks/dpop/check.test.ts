import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { hash, randomBytes } from 'node:crypto'
import { calculateJwkThumbprint, SignJWT, type JWK } from 'jose'
import { checkDpop, type DpopAlgorithm, type DpopInput, type DpopSettings } from '../../../../src/checks/dpop/check.ts'
import { createNonceIssuer, type NonceIssuer } from '../../../../src/checks/dpop/nonce.ts'
import { createProofKeyCache } from '../../../../src/checks/dpop/proof-key-cache.ts'
import {
  ACCESS_TOKEN_HASH,
  b64json,
  base64urlUInt,
  baseSettings,
  bothOutcomes,
  defaultClaims,
  dpopInput,
  generateTestKey,
  generateRsaKey,
  generateWeakRsaKey,
  makeProof,
  NOW,
  NOW_MS,
  RESOURCE_URL,
  signCompact,
  type Outcome,
  type TestKey,
} from './proof-factory.ts'

const V3_TOKEN = 'Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU'
const V3_ATH = 'fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo'
const V2_JKT = '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I'
const V4 =
  'eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71EOptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA'
const V5 =
  'eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg'
const V4_URL = 'https://resource.example.org/protectedresource'
const V4_IAT_MS = 1562262618 * 1000

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
const SLOT_SECONDS = 30

interface Kit {
  readonly key: TestKey
  readonly other: TestKey
  readonly rs256: TestKey
  readonly es384: TestKey
  readonly weakRsa: TestKey
  readonly rsa3072: TestKey
  readonly rsa4096: TestKey
  /** A real 2048-bit key with e = 3: its proofs verify, and are refused for the exponent alone. */
  readonly rsaExponent3: TestKey
  readonly nonces: NonceIssuer
}

interface Case {
  readonly proof?: string | readonly string[] | undefined
  readonly input?: Partial<DpopInput>
  readonly settings?: Partial<DpopSettings>
  readonly nowMs?: number
}

type Expected = 'accepted' | readonly [code: string, category: string]

interface Vector {
  readonly name: string
  readonly only?: DpopAlgorithm
  readonly make: (kit: Kit) => Case | Promise<Case>
  readonly expect: Expected
}

/** Replaces a proof's header, keeping payload and signature (for faults found before the signature). */
function withHeader(proof: string, header: unknown): string {
  const [, payload, signature] = proof.split('.')
  return `${b64json(header)}.${payload}.${signature}`
}

function withSignature(proof: string, signature: string): string {
  return `${proof.slice(0, proof.lastIndexOf('.'))}.${signature}`
}

function header(kit: Kit, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { typ: 'dpop+jwt', alg: kit.key.alg, jwk: kit.key.publicJwk, ...extra }
}

/** A PS256 proof signed with `signer`, carrying `jwk` (by default the signer's own public key). */
function rsaProof(kit: Kit, signer: TestKey, jwk: unknown = signer.publicJwk): string {
  return signCompact(header(kit, { jwk }), defaultClaims(), signer, 'PS256')
}

/** An odd number of exactly `bits` bits, base64url: a modulus as far as a JWK parser can tell. */
function craftedModulus(bits: number): string {
  const bytes = randomBytes(Math.ceil(bits / 8))
  const topBit = (bits - 1) % 8
  bytes[0] = (bytes[0]! & ((1 << topBit) - 1)) | (1 << topBit)
  bytes[bytes.length - 1]! |= 1
  return bytes.toString('base64url')
}

const proofWith =
  (claims: Record<string, unknown>) =>
  async (kit: Kit): Promise<Case> => ({ proof: await makeProof(kit.key, { claims }) })
const proofWithout =
  (claim: string) =>
  async (kit: Kit): Promise<Case> => ({ proof: await makeProof(kit.key, { omitClaims: [claim] }) })
const nonceSettings = (kit: Kit, nonceMode: DpopSettings['nonceMode']): Partial<DpopSettings> => ({ nonceMode, nonces: kit.nonces })
const invalid = (category: string): Expected => ['GW_DPOP_INVALID', category]
const BINDING_MISMATCH: Expected = ['GW_DPOP_BINDING_MISMATCH', 'cnf.jkt does not match the proof key']

const vectors: readonly Vector[] = [
  // Positives, including the conformance suite's "expect success" cases.
  { name: 'a valid proof', make: proofWith({}), expect: 'accepted' },
  {
    name: 'htu with query and fragment',
    make: proofWith({ htu: `${RESOURCE_URL}?allthedoorsonthisspaceshiphavebeen#programmedtohaveacheeryandsunnydisposition` }),
    expect: 'accepted',
  },
  {
    name: 'request with a query the htu omits',
    make: async (kit) => ({ proof: await makeProof(kit.key), input: { url: `${RESOURCE_URL}?from=2025-01-01&to=2025-02-01` } }),
    expect: 'accepted',
  },
  { name: 'htu with upper-case scheme and host', make: proofWith({ htu: 'HTTPS://API.BANK.EXAMPLE/accounts/123/balances' }), expect: 'accepted' },
  { name: 'htu with explicit :443', make: proofWith({ htu: 'https://api.bank.example:443/accounts/123/balances' }), expect: 'accepted' },
  { name: 'htu with a percent-encoded unreserved character', make: proofWith({ htu: 'https://api.bank.example/%61ccounts/123/balances' }), expect: 'accepted' },
  {
    name: 'extra header parameter and claim',
    make: async (kit) => ({ proof: await makeProof(kit.key, { header: { tx_id_key: 'abc', kid: 'k1' }, claims: { tx_id: 'xyz', nested: { a: [1] } } }) }),
    expect: 'accepted',
  },
  { name: 'nbf now and exp in 5 minutes', make: proofWith({ nbf: NOW, exp: NOW + 300 }), expect: 'accepted' },
  { name: 'iat 10 s early', make: proofWith({ iat: NOW - 10 }), expect: 'accepted' },
  { name: 'iat 8 s late', make: proofWith({ iat: NOW + 8 }), expect: 'accepted' },
  { name: 'iat exactly maxAgeSeconds old', make: proofWith({ iat: NOW - 60 }), expect: 'accepted' },
  { name: 'iat exactly maxFutureSeconds ahead', make: proofWith({ iat: NOW + 10 }), expect: 'accepted' },
  { name: 'non-integer iat', make: proofWith({ iat: NOW - 0.5 }), expect: 'accepted' },
  { name: 'nbf at the edge of the skew', make: proofWith({ nbf: NOW + 10 }), expect: 'accepted' },
  { name: 'exp just inside the skew', make: proofWith({ exp: NOW - 9 }), expect: 'accepted' },
  { name: 'jti of maxJtiLength', make: proofWith({ jti: 'j'.repeat(256) }), expect: 'accepted' },
  {
    name: 'POST with htm POST',
    make: async (kit) => ({ proof: await makeProof(kit.key, { claims: { htm: 'POST' } }), input: { method: 'POST' } }),
    expect: 'accepted',
  },
  { name: 'header value with surrounding whitespace', make: async (kit) => ({ proof: [` ${await makeProof(kit.key)}\t`] }), expect: 'accepted' },
  {
    name: 'jwk with use, alg, kid and ext',
    make: async (kit) => ({
      proof: await makeProof(kit.key, { header: { jwk: { ...kit.key.publicJwk, use: 'sig', alg: kit.key.alg, kid: 'k', ext: true, key_ops: ['verify'] } } }),
    }),
    expect: 'accepted',
  },
  {
    name: 'only this algorithm configured',
    make: async (kit) => ({ proof: await makeProof(kit.key), settings: { algorithms: [kit.key.alg as DpopAlgorithm] } }),
    expect: 'accepted',
  },

  // RFC 9449 §4.3 check 1.
  { name: 'no DPoP header', make: () => ({ proof: undefined }), expect: ['GW_DPOP_MISSING', ''] },
  {
    name: 'two DPoP headers',
    make: async (kit) => ({ proof: [await makeProof(kit.key), await makeProof(kit.key)] }),
    expect: ['GW_DPOP_MULTIPLE', '2 DPoP headers'],
  },
  {
    name: 'two proofs joined in one header',
    make: async (kit) => ({ proof: `${await makeProof(kit.key)}, ${await makeProof(kit.key)}` }),
    expect: ['GW_DPOP_MULTIPLE', 'DPoP header holds a list'],
  },

  // Check 2.
  { name: 'two-part JWT', make: async (kit) => ({ proof: (await makeProof(kit.key)).split('.').slice(0, 2).join('.') }), expect: invalid('malformed') },
  { name: 'four parts', make: async (kit) => ({ proof: `${await makeProof(kit.key)}.AAAA` }), expect: invalid('malformed') },
  { name: 'empty header value', make: () => ({ proof: '' }), expect: invalid('malformed') },
  { name: 'whitespace-only header value', make: () => ({ proof: ' \t ' }), expect: invalid('malformed') },
  { name: 'long run of spaces', make: () => ({ proof: `${' '.repeat(16_000)}x${' '.repeat(16_000)}` }), expect: invalid('malformed') },
  { name: 'proof over 8 KB', make: proofWith({ padding: 'p'.repeat(8200) }), expect: invalid('malformed') },
  { name: 'base64 padding', make: async (kit) => ({ proof: `${await makeProof(kit.key)}==` }), expect: invalid('malformed') },
  {
    name: 'base64 (not url) alphabet',
    make: async (kit) => {
      const proof = await makeProof(kit.key)
      return { proof: `${proof.slice(0, -1)}+` }
    },
    expect: invalid('malformed'),
  },
  {
    name: 'non-canonical base64url signature (same bytes, other spelling)',
    make: async (kit) => {
      const proof = await makeProof(kit.key)
      return { proof: proof.slice(0, -1) + ALPHABET[ALPHABET.indexOf(proof.at(-1)!) ^ 1] }
    },
    expect: invalid('malformed'),
  },
  {
    name: 'header is not JSON',
    make: async (kit) => {
      const [, p, s] = (await makeProof(kit.key)).split('.')
      return { proof: `${Buffer.from('{"typ":').toString('base64url')}.${p}.${s}` }
    },
    expect: invalid('malformed'),
  },
  { name: 'header is a JSON array', make: async (kit) => ({ proof: withHeader(await makeProof(kit.key), [header(kit)]) }), expect: invalid('malformed') },
  {
    name: 'header is not UTF-8',
    make: async (kit) => {
      const [, p, s] = (await makeProof(kit.key)).split('.')
      return { proof: `${Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url')}.${p}.${s}` }
    },
    expect: invalid('malformed'),
  },
  {
    name: 'claims are not a JSON object (signed)',
    make: (kit) => ({ proof: signCompact(header(kit), 'just a string', kit.key, kit.key.alg) }),
    expect: invalid('malformed'),
  },

  // Checks 3-5: header.
  { name: 'missing typ', make: async (kit) => ({ proof: await makeProof(kit.key, { omitHeader: ['typ'] }) }), expect: invalid('typ') },
  {
    name: 'typ dpop+jwt+wrongyousee',
    make: async (kit) => ({ proof: await makeProof(kit.key, { header: { typ: 'dpop+jwt+wrongyousee' } }) }),
    expect: invalid('typ'),
  },
  { name: 'typ in upper case', make: async (kit) => ({ proof: await makeProof(kit.key, { header: { typ: 'DPOP+JWT' } }) }), expect: invalid('typ') },
  {
    name: 'typ application/dpop+jwt',
    make: async (kit) => ({ proof: await makeProof(kit.key, { header: { typ: 'application/dpop+jwt' } }) }),
    expect: invalid('typ'),
  },
  { name: 'typ JWT', make: async (kit) => ({ proof: await makeProof(kit.key, { header: { typ: 'JWT' } }) }), expect: invalid('typ') },
  {
    name: 'crit header (no extension is understood)',
    make: (kit) => ({ proof: signCompact(header(kit, { crit: ['b64'], b64: true }), defaultClaims(), kit.key, kit.key.alg) }),
    expect: invalid('crit'),
  },
  {
    name: 'missing alg (signed)',
    make: (kit) => {
      const { alg: _, ...rest } = header(kit)
      return { proof: signCompact(rest, defaultClaims(), kit.key, kit.key.alg) }
    },
    expect: invalid('alg'),
  },
  {
    name: 'alg renamed to alg2 (conformance suite)',
    make: (kit) => {
      const { alg, ...rest } = header(kit)
      return { proof: signCompact({ ...rest, alg2: alg }, defaultClaims(), kit.key, kit.key.alg) }
    },
    expect: invalid('alg'),
  },
  {
    name: 'alg none without signature',
    make: async (kit) => ({ proof: withSignature(withHeader(await makeProof(kit.key), header(kit, { alg: 'none' })), '') }),
    expect: invalid('alg'),
  },
  {
    name: 'alg none with a signature',
    make: async (kit) => ({ proof: withHeader(await makeProof(kit.key), header(kit, { alg: 'none' })) }),
    expect: invalid('alg'),
  },
  {
    name: 'HS256 with an oct jwk',
    make: async () => {
      const secret = randomBytes(32)
      const jwk = { kty: 'oct', k: secret.toString('base64url') } as JWK // jose's header type forbids a private jwk
      const proof = await new SignJWT(defaultClaims()).setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk }).sign(secret)
      return { proof }
    },
    expect: invalid('alg'),
  },
  { name: 'RS256-signed with an RSA key', make: async (kit) => ({ proof: await makeProof(kit.rs256) }), expect: invalid('alg') },
  { name: 'ES384 (not a FAPI algorithm)', make: async (kit) => ({ proof: await makeProof(kit.es384) }), expect: invalid('alg') },
  {
    name: 'alg allowed by FAPI but not configured',
    make: async (kit) => ({ proof: await makeProof(kit.key), settings: { algorithms: baseSettings.algorithms.filter((alg) => alg !== kit.key.alg) } }),
    expect: invalid('alg'),
  },
  { name: 'alg not a string', make: async (kit) => ({ proof: withHeader(await makeProof(kit.key), header(kit, { alg: ['ES256'] })) }), expect: invalid('alg') },
  {
    name: 'alg that does not match the jwk key type',
    make: async (kit) => ({ proof: withHeader(await makeProof(kit.key), header(kit, { alg: kit.key.alg === 'ES256' ? 'EdDSA' : 'ES256' })) }),
    expect: invalid('alg'),
  },
  {
    name: 'ES256 header with a P-384 jwk',
    make: async (kit) => ({ proof: withHeader(await makeProof(kit.key), header(kit, { alg: 'ES256', jwk: kit.es384.publicJwk })) }),
    expect: invalid('alg'),
  },
  {
    name: 'EdDSA header with an X25519 jwk',
    make: async (kit) => ({
      proof: withHeader(
        await makeProof(kit.key),
        header(kit, { alg: 'EdDSA', jwk: { kty: 'OKP', crv: 'X25519', x: Buffer.alloc(32, 9).toString('base64url') } }),
      ),
    }),
    expect: invalid('alg'),
  },

  // Checks 5-7: jwk.
  { name: 'missing jwk', make: async (kit) => ({ proof: await makeProof(kit.key, { omitHeader: ['jwk'] }) }), expect: invalid('jwk') },
  {
    name: 'jwk is a string',
    make: async (kit) => ({ proof: await makeProof(kit.key, { header: { jwk: JSON.stringify(kit.key.publicJwk) } }) }),
    expect: invalid('jwk'),
  },
  {
    name: 'jwk includes the private key (d)',
    make: async (kit) => ({ proof: await makeProof(kit.key, { header: { jwk: kit.key.privateJwk } }) }),
    expect: invalid('jwk private'),
  },
  {
    name: 'jwk with a k member',
    make: async (kit) => ({ proof: await makeProof(kit.key, { header: { jwk: { ...kit.key.publicJwk, k: 'AAAA' } } }) }),
    expect: invalid('jwk private'),
  },
  {
    name: 'jwk with a p member',
    make: async (kit) => ({ proof: await makeProof(kit.key, { header: { jwk: { ...kit.key.publicJwk, p: 'AAAA' } } }) }),
    expect: invalid('jwk private'),
  },
  {
    name: 'jwk with an oth member',
    make: async (kit) => ({ proof: await makeProof(kit.key, { header: { jwk: { ...kit.key.publicJwk, oth: [] } } }) }),
    expect: invalid('jwk private'),
  },
  {
    name: 'jwk with use enc',
    make: async (kit) => ({ proof: await makeProof(kit.key, { header: { jwk: { ...kit.key.publicJwk, use: 'enc' } } }) }),
    expect: invalid('jwk'),
  },
  {
    name: 'jwk with another alg',
    make: async (kit) => ({ proof: await makeProof(kit.key, { header: { jwk: { ...kit.key.publicJwk, alg: 'RS256' } } }) }),
    expect: invalid('jwk'),
  },
  {
    name: 'jwk with key_ops sign',
    make: async (kit) => ({ proof: await makeProof(kit.key, { header: { jwk: { ...kit.key.publicJwk, key_ops: ['sign'] } } }) }),
    expect: invalid('jwk'),
  },
  {
    name: 'jwk with a non-boolean ext',
    make: async (kit) => ({ proof: await makeProof(kit.key, { header: { jwk: { ...kit.key.publicJwk, ext: 'yes' } } }) }),
    expect: invalid('jwk'),
  },
  {
    name: 'jwk point not on the curve',
    only: 'ES256',
    make: async (kit) => ({ proof: await makeProof(kit.key, { header: { jwk: { ...kit.key.publicJwk, y: Buffer.alloc(32, 1).toString('base64url') } } }) }),
    expect: invalid('jwk'),
  },
  {
    name: 'jwk without its public key member (x or n)',
    make: async (kit) => {
      const { x: _x, n: _n, ...jwk } = kit.key.publicJwk as Record<string, unknown>
      return { proof: await makeProof(kit.key, { header: { jwk } }) }
    },
    expect: invalid('jwk'),
  },
  {
    name: 'jwk member with a non-canonical base64url spelling (signed)',
    make: async (kit) => {
      const member = kit.key.alg === 'PS256' ? 'n' : 'x'
      const value = (kit.key.publicJwk as Record<string, string>)[member]!
      const respelled = value.slice(0, -1) + ALPHABET[ALPHABET.indexOf(value.at(-1)!) ^ 1]
      assert.ok(Buffer.from(respelled, 'base64url').equals(Buffer.from(value, 'base64url')))
      return { proof: await makeProof(kit.key, { header: { jwk: { ...kit.key.publicJwk, [member]: respelled } } }) }
    },
    expect: invalid('jwk'),
  },
  {
    name: 'PS256 with a 1024-bit RSA key',
    only: 'PS256',
    make: (kit) => ({ proof: signCompact(header(kit, { jwk: kit.weakRsa.publicJwk }), defaultClaims(), kit.weakRsa, 'PS256') }),
    expect: invalid('jwk'),
  },
  // RSA keys are bounded so that no proof costs more to verify than an ordinary key's: 2048 to 4096 bits, e = 65537.
  { name: 'PS256 with a 3072-bit RSA key', only: 'PS256', make: (kit) => ({ proof: rsaProof(kit, kit.rsa3072) }), expect: 'accepted' },
  { name: 'PS256 with a 4096-bit RSA key', only: 'PS256', make: (kit) => ({ proof: rsaProof(kit, kit.rsa4096) }), expect: 'accepted' },
  {
    name: 'PS256 with a (correctly signed) RSA key whose e is 3',
    only: 'PS256',
    make: (kit) => ({ proof: rsaProof(kit, kit.rsaExponent3) }),
    expect: invalid('jwk'),
  },
  {
    name: 'PS256 with a 3072-bit modulus and a 3071-bit public exponent',
    only: 'PS256',
    make: (kit) => ({ proof: rsaProof(kit, kit.rsa3072, { ...kit.rsa3072.publicJwk, e: base64urlUInt((1n << 3070n) | (1n << 1000n) | 1n) }) }),
    expect: invalid('jwk'),
  },
  {
    name: 'PS256 with a 4097-bit modulus',
    only: 'PS256',
    make: (kit) => ({ proof: rsaProof(kit, kit.key, { kty: 'RSA', n: craftedModulus(4097), e: 'AQAB' }) }),
    expect: invalid('jwk'),
  },
  {
    name: 'PS256 with an 8192-bit modulus',
    only: 'PS256',
    make: (kit) => ({ proof: rsaProof(kit, kit.key, { kty: 'RSA', n: craftedModulus(8192), e: 'AQAB' }) }),
    expect: invalid('jwk'),
  },

  // Check 12b, made before the signature: a proof by another key than cnf.jkt's costs no signature check.
  {
    name: 'proof by a key the token is not bound to',
    make: async (kit) => ({ proof: await makeProof(kit.key), input: { boundJkt: await calculateJwkThumbprint(kit.other.publicJwk) } }),
    expect: BINDING_MISMATCH,
  },
  {
    name: 'proof by a key the token is not bound to, with a broken signature',
    make: async (kit) => ({
      proof: withSignature(await makeProof(kit.key), (await makeProof(kit.other)).split('.')[2]!),
      input: { boundJkt: await calculateJwkThumbprint(kit.other.publicJwk) },
    }),
    expect: BINDING_MISMATCH,
  },
  { name: 'token without cnf.jkt', make: async (kit) => ({ proof: await makeProof(kit.key), input: { boundJkt: undefined } }), expect: BINDING_MISMATCH },
  {
    name: 'PS256 with an 8192-bit modulus, the token bound to another key',
    only: 'PS256',
    make: async (kit) => ({
      proof: rsaProof(kit, kit.key, { kty: 'RSA', n: craftedModulus(8192), e: 'AQAB' }),
      input: { boundJkt: await calculateJwkThumbprint(kit.key.publicJwk) },
    }),
    expect: invalid('jwk'),
  },

  // Check 6: signature.
  {
    name: 'corrupted signature',
    make: async (kit) => {
      const proof = await makeProof(kit.key)
      const sig = Buffer.from(proof.split('.')[2]!, 'base64url')
      sig[10]! ^= 0x01
      return { proof: withSignature(proof, sig.toString('base64url')) }
    },
    expect: invalid('signature'),
  },
  { name: 'empty signature', make: async (kit) => ({ proof: withSignature(await makeProof(kit.key), '') }), expect: invalid('signature') },
  {
    name: 'signed by another key than the jwk',
    make: async (kit) => ({ proof: await makeProof(kit.other, { header: { jwk: kit.key.publicJwk } }) }),
    expect: invalid('signature'),
  },
  {
    name: 'claims changed after signing',
    make: async (kit) => {
      const [h, , s] = (await makeProof(kit.key)).split('.')
      return { proof: `${h}.${b64json(defaultClaims({ htm: 'DELETE' }))}.${s}` }
    },
    expect: invalid('signature'),
  },

  // Check 3: claims present.
  ...(['jti', 'htm', 'htu', 'iat', 'ath'] as const).map((claim): Vector => ({ name: `missing ${claim}`, make: proofWithout(claim), expect: invalid(claim) })),

  // Checks 8-12.
  { name: 'htm PUT for GET', make: proofWith({ htm: 'PUT' }), expect: invalid('htm') },
  { name: 'htm in lower case', make: proofWith({ htm: 'get' }), expect: invalid('htm') },
  { name: 'htu path different (ohnonotagain)', make: proofWith({ htu: `${RESOURCE_URL}ohnonotagain` }), expect: invalid('htu') },
  { name: 'htu path with a trailing slash', make: proofWith({ htu: `${RESOURCE_URL}/` }), expect: invalid('htu') },
  { name: 'htu of another host', make: proofWith({ htu: 'https://api.other.example/accounts/123/balances' }), expect: invalid('htu') },
  { name: 'htu with http scheme', make: proofWith({ htu: 'http://api.bank.example/accounts/123/balances' }), expect: invalid('htu') },
  { name: 'htu relative', make: proofWith({ htu: '/accounts/123/balances' }), expect: invalid('htu') },
  { name: 'htu not a string', make: proofWith({ htu: { href: RESOURCE_URL } }), expect: invalid('htu') },
  {
    name: 'request URL not an absolute URI',
    make: async (kit) => ({ proof: await makeProof(kit.key), input: { url: '/accounts/123/balances' } }),
    expect: invalid('htu'),
  },
  { name: 'iat 1 h in the future', make: proofWith({ iat: NOW + 3600 }), expect: invalid('iat') },
  { name: 'iat 1 h in the past', make: proofWith({ iat: NOW - 3600 }), expect: invalid('iat') },
  { name: 'iat one second too old', make: proofWith({ iat: NOW - 61 }), expect: invalid('iat') },
  { name: 'iat one second too far ahead', make: proofWith({ iat: NOW + 11 }), expect: invalid('iat') },
  { name: 'iat as a string', make: proofWith({ iat: String(NOW) }), expect: invalid('iat') },
  { name: 'nbf beyond the skew', make: proofWith({ nbf: NOW + 11 }), expect: invalid('nbf') },
  { name: 'nbf not a number', make: proofWith({ nbf: null }), expect: invalid('nbf') },
  { name: 'exp passed', make: proofWith({ exp: NOW - 10 }), expect: invalid('exp') },
  { name: 'exp not a number', make: proofWith({ exp: 'soon' }), expect: invalid('exp') },
  { name: 'empty jti', make: proofWith({ jti: '' }), expect: invalid('jti') },
  { name: 'jti over maxJtiLength', make: proofWith({ jti: 'j'.repeat(257) }), expect: invalid('jti') },
  { name: 'jti not a string', make: proofWith({ jti: 12345 }), expect: invalid('jti') },
  { name: 'wrong ath', make: proofWith({ ath: hash('sha256', 'another token', 'base64url') }), expect: invalid('ath') },
  {
    name: 'ath of the token in another encoding',
    make: proofWith({ ath: hash('sha256', 'at-7f3c9a1e-opaque.token~value', 'base64') }),
    expect: invalid('ath'),
  },
  { name: 'ath not a string', make: proofWith({ ath: 1 }), expect: invalid('ath') },
  {
    name: 'proof for another access token',
    make: async (kit) => ({ proof: await makeProof(kit.key), input: { accessToken: 'other', accessTokenHash: hash('sha256', 'other', 'base64url') } }),
    expect: invalid('ath'),
  },

  // Check 10 and RFC 9449 §8-9: nonces.
  {
    name: 'nonce required and current',
    make: async (kit) => ({ proof: await makeProof(kit.key, { claims: { nonce: kit.nonces.current(NOW_MS) } }), settings: nonceSettings(kit, 'required') }),
    expect: 'accepted',
  },
  {
    name: 'nonce required and from the previous slot',
    make: async (kit) => ({
      proof: await makeProof(kit.key, { claims: { nonce: kit.nonces.current(NOW_MS - SLOT_SECONDS * 1000) } }),
      settings: nonceSettings(kit, 'required'),
    }),
    expect: 'accepted',
  },
  {
    name: 'nonce required, none sent',
    make: async (kit) => ({ proof: await makeProof(kit.key), settings: nonceSettings(kit, 'required') }),
    expect: ['GW_DPOP_NONCE', 'nonce'],
  },
  {
    name: 'nonce required, stale',
    make: async (kit) => ({
      proof: await makeProof(kit.key, { claims: { nonce: kit.nonces.current(NOW_MS - 2 * SLOT_SECONDS * 1000) } }),
      settings: nonceSettings(kit, 'required'),
    }),
    expect: ['GW_DPOP_NONCE', 'nonce'],
  },
  {
    name: 'nonce required, not issued here',
    make: async (kit) => ({ proof: await makeProof(kit.key, { claims: { nonce: 'eyJ7S_zG.eyJH0-Z.HX4w-7v' } }), settings: nonceSettings(kit, 'required') }),
    expect: ['GW_DPOP_NONCE', 'nonce'],
  },
  {
    name: 'nonce required, not a string',
    make: async (kit) => ({ proof: await makeProof(kit.key, { claims: { nonce: 42 } }), settings: nonceSettings(kit, 'required') }),
    expect: ['GW_DPOP_NONCE', 'nonce'],
  },
  {
    name: 'nonce required, none sent, proof otherwise invalid',
    make: async (kit) => ({ proof: await makeProof(kit.key, { claims: { htm: 'PUT' } }), settings: nonceSettings(kit, 'required') }),
    expect: invalid('htm'),
  },
  {
    name: 'nonce optional, none sent',
    make: async (kit) => ({ proof: await makeProof(kit.key), settings: nonceSettings(kit, 'optional') }),
    expect: 'accepted',
  },
  {
    name: 'nonce optional and valid',
    make: async (kit) => ({ proof: await makeProof(kit.key, { claims: { nonce: kit.nonces.current(NOW_MS) } }), settings: nonceSettings(kit, 'optional') }),
    expect: 'accepted',
  },
  {
    name: 'nonce optional but invalid',
    make: async (kit) => ({ proof: await makeProof(kit.key, { claims: { nonce: 'nope' } }), settings: nonceSettings(kit, 'optional') }),
    expect: ['GW_DPOP_NONCE', 'nonce'],
  },
  {
    name: 'nonce off ignores a nonce claim',
    make: async (kit) => ({ proof: await makeProof(kit.key, { claims: { nonce: 'anything' } }), settings: { nonceMode: 'off', nonces: kit.nonces } }),
    expect: 'accepted',
  },
  {
    name: 'nonce required without an issuer fails closed',
    make: async (kit) => ({ proof: await makeProof(kit.key), settings: { nonceMode: 'required', nonces: undefined } }),
    expect: ['GW_INTERNAL', 'dpop'],
  },
]

function category(outcome: Outcome): Expected {
  return outcome.accepted ? 'accepted' : [outcome.code, outcome.category]
}

describe('checkDpop and checkDpopWithJose: generated proofs', async () => {
  const kits = new Map<DpopAlgorithm, Kit>()
  const [rs256, es384, weakRsa] = [await generateTestKey('RS256'), await generateTestKey('ES384'), generateWeakRsaKey()]
  const [rsa3072, rsa4096, rsaExponent3] = [generateRsaKey(3072), generateRsaKey(4096), generateRsaKey(2048, 3)]
  const nonces = createNonceIssuer({ secret: randomBytes(32), slotSeconds: SLOT_SECONDS })
  for (const alg of ['ES256', 'PS256', 'EdDSA'] as const) {
    kits.set(alg, { key: await generateTestKey(alg), other: await generateTestKey(alg), rs256, es384, weakRsa, rsa3072, rsa4096, rsaExponent3, nonces })
  }

  for (const [alg, kit] of kits) {
    describe(alg, () => {
      for (const vector of vectors) {
        if (vector.only !== undefined && vector.only !== alg) continue
        test(vector.name, async () => {
          const made = await vector.make(kit)
          const input = dpopInput(made.proof, made.input)
          const settings = { ...baseSettings, ...made.settings }
          const [fast, jose] = await bothOutcomes(input, settings, made.nowMs ?? NOW_MS)
          assert.deepEqual(category(fast), vector.expect, `fast path: ${JSON.stringify(fast)}`)
          assert.deepEqual(category(jose), vector.expect, `jose reference: ${JSON.stringify(jose)}`)
          if (fast.accepted && jose.accepted) {
            assert.deepEqual(fast.proof, jose.proof)
            const { jwk } = JSON.parse(Buffer.from(input.proofHeaders[0]!.trim().split('.')[0]!, 'base64url').toString())
            assert.equal(fast.proof.jkt, await calculateJwkThumbprint(jwk))
            assert.equal(fast.proof.htm, input.method)
            assert.equal(fast.proof.htu, RESOURCE_URL)
            const claims = JSON.parse(Buffer.from(input.proofHeaders[0]!.trim().split('.')[1]!, 'base64url').toString())
            assert.equal(fast.proof.jti, claims.jti)
            assert.equal(fast.proof.iat, claims.iat)
            assert.equal(fast.proof.nonce, settings.nonceMode === 'off' ? undefined : claims.nonce)
          }
        })
      }
    })
  }
})

describe('checkDpop: RFC 9449 test vectors', () => {
  const v4Input = dpopInput(V4, { url: V4_URL, accessToken: V3_TOKEN, accessTokenHash: V3_ATH })

  test('V3: ath of the RFC 9449 §7.1 access token', () => {
    assert.equal(hash('sha256', V3_TOKEN, 'base64url'), V3_ATH)
  })

  test('V4 is accepted with the clock at its iat, and its key has the V2 thumbprint', async () => {
    const [fast, jose] = await bothOutcomes(v4Input, baseSettings, V4_IAT_MS)
    const expected = { jkt: V2_JKT, jti: 'e1j3V_bKic8-LAEB', iat: 1562262618, htm: 'GET', htu: V4_URL, nonce: undefined }
    assert.deepEqual(fast, { accepted: true, proof: expected })
    assert.deepEqual(jose, { accepted: true, proof: expected })
  })

  const rejections: ReadonlyArray<readonly [string, DpopInput, number, string]> = [
    ['another URL', { ...v4Input, url: 'https://resource.example.org/otherresource' }, V4_IAT_MS, 'htu'],
    ['another access token', { ...v4Input, accessToken: 'other', accessTokenHash: hash('sha256', 'other', 'base64url') }, V4_IAT_MS, 'ath'],
    ['the real clock', v4Input, Date.now(), 'iat'],
    ['another method', { ...v4Input, method: 'POST' }, V4_IAT_MS, 'htm'],
  ]
  for (const [what, input, nowMs, expected] of rejections) {
    test(`V4 is rejected for ${what}`, async () => {
      const [fast, jose] = await bothOutcomes(input, baseSettings, nowMs)
      assert.deepEqual(category(fast), invalid(expected))
      assert.deepEqual(category(jose), invalid(expected))
    })
  }

  test('V5 (a token-endpoint proof without ath) is rejected at a resource', async () => {
    const atItsOwnEndpoint = dpopInput(V5, { method: 'POST', url: 'https://server.example.com/token', accessToken: V3_TOKEN, accessTokenHash: V3_ATH })
    const atTheResource = { ...v4Input, proofHeaders: [V5] }
    for (const [input, nowMs] of [
      [atItsOwnEndpoint, 1562262616_000],
      [atTheResource, 1562262616_000],
    ] as const) {
      const [fast, jose] = await bothOutcomes(input, baseSettings, nowMs)
      assert.deepEqual(category(fast), invalid('ath'))
      assert.deepEqual(category(jose), invalid('ath'))
    }
  })
})

describe('checkDpop: the proof key cache', () => {
  test('a second proof with the same key is a cache hit and gives the same jkt', async () => {
    const key = await generateTestKey('ES256')
    const keys = createProofKeyCache({ maxEntries: 4 })
    const first = checkDpop(dpopInput(await makeProof(key)), baseSettings, keys, NOW_MS)
    const second = checkDpop(dpopInput(await makeProof(key, { header: { jwk: { ...key.publicJwk, kid: 'extra' } } })), baseSettings, keys, NOW_MS)
    assert.equal(second.jkt, first.jkt)
    assert.deepEqual([keys.hits, keys.misses, keys.size], [1, 1, 1])
  })

  test('a cached key still fails on a bad signature or a private member', async () => {
    const key = await generateTestKey('EdDSA')
    const keys = createProofKeyCache({ maxEntries: 4 })
    checkDpop(dpopInput(await makeProof(key)), baseSettings, keys, NOW_MS)
    const forged = await makeProof(await generateTestKey('EdDSA'), { header: { jwk: key.publicJwk } })
    assert.throws(() => checkDpop(dpopInput(forged), baseSettings, keys, NOW_MS), { code: 'GW_DPOP_INVALID', detail: 'signature: does not verify' })
    const withD = await makeProof(key, { header: { jwk: key.privateJwk } })
    assert.throws(() => checkDpop(dpopInput(withD), baseSettings, keys, NOW_MS), { code: 'GW_DPOP_INVALID', detail: 'jwk private: has private key members' })
  })

  test('the ath comparison uses the precomputed hash', async () => {
    const key = await generateTestKey('ES256')
    const proof = await makeProof(key)
    assert.throws(
      () =>
        checkDpop(dpopInput(proof, { accessTokenHash: `${ACCESS_TOKEN_HASH.slice(0, -1)}x` }), baseSettings, createProofKeyCache({ maxEntries: 1 }), NOW_MS),
      { code: 'GW_DPOP_INVALID' },
    )
  })
})

describe('checkDpop: ES256 signatures converted from R || S to DER', () => {
  test('R or S with leading zero bytes or the high bit set verify, as with jose', async () => {
    const key = await generateTestKey('ES256')
    const keys = createProofKeyCache({ maxEntries: 1 })
    const seen = { leadingZero: 0, highBit: 0 }
    // About 1 in 128 signatures has a leading zero byte in R or S; 2,000 proofs find several.
    for (let i = 0; i < 2000 && (seen.leadingZero < 3 || seen.highBit < 3); i++) {
      const proof = signCompact(header({ key } as Kit), defaultClaims({ jti: `edge-${i}` }), key, 'ES256')
      const signature = Buffer.from(proof.split('.')[2]!, 'base64url')
      const leadingZero = signature[0] === 0 || signature[32] === 0
      const highBit = (signature[0]! & 0x80) !== 0 && (signature[32]! & 0x80) !== 0
      if (!leadingZero && !highBit) continue
      if (leadingZero) seen.leadingZero++
      if (highBit) seen.highBit++
      const [fast, jose] = await bothOutcomes(dpopInput(proof), baseSettings, NOW_MS, keys)
      assert.deepEqual([fast.accepted, jose.accepted], [true, true], `signature ${signature.toString('hex')}`)
    }
    assert.ok(seen.leadingZero >= 3 && seen.highBit >= 3, JSON.stringify(seen))
  })

  test('R or S of zero, or equal to the group order, is refused, as with jose', async () => {
    const key = await generateTestKey('ES256')
    const good = signCompact(header({ key } as Kit), defaultClaims(), key, 'ES256')
    const signature = Buffer.from(good.split('.')[2]!, 'base64url')
    const order = Buffer.from('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551', 'hex')
    const variants = [
      Buffer.concat([Buffer.alloc(32), signature.subarray(32)]),
      Buffer.concat([signature.subarray(0, 32), Buffer.alloc(32)]),
      Buffer.concat([order, signature.subarray(32)]),
      Buffer.concat([signature.subarray(0, 32), order]),
      Buffer.alloc(64, 0xff),
    ]
    for (const variant of variants) {
      const forged = withSignature(good, variant.toString('base64url'))
      const [fast, jose] = await bothOutcomes(dpopInput(forged), baseSettings, NOW_MS)
      assert.deepEqual(fast, { accepted: false, code: 'GW_DPOP_INVALID', category: 'signature' })
      assert.deepEqual(jose, fast)
    }
  })
})
