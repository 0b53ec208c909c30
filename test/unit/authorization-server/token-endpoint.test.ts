// The token endpoint's last step: the binding is recorded before the partner sees the token, and a
// token whose record cannot be written is not handed out. Real legacy server, real legacy client, real
// client authentication and DPoP proofs; the one stand-in is a binding registry whose store fails on
// write, since a Redis that answers the assertion's jti claim and then fails the next command cannot be
// arranged deterministically.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { startLegacyServer } from '../../../dev/legacy-server.ts'
import { createLegacyClient } from '../../../src/authorization-server/legacy-client.ts'
import { createClientAuthenticator } from '../../../src/authorization-server/client-authentication/authenticate.ts'
import { answerTokenRequest, type TokenEndpointDeps } from '../../../src/authorization-server/token-endpoint.ts'
import { hashToken } from '../../../src/checks/credentials.ts'
import { OAuthError } from '../../../src/authorization-server/errors.ts'
import { createMemoryReplayStore } from '../../../src/replay/memory-store.ts'
import { createBindingRegistry, type BindingRegistry } from '../../../src/tokens/binding-registry.ts'
import { createProofKeyCache } from '../../../src/checks/dpop/proof-key-cache.ts'
import { createProof, generateDpopKey } from '../../../src/client/partner-client.ts'
import { partnerSchema } from '../../../src/config/schema.ts'
import type { Partner, PartnerRegistry } from '../../../src/authorization-server/partners.ts'
import { jwtParams, signAssertion, signingKey } from '../../support/client-authentication.ts'
import { testPki } from '../../support/gateway.ts'

const ISSUER = 'https://api.bank.example'
const TOKEN_URL = `${ISSUER}/oauth2/token`
const legacy = await startLegacyServer({
  pki: await testPki(),
  clients: [{ clientId: 'gw-fintech', clientSecret: 'legacy-secret', grantTypes: ['client_credentials'], scopes: ['accounts'] }],
})
after(() => legacy.close())

const key = await signingKey('ES256')
const config = partnerSchema.parse({
  clientId: 'fintech',
  authentication: { method: 'private_key_jwt', jwks: { keys: [key.publicJwk] } },
  grantTypes: ['client_credentials'],
  scopes: ['accounts'],
  legacy: { clientId: 'gw-fintech', secretEnv: 'UNUSED' },
})
const partner: Partner = {
  clientId: 'fintech',
  config,
  grantTypes: new Set(config.grantTypes),
  scopes: new Set(config.scopes),
  legacy: { clientId: 'gw-fintech', authentication: 'client_secret_basic', secret: 'legacy-secret' },
}
const partners: PartnerRegistry = { get: (id) => (id === 'fintech' ? partner : undefined), legacyCredentials: () => partner.legacy, size: 1 }

function depsWith(bindings: BindingRegistry): TokenEndpointDeps {
  const store = createMemoryReplayStore({ maxEntries: 1000, now: Date.now })
  return {
    authenticator: createClientAuthenticator({ issuer: ISSUER, clockToleranceSeconds: 10, maxLifetimeSeconds: 300 }, { partners, store }),
    legacy: createLegacyClient({ tokenEndpoint: legacy.tokenEndpoint, caPem: legacy.caPem, connectTimeoutMs: 2000, timeoutMs: 5000, connections: 2 }),
    bindings,
    proofs: {
      dpop: { algorithms: ['ES256'], maxAgeSeconds: 60, maxFutureSeconds: 10, maxJtiLength: 256, nonceMode: 'off', nonces: undefined },
      proofKeys: createProofKeyCache({ maxEntries: 10 }),
      verifyOn: 'eventLoop',
      store,
      replayTtlMs: 71_000,
    },
  }
}

const settings = { url: TOKEN_URL, resourceIssuer: 'legacy', accessTokenMaxLifetimeSeconds: 3600, refreshTokenLifetimeSeconds: 86400, openid: false }

async function tokenRequest() {
  const dpopKey = await generateDpopKey('ES256')
  const params = new Map(Object.entries(jwtParams(await signAssertion(key, 'fintech', ISSUER), { grant_type: 'client_credentials' })))
  return {
    dpopKey,
    request: {
      params,
      authorization: undefined,
      proofHeaders: [await createProof(dpopKey, { htm: 'POST', htu: TOKEN_URL })],
      peer: { kind: 'absent' } as const,
      peerCertificate: undefined,
      nowMs: Date.now(),
    },
  }
}

test('the access token is recorded, bound to the proof key, for the partner and with the legacy client named, before it is answered', async () => {
  const store = createMemoryReplayStore({ maxEntries: 1000, now: Date.now })
  const bindings = createBindingRegistry(store)
  const { dpopKey, request } = await tokenRequest()
  const answer = await answerTokenRequest(request, settings, depsWith(bindings), {})
  assert.equal(answer.body.token_type, 'DPoP')
  assert.equal(answer.body.scope, 'accounts')
  const record = await bindings.lookup(hashToken(answer.body.access_token as string))
  assert.equal(record?.jkt, dpopKey.jkt)
  assert.equal(record?.clientId, 'fintech')
  assert.equal(record?.legacyClientId, 'gw-fintech')
  assert.equal(record?.issuerName, 'legacy')
})

test('a token whose binding cannot be recorded is not handed out: 503 temporarily_unavailable', async () => {
  const failing: BindingRegistry = {
    record: async () => {
      throw new Error('store down')
    },
    lookup: async () => undefined,
    remove: async () => {},
  }
  const { request } = await tokenRequest()
  const issuedBefore = legacy.requestsTo(new URL(legacy.tokenEndpoint).pathname).length
  await assert.rejects(answerTokenRequest(request, settings, depsWith(failing), {}), (error: unknown) => {
    assert.ok(error instanceof OAuthError)
    assert.equal(error.code, 'AS_STORE_UNAVAILABLE')
    assert.equal(error.error, 'temporarily_unavailable')
    return true
  })
  assert.equal(legacy.requestsTo(new URL(legacy.tokenEndpoint).pathname).length, issuedBefore + 1, 'the legacy server did issue it')
})
