// Helpers for the client-authentication tests: partners, requests, signing keys and client assertions.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose'
import type { ClientAuthenticationInput } from '../../src/authorization-server/client-authentication/authenticate.ts'
import { OAuthError, type OAuthErrorCode } from '../../src/authorization-server/errors.ts'
import type { Partner, PartnerRegistry } from '../../src/authorization-server/partners.ts'
import { partnerSchema, type PartnerConfig } from '../../src/config/schema.ts'

export const assertionType = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

export interface SigningKey {
  readonly alg: string
  readonly kid: string
  readonly privateKey: CryptoKey
  readonly publicJwk: JWK
}

export async function signingKey(alg: string, kid = randomUUID()): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, alg === 'EdDSA' ? { crv: 'Ed25519' } : undefined)
  return { alg, kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid } }
}

export function partner(clientId: string, authentication: PartnerConfig['authentication']): Partner {
  const config = partnerSchema.parse({ clientId, authentication, grantTypes: ['client_credentials'], legacy: 'shared' })
  return {
    clientId,
    config,
    grantTypes: new Set(config.grantTypes),
    scopes: new Set(config.scopes),
    legacy: { clientId: 'legacy', authentication: 'client_secret_basic', secret: 'not-used' },
  }
}

export function registryOf(...partners: Partner[]): PartnerRegistry {
  const byId = new Map(partners.map((p) => [p.clientId, p]))
  return { get: (id) => byId.get(id), legacyCredentials: () => undefined, size: byId.size }
}

/** Awaits an authentication that must fail, asserting the OAuthError code and rule. */
export async function refusedWith(promise: Promise<unknown>, code: OAuthErrorCode, rule: string): Promise<OAuthError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  assert.ok(error instanceof OAuthError, `expected ${code} (${rule}), got ${error === undefined ? 'acceptance' : String(error)}`)
  assert.equal(error.code, code, error.detail)
  assert.equal(error.rule, rule, error.detail)
  return error
}

export function input(params: Record<string, string>, extra: Partial<ClientAuthenticationInput> = {}): ClientAuthenticationInput {
  return {
    params: new Map(Object.entries(params)),
    authorization: undefined,
    peer: { kind: 'absent' },
    peerCertificate: undefined,
    nowMs: Date.now(),
    ...extra,
  }
}

export const nowSeconds = () => Math.floor(Date.now() / 1000)

/** A client assertion for clientId to audience; claims set to undefined are left out. */
export async function signAssertion(key: SigningKey, clientId: string, audience: string, claims: JWTPayload = {}): Promise<string> {
  const now = nowSeconds()
  const payload: JWTPayload = { iss: clientId, sub: clientId, aud: audience, iat: now, exp: now + 60, jti: randomUUID(), ...claims }
  for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name]
  return new SignJWT(payload).setProtectedHeader({ alg: key.alg, kid: key.kid }).sign(key.privateKey)
}

export const jwtParams = (assertion: string, extra: Record<string, string> = {}) => ({
  client_assertion_type: assertionType,
  client_assertion: assertion,
  ...extra,
})
