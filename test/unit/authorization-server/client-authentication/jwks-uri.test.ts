import assert from 'node:assert/strict'
import type { X509Certificate } from 'node:crypto'
import { after, before, test } from 'node:test'
import { createDevPki, type DevPki } from '../../../../dev/pki.ts'
import { createClientAuthenticator, type ClientAuthenticator } from '../../../../src/authorization-server/client-authentication/authenticate.ts'
import type { PartnerRegistry } from '../../../../src/authorization-server/partners.ts'
import { createMemoryReplayStore } from '../../../../src/replay/memory-store.ts'
import type { ReplayStore } from '../../../../src/replay/store.ts'
import { input, jwtParams, partner, refusedWith, registryOf, signAssertion, signingKey, type SigningKey } from '../../../support/client-authentication.ts'
import { createSelfSignedCertificate } from '../../../support/client-certificates.ts'
import { startIssuerServer, type IssuerServer } from '../../tokens/issuer-server.ts'

const issuer = 'https://as.example.com'

let pki: DevPki
let server: IssuerServer
let first: SigningKey
let rotated: SigningKey
let cert: X509Certificate
let rotatedCert: X509Certificate
let partners: PartnerRegistry
const stores: ReplayStore[] = []
const authenticators: ClientAuthenticator[] = []

const x5cKey = (c: X509Certificate) => ({ ...c.publicKey.export({ format: 'jwk' }), x5c: [c.raw.toString('base64')] })

before(async () => {
  pki = await createDevPki()
  server = await startIssuerServer(pki)
  ;[first, rotated] = await Promise.all([signingKey('ES256'), signingKey('PS256')])
  ;[cert, rotatedCert] = await Promise.all([
    createSelfSignedCertificate({ subject: 'CN=partner-self-signed' }),
    createSelfSignedCertificate({ subject: 'CN=partner-self-signed' }),
  ])
  server.jwks = { keys: [first.publicJwk, x5cKey(cert)] }
  partners = registryOf(
    partner('partner-jwt', { method: 'private_key_jwt', jwksUri: server.jwksUri }),
    partner('partner-self-signed', { method: 'self_signed_tls_client_auth', jwksUri: server.jwksUri }),
    partner('partner-unreachable', { method: 'private_key_jwt', jwksUri: 'https://127.0.0.1:1/jwks' }),
  )
})

after(async () => {
  for (const authenticator of authenticators) authenticator.close()
  await Promise.all(stores.map((store) => store.close()))
  await server?.stop()
})

function authenticator(caPem = pki.root.certPem): ClientAuthenticator {
  const store = createMemoryReplayStore({ maxEntries: 100, now: Date.now })
  stores.push(store)
  const created = createClientAuthenticator(
    { issuer, clockToleranceSeconds: 10, maxLifetimeSeconds: 300, partnerJwksCaPem: caPem, partnerJwksCooldownSeconds: 0 },
    { partners, store },
  )
  authenticators.push(created)
  return created
}

test('an assertion verifies against the partner jwksUri, fetched once and cached', async () => {
  server.jwks = { keys: [first.publicJwk, x5cKey(cert)] }
  const subject = authenticator()
  const before = server.jwksRequests
  await subject.authenticate(input(jwtParams(await signAssertion(first, 'partner-jwt', issuer))))
  await subject.authenticate(input(jwtParams(await signAssertion(first, 'partner-jwt', issuer))))
  assert.equal(server.jwksRequests - before, 1)
})

test('a key the partner added at its jwksUri is fetched on its first use', async () => {
  server.jwks = { keys: [first.publicJwk, x5cKey(cert)] }
  const subject = authenticator()
  await subject.authenticate(input(jwtParams(await signAssertion(first, 'partner-jwt', issuer))))
  server.jwks = { keys: [first.publicJwk, rotated.publicJwk, x5cKey(cert)] }
  const client = await subject.authenticate(input(jwtParams(await signAssertion(rotated, 'partner-jwt', issuer))))
  assert.equal(client.partner.clientId, 'partner-jwt')
})

test('a key not at the partner jwksUri is refused', async () => {
  server.jwks = { keys: [first.publicJwk, x5cKey(cert)] }
  await refusedWith(
    authenticator().authenticate(input(jwtParams(await signAssertion(rotated, 'partner-jwt', issuer)))),
    'AS_CLIENT_ASSERTION_INVALID',
    'signature',
  )
})

test('a jwksUri that cannot be fetched, or whose server the CA bundle does not trust, refuses the assertion', async () => {
  const unreachable = await signAssertion(first, 'partner-unreachable', issuer)
  await refusedWith(authenticator().authenticate(input(jwtParams(unreachable))), 'AS_CLIENT_ASSERTION_INVALID', 'signature')
  const untrusted = authenticator(pki.untrustedRoot.certPem)
  await refusedWith(untrusted.authenticate(input(jwtParams(await signAssertion(first, 'partner-jwt', issuer)))), 'AS_CLIENT_ASSERTION_INVALID', 'signature')
})

test('self_signed_tls_client_auth: the certificate in the x5c at the jwksUri authenticates, a rolled-over one is fetched', async () => {
  server.jwks = { keys: [first.publicJwk, x5cKey(cert)] }
  const subject = authenticator()
  const client = await subject.authenticate(input({ client_id: 'partner-self-signed' }, { peerCertificate: cert }))
  assert.equal(client.method, 'self_signed_tls_client_auth')
  await refusedWith(subject.authenticate(input({ client_id: 'partner-self-signed' }, { peerCertificate: rotatedCert })), 'AS_CLIENT_CERTIFICATE_INVALID', 'x5c')
  server.jwks = { keys: [first.publicJwk, x5cKey(rotatedCert)] }
  const rolled = await subject.authenticate(input({ client_id: 'partner-self-signed' }, { peerCertificate: rotatedCert }))
  assert.equal(rolled.partner.clientId, 'partner-self-signed')
})

test('self_signed_tls_client_auth: a jwksUri the CA bundle does not trust refuses', async () => {
  await refusedWith(
    authenticator(pki.untrustedRoot.certPem).authenticate(input({ client_id: 'partner-self-signed' }, { peerCertificate: cert })),
    'AS_CLIENT_CERTIFICATE_INVALID',
    'x5c',
  )
})
