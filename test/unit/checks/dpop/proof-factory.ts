// Builds DPoP proofs for the dpop tests: jose SignJWT for ordinary proofs, node:crypto for the
// shapes jose refuses to produce (no alg, small RSA keys, hand-made segments).

import assert from 'node:assert/strict'
import { constants, createPrivateKey, generateKeyPairSync, hash, sign, type JsonWebKey, type KeyObject } from 'node:crypto'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose'
import { checkDpop, checkDpopOffThread, type DpopAlgorithm, type DpopInput, type DpopSettings } from '../../../../src/checks/dpop/check.ts'
import { checkDpopWithJose } from '../../../support/dpop-verify-with-jose.ts'
import { createProofKeyCache, jwkThumbprint, type ProofKeyCache } from '../../../../src/checks/dpop/proof-key-cache.ts'
import { isGatewayError } from '../../../../src/errors.ts'
import type { DpopProof } from '../../../../src/types.ts'

export const NOW_MS = 1_760_000_000_500
export const NOW = Math.floor(NOW_MS / 1000)
export const RESOURCE_URL = 'https://api.bank.example/accounts/123/balances'
export const ACCESS_TOKEN = 'at-7f3c9a1e-opaque.token~value'
export const ACCESS_TOKEN_HASH = hash('sha256', ACCESS_TOKEN, 'base64url')

export const baseSettings: DpopSettings = {
  algorithms: ['ES256', 'PS256', 'EdDSA'],
  maxAgeSeconds: 60,
  maxFutureSeconds: 10,
  maxJtiLength: 256,
  nonceMode: 'off',
  nonces: undefined,
}

export interface TestKey {
  readonly alg: string
  readonly privateKey: CryptoKey | KeyObject
  readonly publicJwk: JWK
  readonly privateJwk: JWK
}

export async function generateTestKey(alg: DpopAlgorithm | 'RS256' | 'ES384'): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) })
  return { alg, privateKey, publicJwk: await exportJWK(publicKey), privateJwk: await exportJWK(privateKey) }
}

/** An RSA key of any size and public exponent, for PS256 proofs signed with signCompact (jose signs with none below 2048 bits). */
export function generateRsaKey(modulusLength: number, publicExponent = 65537): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength, publicExponent })
  return { alg: 'PS256', privateKey, publicJwk: publicKey.export({ format: 'jwk' }) as JWK, privateJwk: privateKey.export({ format: 'jwk' }) as JWK }
}

/** An RSA key below the FAPI minimum. */
export function generateWeakRsaKey(): TestKey {
  return generateRsaKey(1024)
}

/** base64url of a positive integer, big-endian, without leading zero bytes (RFC 7518 §2 Base64urlUInt). */
export function base64urlUInt(value: bigint): string {
  const hex = value.toString(16)
  return Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex').toString('base64url')
}

export function defaultClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { jti: `jti-${Math.random().toString(36).slice(2)}`, htm: 'GET', htu: RESOURCE_URL, iat: NOW, ath: ACCESS_TOKEN_HASH, ...overrides }
}

export interface ProofOptions {
  readonly header?: Record<string, unknown>
  readonly claims?: Record<string, unknown>
  readonly omitHeader?: readonly string[]
  readonly omitClaims?: readonly string[]
}

function omit(object: Record<string, unknown>, names: readonly string[] = []): Record<string, unknown> {
  return Object.fromEntries(Object.entries(object).filter(([name]) => !names.includes(name)))
}

/** A proof signed by jose's SignJWT (the header must carry the alg jose signs with). */
export async function makeProof(key: TestKey, options: ProofOptions = {}): Promise<string> {
  const header = omit({ typ: 'dpop+jwt', alg: key.alg, jwk: key.publicJwk, ...options.header }, options.omitHeader)
  const claims = omit(defaultClaims(options.claims), options.omitClaims)
  return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(key.privateKey)
}

export function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

