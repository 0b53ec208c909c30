import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { createClientAuthenticator, type ClientAuthenticator } from '../../../../src/authorization-server/client-authentication/authenticate.ts'
import { createRedisReplayStore } from '../../../../src/replay/redis-store.ts'
import type { ReplayStore } from '../../../../src/replay/store.ts'
import { input, jwtParams, partner, refusedWith, registryOf, signAssertion, signingKey, type SigningKey } from '../../../support/client-authentication.ts'
import { startRedisServer, waitUntil, type RedisServer } from '../../../support/redis.ts'

const issuer = 'https://as.example.com'
const settings = { issuer, clockToleranceSeconds: 10, maxLifetimeSeconds: 300 }

let redis: RedisServer
let key: SigningKey
const stores: ReplayStore[] = []
const authenticators: ClientAuthenticator[] = []

before(async () => {
  redis = await startRedisServer()
  key = await signingKey('ES256')
})

after(async () => {
  for (const authenticator of authenticators) authenticator.close()
  await Promise.all(stores.map((store) => store.close()))
  await redis?.close()
})

/** One gateway replica: its own Redis connection and authenticator. */
async function replica(): Promise<ClientAuthenticator> {
  const store = createRedisReplayStore({ mode: 'single', url: redis.url, maxReconnectDelayMs: 100 })
  stores.push(store)
  await waitUntil(() => store.ready(), 'the replay store to connect')
  const partners = registryOf(partner('partner-jwt', { method: 'private_key_jwt', jwks: { keys: [key.publicJwk] } }))
  const authenticator = createClientAuthenticator(settings, { partners, store })
  authenticators.push(authenticator)
  return authenticator
}

test('an assertion used at one replica is refused at another (jti single use in Redis)', async () => {
  const [first, second] = [await replica(), await replica()]
  const assertion = await signAssertion(key, 'partner-jwt', issuer)
  const client = await first.authenticate(input(jwtParams(assertion)))
  assert.equal(client.partner.clientId, 'partner-jwt')
  await refusedWith(second.authenticate(input(jwtParams(assertion))), 'AS_CLIENT_ASSERTION_REPLAY', 'jti')
  await refusedWith(first.authenticate(input(jwtParams(assertion))), 'AS_CLIENT_ASSERTION_REPLAY', 'jti')
  const fresh = await second.authenticate(input(jwtParams(await signAssertion(key, 'partner-jwt', issuer))))
  assert.equal(fresh.partner.clientId, 'partner-jwt')
})

test('with Redis down the assertion is refused, not accepted unchecked', async () => {
  const authenticator = await replica()
  await redis.stop()
  try {
    await refusedWith(authenticator.authenticate(input(jwtParams(await signAssertion(key, 'partner-jwt', issuer)))), 'AS_STORE_UNAVAILABLE', 'jti')
  } finally {
    await redis.start()
  }
})
