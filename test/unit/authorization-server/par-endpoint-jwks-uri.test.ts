// Signed request objects of a partner registered with a jwksUri: verified with the keys its client
// assertions are verified with, from one cache, over real HTTPS with the development PKI.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { createDevPki, type DevPki } from '../../../dev/pki.ts'
import { createClientAuthenticator, type ClientAuthenticator } from '../../../src/authorization-server/client-authentication/authenticate.ts'
import { answerPushedAuthorizationRequest, requestRefOf, type ParDeps } from '../../../src/authorization-server/front-channel/par-endpoint.ts'
import { verifyRequestObject } from '../../../src/authorization-server/front-channel/request-object.ts'
import { createFrontChannelState } from '../../../src/authorization-server/front-channel/state.ts'
import type { Partner } from '../../../src/authorization-server/partners.ts'
import { createProofKeyCache } from '../../../src/checks/dpop/proof-key-cache.ts'
import { partnerSchema, type PartnerConfig } from '../../../src/config/schema.ts'
import { createMemoryReplayStore } from '../../../src/replay/memory-store.ts'
import type { ReplayStore } from '../../../src/replay/store.ts'
import { pkcePair, signRequestObject } from '../../support/authorization-requests.ts'
import { jwtParams, refusedWith, registryOf, signAssertion, signingKey, type SigningKey } from '../../support/client-authentication.ts'
import { startIssuerServer, type IssuerServer } from '../tokens/issuer-server.ts'

const ISSUER = 'https://as.example.com'
const REDIRECT_URI = 'https://fintech.example/callback'

let pki: DevPki
let server: IssuerServer
let first: SigningKey
let rotated: SigningKey
let store: ReplayStore
let authenticator: ClientAuthenticator
let deps: ParDeps
let unreachable: Partner

function partnerOf(clientId: string, authentication: PartnerConfig['authentication']): Partner {
  const config = partnerSchema.parse({ clientId, authentication, grantTypes: ['authorization_code'], redirectUris: [REDIRECT_URI], legacy: 'shared' })
  return {
    clientId,
    config,
    grantTypes: new Set(config.grantTypes),
    scopes: new Set(config.scopes),
    legacy: { clientId: 'legacy', authentication: 'client_secret_basic', secret: '-' },
  }
}

before(async () => {
  pki = await createDevPki()
  server = await startIssuerServer(pki)
  ;[first, rotated] = await Promise.all([signingKey('ES256'), signingKey('PS256')])
  unreachable = partnerOf('partner-unreachable', { method: 'private_key_jwt', jwksUri: 'https://127.0.0.1:1/jwks' })
  const partners = registryOf(partnerOf('partner-jwt', { method: 'private_key_jwt', jwksUri: server.jwksUri }), unreachable)
  store = createMemoryReplayStore({ maxEntries: 1000, now: Date.now })
  authenticator = createClientAuthenticator(
    { issuer: ISSUER, clockToleranceSeconds: 10, maxLifetimeSeconds: 300, partnerJwksCaPem: pki.root.certPem, partnerJwksCooldownSeconds: 0 },
    { partners, store },
  )
  deps = {
    authenticator,
    state: createFrontChannelState(store),
    proofs: {
      dpop: { algorithms: ['ES256'], maxAgeSeconds: 60, maxFutureSeconds: 10, maxJtiLength: 256, nonceMode: 'off', nonces: undefined },
      proofKeys: createProofKeyCache({ maxEntries: 10 }),
      verifyOn: 'eventLoop',
      store,
      replayTtlMs: 71_000,
    },
  }
})

after(async () => {
  authenticator?.close()
  await store?.close()
  await server?.stop()
})

const settings = { issuer: ISSUER, parUrl: `${ISSUER}/oauth2/par`, requestLifetimeSeconds: 60, requestObject: 'required' as const }

async function pushSignedBy(key: SigningKey, state: string) {
  const requestObject = await signRequestObject(key, 'partner-jwt', ISSUER, {
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    code_challenge: pkcePair().challenge,
    code_challenge_method: 'S256',
    state,
  })
  const params = new Map(Object.entries(jwtParams(await signAssertion(first, 'partner-jwt', ISSUER), { request: requestObject })))
  const request = { params, authorization: undefined, proofHeaders: [], peer: { kind: 'absent' } as const, peerCertificate: undefined, nowMs: Date.now() }
  const answer = await answerPushedAuthorizationRequest(request, settings, deps, {})
  return deps.state.readRequest(requestRefOf(answer.request_uri)!)
}

test('a request object verifies with the keys at the partner jwksUri, fetched once for it and the client assertion', async () => {
  server.jwks = { keys: [first.publicJwk] }
  const fetchesBefore = server.jwksRequests
  const stored = await pushSignedBy(first, 'first-key')
  assert.equal(stored?.state, 'first-key')
  assert.equal(server.jwksRequests - fetchesBefore, 1)
})

test('a request object signed with a key the partner added at its jwksUri is verified after a fetch', async () => {
  server.jwks = { keys: [first.publicJwk, rotated.publicJwk] }
  const stored = await pushSignedBy(rotated, 'rotated-key')
  assert.equal(stored?.state, 'rotated-key')
})

test('a request object signed with a key not at the partner jwksUri is refused', async () => {
  await refusedWith(pushSignedBy(await signingKey('ES256'), 'unpublished-key'), 'AS_REQUEST_OBJECT_INVALID', 'signature')
})

test('a request object of a partner whose jwksUri cannot be fetched is refused', async () => {
  const requestObject = await signRequestObject(first, 'partner-unreachable', ISSUER, { response_type: 'code' })
  const error = await refusedWith(
    verifyRequestObject(requestObject, authenticator.keysOf(unreachable), {
      issuer: ISSUER,
      clientId: 'partner-unreachable',
      nowMs: Date.now(),
      stringParameters: [],
    }),
    'AS_REQUEST_OBJECT_INVALID',
    'signature',
  )
  assert.match(error.detail ?? '', /jwksUri cannot be fetched/)
})