/** Signs any header and payload with node:crypto using the JWS algorithm `signAs`. */
export function signCompact(header: unknown, claims: unknown, key: TestKey, signAs: string): string {
  const keyObject = keyObjectOf(key)
  const input = `${b64json(header)}.${b64json(claims)}`
  const data = Buffer.from(input)
  let signature: Buffer
  switch (signAs) {
    case 'ES256':
      signature = sign('sha256', data, { key: keyObject, dsaEncoding: 'ieee-p1363' })
      break
    case 'PS256':
      signature = sign('sha256', data, { key: keyObject, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
      break
    case 'RS256':
      signature = sign('sha256', data, keyObject)
      break
    case 'EdDSA':
      signature = sign(null, data, keyObject)
      break
    default:
      throw new TypeError(`cannot sign as ${signAs}`)
  }
  return `${input}.${signature.toString('base64url')}`
}

export function keyObjectOf(key: TestKey): KeyObject {
  return createPrivateKey({ key: key.privateJwk as JsonWebKey, format: 'jwk' })
}

/** The RFC 7638 thumbprint of the `jwk` in a proof's header, or undefined when there is none to take. */
export function headerJwkThumbprint(proof: string | undefined): string | undefined {
  try {
    const header = JSON.parse(Buffer.from(proof!.trim().split('.')[0]!, 'base64url').toString('utf8'))
    return jwkThumbprint(header.jwk)
  } catch {
    return undefined
  }
}

/** Unless `overrides` says otherwise, the token is bound to the key in the (first) proof's header. */
export function dpopInput(proof: string | readonly string[] | undefined, overrides: Partial<DpopInput> = {}): DpopInput {
  const proofHeaders = proof === undefined ? [] : typeof proof === 'string' ? [proof] : proof
  const boundJkt = headerJwkThumbprint(proofHeaders[0])
  return { method: 'GET', url: RESOURCE_URL, proofHeaders, accessToken: ACCESS_TOKEN, accessTokenHash: ACCESS_TOKEN_HASH, boundJkt, ...overrides }
}

export type Outcome = { readonly accepted: true; readonly proof: DpopProof } | { readonly accepted: false; readonly code: string; readonly category: string }

function outcomeOfError(error: unknown): Outcome {
  if (!isGatewayError(error)) throw error
  return { accepted: false, code: error.code, category: (error.detail ?? '').split(':')[0]! }
}

export function fastOutcome(input: DpopInput, settings: DpopSettings, nowMs: number, keys: ProofKeyCache = createProofKeyCache({ maxEntries: 8 })): Outcome {
  try {
    return { accepted: true, proof: checkDpop(input, settings, keys, nowMs) }
  } catch (error) {
    return outcomeOfError(error)
  }
}

export async function joseOutcome(input: DpopInput, settings: DpopSettings, nowMs: number): Promise<Outcome> {
  try {
    return { accepted: true, proof: await checkDpopWithJose(input, settings, createProofKeyCache({ maxEntries: 1 }), nowMs) }
  } catch (error) {
    return outcomeOfError(error)
  }
}

export async function offThreadOutcome(
  input: DpopInput,
  settings: DpopSettings,
  nowMs: number,
  keys: ProofKeyCache = createProofKeyCache({ maxEntries: 8 }),
): Promise<Outcome> {
  try {
    return { accepted: true, proof: await checkDpopOffThread(input, settings, keys, nowMs) }
  } catch (error) {
    return outcomeOfError(error)
  }
}

/**
 * Runs both implementations and returns their outcomes (the caller asserts they agree). The
 * fast path runs twice, its signature verified on the event loop and on the thread pool, and
 * those two must give the very same outcome.
 */
export async function bothOutcomes(input: DpopInput, settings: DpopSettings, nowMs: number, keys?: ProofKeyCache): Promise<[Outcome, Outcome]> {
  const fast = fastOutcome(input, settings, nowMs, keys)
  assert.deepEqual(await offThreadOutcome(input, settings, nowMs, keys), fast, 'checkDpopOffThread and checkDpop disagree')
  return [fast, await joseOutcome(input, settings, nowMs)]
}
