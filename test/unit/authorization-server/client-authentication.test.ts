import assert from 'node:assert/strict'
import { randomUUID, type X509Certificate } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import type { JWTPayload } from 'jose'
import {
  createClientAuthenticator,
  needsBasicChallenge,
  type ClientAuthenticator,
  type ClientAuthenticatorSettings,
} from '../../../src/authorization-server/client-authentication/authenticate.ts'
import type { PartnerRegistry } from '../../../src/authorization-server/partners.ts'
import { createMemoryReplayStore } from '../../../src/replay/memory-store.ts'
import type { ReplayStore } from '../../../src/replay/store.ts'
import type { PeerCertificateVerdict } from '../../../src/types.ts'
import {
  assertionType,
  input,
  jwtParams,
  nowSeconds,
  partner,
  refusedWith,
  registryOf,
  signAssertion,
  signingKey,
  type SigningKey,
} from '../../support/client-authentication.ts'
import { createSelfSignedCertificate, createTestCa, validPeer, type TestCa } from '../../support/client-certificates.ts'

const issuer = 'https://as.example.com'
const settings: ClientAuthenticatorSettings = { issuer, clockToleranceSeconds: 10, maxLifetimeSeconds: 300 }

let es256: SigningKey
let ps256: SigningKey
let eddsa: SigningKey
let rsaForRs256: SigningKey
let stranger: SigningKey
let ca: TestCa
let tlsDnCert: X509Certificate
let tlsOtherCert: X509Certificate
let sanCert: X509Certificate
let selfSigned: X509Certificate
let selfSignedExpired: X509Certificate
let selfSignedImpostor: X509Certificate
let partners: PartnerRegistry
const stores: ReplayStore[] = []
const authenticators: ClientAuthenticator[] = []

function memoryStore(): ReplayStore {
  const store = createMemoryReplayStore({ maxEntries: 1000, now: Date.now })
  stores.push(store)
  return store
}

function authenticator(store: ReplayStore = memoryStore(), overrides: Partial<ClientAuthenticatorSettings> = {}, registry = partners): ClientAuthenticator {
  const created = createClientAuthenticator({ ...settings, ...overrides }, { partners: registry, store })
  authenticators.push(created)
  return created
}

const x5cOf = (cert: X509Certificate) => cert.raw.toString('base64')

before(async () => {
  ;[es256, ps256, eddsa, rsaForRs256, stranger] = await Promise.all([
    signingKey('ES256'),
    signingKey('PS256'),
    signingKey('EdDSA'),
    signingKey('RS256'),
    signingKey('ES256'),
  ])
  ca = await createTestCa()
  tlsDnCert = await ca.issue({ subject: 'C=DE, O=Example Bank, CN=partner-tls' })
  tlsOtherCert = await ca.issue({ subject: 'C=DE, O=Example Bank, CN=partner-tls-2' })
  sanCert = await ca.issue({
    subject: 'CN=partner-san',
    san: [
      { type: 'dns', value: 'client.partner.example' },
      { type: 'url', value: 'https://partner.example/client' },
      { type: 'ip', value: '2001:db8::1' },
      { type: 'email', value: 'ops@partner.example' },
    ],
  })
  selfSigned = await createSelfSignedCertificate({ subject: 'CN=partner-self-signed' })
  selfSignedImpostor = await createSelfSignedCertificate({ subject: 'CN=partner-self-signed' })
  selfSignedExpired = await createSelfSignedCertificate({
    subject: 'CN=partner-self-signed',
    notBefore: new Date(Date.now() - 10 * 86_400_000),
    notAfter: new Date(Date.now() - 86_400_000),
  })
  const selfSignedKey = (cert: X509Certificate) => ({ ...cert.publicKey.export({ format: 'jwk' }), x5c: [x5cOf(cert)] })
  partners = registryOf(
    partner('partner-jwt', { method: 'private_key_jwt', jwks: { keys: [es256.publicJwk, ps256.publicJwk, eddsa.publicJwk, rsaForRs256.publicJwk] } }),
    partner('partner-jwt-2', { method: 'private_key_jwt', jwks: { keys: [stranger.publicJwk] } }),
    partner('partner-tls', { method: 'tls_client_auth', subjectDn: 'cn=Partner-TLS,  O=Example Bank,C=DE' }),
    partner('partner-tls-2', { method: 'tls_client_auth', subjectDn: 'CN=partner-tls-2,O=Example Bank,C=DE' }),
    partner('partner-der-order', { method: 'tls_client_auth', subjectDn: 'C=DE,O=Example Bank,CN=partner-tls' }),
    partner('partner-dns', { method: 'tls_client_auth', sanDns: 'CLIENT.partner.example' }),
    partner('partner-uri', { method: 'tls_client_auth', sanUri: 'https://partner.example/client' }),
    partner('partner-ip', { method: 'tls_client_auth', sanIp: '2001:0db8:0:0:0:0:0:1' }),
    partner('partner-email', { method: 'tls_client_auth', sanEmail: 'ops@partner.example' }),
    partner('partner-other-dns', { method: 'tls_client_auth', sanDns: 'other.partner.example' }),
    partner('partner-self-signed', { method: 'self_signed_tls_client_auth', jwks: { keys: [selfSignedKey(selfSigned), selfSignedKey(selfSignedExpired)] } }),
  )
})

after(async () => {
  for (const created of authenticators) created.close()
  await Promise.all(stores.map((store) => store.close()))
})

function clientAssertion(claims: JWTPayload = {}, key: SigningKey = es256, clientId = 'partner-jwt'): Promise<string> {
  return signAssertion(key, clientId, issuer, claims)
}

describe('private_key_jwt', () => {
  for (const key of ['ES256', 'PS256', 'EdDSA']) {
    test(`an assertion signed with ${key} by a registered key is accepted`, async () => {
      const signer = { ES256: () => es256, PS256: () => ps256, EdDSA: () => eddsa }[key]!()
      const client = await authenticator().authenticate(input(jwtParams(await clientAssertion({}, signer))))
      assert.equal(client.partner.clientId, 'partner-jwt')
      assert.equal(client.method, 'private_key_jwt')
    })
  }

  test('a client_id naming the same client as the assertion is accepted', async () => {
    const client = await authenticator().authenticate(input(jwtParams(await clientAssertion(), { client_id: 'partner-jwt' })))
    assert.equal(client.partner.clientId, 'partner-jwt')
  })

  test('a client_id naming another client than the assertion is refused', async () => {
    await refusedWith(
      authenticator().authenticate(input(jwtParams(await clientAssertion(), { client_id: 'partner-jwt-2' }))),
      'AS_CLIENT_ASSERTION_INVALID',
      'client_id',
    )
  })

  test('EnsureSignedClientAssertionWithRS256Fails', async () => {
    await refusedWith(authenticator().authenticate(input(jwtParams(await clientAssertion({}, rsaForRs256)))), 'AS_CLIENT_ASSERTION_INVALID', 'alg')
  })

  test('an assertion signed by a key the partner did not register is refused', async () => {
    const forged = await clientAssertion({}, { ...stranger, kid: es256.kid })
    await refusedWith(authenticator().authenticate(input(jwtParams(forged))), 'AS_CLIENT_ASSERTION_INVALID', 'signature')
  })

  test('an assertion whose kid the partner did not register is refused', async () => {
    await refusedWith(authenticator().authenticate(input(jwtParams(await clientAssertion({}, stranger)))), 'AS_CLIENT_ASSERTION_INVALID', 'signature')
  })

  test('a registered key that breaks the key rules (private members) is not used', async () => {
    const registry = registryOf(partner('partner-jwt', { method: 'private_key_jwt', jwks: { keys: [{ ...es256.publicJwk, d: 'AAAA' }] } }))
    const subject = authenticator(memoryStore(), {}, registry)
    await refusedWith(subject.authenticate(input(jwtParams(await clientAssertion()))), 'AS_CLIENT_ASSERTION_INVALID', 'signature')
  })

  test('PAREndpointAsAudienceFails', async () => {
    const assertion = await clientAssertion({ aud: `${issuer}/par` })
    await refusedWith(authenticator().authenticate(input(jwtParams(assertion))), 'AS_CLIENT_ASSERTION_INVALID', 'aud')
  })

  test('PARTokenEndpointAsAudienceFails', async () => {
    const assertion = await clientAssertion({ aud: `${issuer}/token` })
    await refusedWith(authenticator().authenticate(input(jwtParams(assertion))), 'AS_CLIENT_ASSERTION_INVALID', 'aud')
  })

  test('PAREndpointAsArrayAudienceFails (even [issuer] alone)', async () => {
    await refusedWith(authenticator().authenticate(input(jwtParams(await clientAssertion({ aud: [issuer] })))), 'AS_CLIENT_ASSERTION_INVALID', 'aud')
    const both = await clientAssertion({ aud: [issuer, `${issuer}/par`] })
    await refusedWith(authenticator().authenticate(input(jwtParams(both))), 'AS_CLIENT_ASSERTION_INVALID', 'aud')
  })

  test('EnsureClientAssertionWithWrongAudFails', async () => {
    const assertion = await clientAssertion({ aud: 'https://other.example.com' })
    await refusedWith(authenticator().authenticate(input(jwtParams(assertion))), 'AS_CLIENT_ASSERTION_INVALID', 'aud')
  })

  test('an assertion without aud is refused', async () => {
    await refusedWith(authenticator().authenticate(input(jwtParams(await clientAssertion({ aud: undefined })))), 'AS_CLIENT_ASSERTION_INVALID', 'aud')
  })

  test('EnsureClientAssertionWithNoSubFails', async () => {
    await refusedWith(authenticator().authenticate(input(jwtParams(await clientAssertion({ sub: undefined })))), 'AS_CLIENT_ASSERTION_INVALID', 'sub')
  })

  test('an assertion whose iss is not its sub is refused', async () => {
    await refusedWith(authenticator().authenticate(input(jwtParams(await clientAssertion({ iss: 'partner-jwt-2' })))), 'AS_CLIENT_ASSERTION_INVALID', 'iss')
  })

  test('ClientAssertionExpIs5MinutesInPastFails', async () => {
    const now = nowSeconds()
    const assertion = await clientAssertion({ iat: now - 360, exp: now - 300 })
    await refusedWith(authenticator().authenticate(input(jwtParams(assertion))), 'AS_CLIENT_ASSERTION_INVALID', 'exp')
  })

  test('an assertion without exp is refused', async () => {
    await refusedWith(authenticator().authenticate(input(jwtParams(await clientAssertion({ exp: undefined })))), 'AS_CLIENT_ASSERTION_INVALID', 'exp')
  })

  test('an assertion valid for longer than maxLifetimeSeconds is refused', async () => {
    const assertion = await clientAssertion({ exp: nowSeconds() + 3600 })
    await refusedWith(authenticator().authenticate(input(jwtParams(assertion))), 'AS_CLIENT_ASSERTION_INVALID', 'exp')
  })

  test('PAREnsureJWTClientAssertionWithIatNbf8SecondsInTheFutureIsAccepted', async () => {
    const ahead = nowSeconds() + 8
    const client = await authenticator().authenticate(input(jwtParams(await clientAssertion({ iat: ahead, nbf: ahead, exp: ahead + 60 }))))
    assert.equal(client.partner.clientId, 'partner-jwt')
  })

  for (const claim of ['iat', 'nbf']) {
    test(`PAREnsureJWTClientAssertionWith${claim === 'iat' ? 'Iat' : 'Nbf'}Over60SecondsInTheFutureFails`, async () => {
      const ahead = nowSeconds() + 61
      const assertion = await clientAssertion({ [claim]: ahead, exp: ahead + 60 })
      await refusedWith(authenticator().authenticate(input(jwtParams(assertion))), 'AS_CLIENT_ASSERTION_INVALID', claim)
      // The 60 s bound holds whatever tolerance is configured.
      const lenient = authenticator(memoryStore(), { clockToleranceSeconds: 600 })
      await refusedWith(
        lenient.authenticate(input(jwtParams(await clientAssertion({ [claim]: ahead, exp: ahead + 60 })))),
        'AS_CLIENT_ASSERTION_INVALID',
        claim,
      )
    })
  }

  test('an assertion without jti is refused', async () => {
    await refusedWith(authenticator().authenticate(input(jwtParams(await clientAssertion({ jti: undefined })))), 'AS_CLIENT_ASSERTION_INVALID', 'jti')
  })

  test('an assertion is accepted once (memory store)', async () => {
    const subject = authenticator()
    const assertion = await clientAssertion()
    await subject.authenticate(input(jwtParams(assertion)))
    const replayed = await refusedWith(subject.authenticate(input(jwtParams(assertion))), 'AS_CLIENT_ASSERTION_REPLAY', 'jti')
    assert.equal(replayed.error, 'invalid_client')
  })

  test('the same jti from two clients is two assertions', async () => {
    const subject = authenticator()
    const jti = randomUUID()
    await subject.authenticate(input(jwtParams(await clientAssertion({ jti }))))
    const client = await subject.authenticate(input(jwtParams(await clientAssertion({ jti }, stranger, 'partner-jwt-2'))))
    assert.equal(client.partner.clientId, 'partner-jwt-2')
  })

  test('a replay store that cannot answer refuses the assertion (fail closed)', async () => {
    const store = memoryStore()
    await store.close()
    await refusedWith(authenticator(store).authenticate(input(jwtParams(await clientAssertion()))), 'AS_STORE_UNAVAILABLE', 'jti')
  })

  test('an assertion over 8 KiB is refused before it is parsed', async () => {
    const assertion = await clientAssertion({ padding: 'x'.repeat(8 * 1024) })
    await refusedWith(authenticator().authenticate(input(jwtParams(assertion))), 'AS_CLIENT_ASSERTION_INVALID', 'size')
  })

  test('a client_assertion that is not a signed JWT is refused', async () => {
    await refusedWith(authenticator().authenticate(input(jwtParams('not.a.jwt'))), 'AS_CLIENT_ASSERTION_INVALID', 'format')
  })

  test('a client_assertion_type other than jwt-bearer is refused', async () => {
    const params = { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:saml2-bearer', client_assertion: await clientAssertion() }
    await refusedWith(authenticator().authenticate(input(params)), 'AS_CLIENT_ASSERTION_INVALID', 'client_assertion_type')
  })

  test('a client_assertion without its type, or a type without an assertion, is malformed', async () => {
    await refusedWith(authenticator().authenticate(input({ client_assertion: await clientAssertion() })), 'AS_REQUEST_MALFORMED', 'client_assertion_type')
    await refusedWith(authenticator().authenticate(input({ client_assertion_type: assertionType })), 'AS_REQUEST_MALFORMED', 'client_assertion')
  })

  test('an assertion from an unregistered client is refused', async () => {
    const assertion = await clientAssertion({}, es256, 'nobody')
    await refusedWith(authenticator().authenticate(input(jwtParams(assertion))), 'AS_CLIENT_UNKNOWN', 'client')
  })

  test('a partner registered for tls_client_auth cannot use private_key_jwt', async () => {
    const assertion = await clientAssertion({}, es256, 'partner-tls')
    await refusedWith(authenticator().authenticate(input(jwtParams(assertion))), 'AS_CLIENT_AUTH_METHOD', 'method')
  })

  test('EnsureClientAssertionInTokenEndpoint: a private_key_jwt partner sending only its client_id is refused', async () => {
    const error = await refusedWith(authenticator().authenticate(input({ client_id: 'partner-jwt' })), 'AS_CLIENT_AUTH_MISSING', 'client_assertion')
    assert.equal(error.error, 'invalid_client')
  })
})

describe('refused methods', () => {
  test('client_secret_basic is refused and asks for a Basic challenge', async () => {
    const basic = `Basic ${Buffer.from('partner-jwt:secret').toString('base64')}`
    const error = await refusedWith(
      authenticator().authenticate(input({ client_id: 'partner-jwt' }, { authorization: basic })),
      'AS_CLIENT_AUTH_METHOD',
      'basic',
    )
    assert.equal(needsBasicChallenge(error), true)
  })

  test('client_secret_post is refused without a Basic challenge', async () => {
    const error = await refusedWith(
      authenticator().authenticate(input({ client_id: 'partner-jwt', client_secret: 'secret' })),
      'AS_CLIENT_AUTH_METHOD',
      'client_secret',
    )
    assert.equal(needsBasicChallenge(error), false)
  })

  test('a request without any client authentication is refused', async () => {
    await refusedWith(authenticator().authenticate(input({ grant_type: 'client_credentials' })), 'AS_CLIENT_AUTH_MISSING', 'client_id')
  })

  test('a client_id nobody registered is refused', async () => {
    await refusedWith(authenticator().authenticate(input({ client_id: 'nobody' }, { peer: validPeer(tlsDnCert, ca.cert) })), 'AS_CLIENT_UNKNOWN', 'client')
  })
})

describe('tls_client_auth', () => {
  test('the registered subject DN (RFC 4514, any case and spacing) authenticates the partner', async () => {
    const client = await authenticator().authenticate(input({ client_id: 'partner-tls' }, { peer: validPeer(tlsDnCert, ca.cert), peerCertificate: tlsDnCert }))
    assert.equal(client.partner.clientId, 'partner-tls')
    assert.equal(client.method, 'tls_client_auth')
  })

  test('a DN written in DER order is not the RFC 4514 DN of the certificate', async () => {
    await refusedWith(
      authenticator().authenticate(input({ client_id: 'partner-der-order' }, { peer: validPeer(tlsDnCert, ca.cert) })),
      'AS_CLIENT_CERTIFICATE_INVALID',
      'subject',
    )
  })

  test('EnsureClientIdInTokenEndpoint: one client_id with another client certificate is refused', async () => {
    const error = await refusedWith(
      authenticator().authenticate(input({ client_id: 'partner-tls-2' }, { peer: validPeer(tlsDnCert, ca.cert), peerCertificate: tlsDnCert })),
      'AS_CLIENT_CERTIFICATE_INVALID',
      'subject',
    )
    assert.equal(error.error, 'invalid_client')
    const client = await authenticator().authenticate(input({ client_id: 'partner-tls-2' }, { peer: validPeer(tlsOtherCert, ca.cert) }))
    assert.equal(client.partner.clientId, 'partner-tls-2')
  })

  test('a certificate alone, without client_id, is refused', async () => {
    await refusedWith(authenticator().authenticate(input({}, { peer: validPeer(tlsDnCert, ca.cert) })), 'AS_CLIENT_AUTH_MISSING', 'client_id')
  })

  test('no certificate is refused', async () => {
    await refusedWith(authenticator().authenticate(input({ client_id: 'partner-tls' })), 'AS_CLIENT_CERTIFICATE_INVALID', 'certificate')
  })

  test('a certificate the listener judged invalid is refused, even with the registered subject', async () => {
    const invalid: PeerCertificateVerdict = { kind: 'invalid', reason: 'chain: not issued by a configured client CA' }
    await refusedWith(
      authenticator().authenticate(input({ client_id: 'partner-tls' }, { peer: invalid, peerCertificate: tlsDnCert })),
      'AS_CLIENT_CERTIFICATE_INVALID',
      'certificate',
    )
  })

  for (const clientId of ['partner-dns', 'partner-uri', 'partner-ip', 'partner-email']) {
    test(`the registered SAN authenticates the partner (${clientId})`, async () => {
      const client = await authenticator().authenticate(input({ client_id: clientId }, { peer: validPeer(sanCert, ca.cert) }))
      assert.equal(client.partner.clientId, clientId)
    })
  }

  test('a certificate without the registered SAN is refused', async () => {
    await refusedWith(
      authenticator().authenticate(input({ client_id: 'partner-other-dns' }, { peer: validPeer(sanCert, ca.cert) })),
      'AS_CLIENT_CERTIFICATE_INVALID',
      'san',
    )
    await refusedWith(
      authenticator().authenticate(input({ client_id: 'partner-dns' }, { peer: validPeer(tlsDnCert, ca.cert) })),
      'AS_CLIENT_CERTIFICATE_INVALID',
      'san',
    )
  })
})

describe('self_signed_tls_client_auth', () => {
  test('the certificate registered in the partner jwks x5c authenticates the partner', async () => {
    const peer: PeerCertificateVerdict = { kind: 'invalid', reason: 'chain: self-signed' }
    const client = await authenticator().authenticate(input({ client_id: 'partner-self-signed' }, { peer, peerCertificate: selfSigned }))
    assert.equal(client.partner.clientId, 'partner-self-signed')
    assert.equal(client.method, 'self_signed_tls_client_auth')
  })

  test('another certificate with the same subject is refused', async () => {
    await refusedWith(
      authenticator().authenticate(input({ client_id: 'partner-self-signed' }, { peerCertificate: selfSignedImpostor })),
      'AS_CLIENT_CERTIFICATE_INVALID',
      'x5c',
    )
  })

  test('a registered certificate past its validity is refused', async () => {
    await refusedWith(
      authenticator().authenticate(input({ client_id: 'partner-self-signed' }, { peerCertificate: selfSignedExpired })),
      'AS_CLIENT_CERTIFICATE_INVALID',
      'validity',
    )
  })

  test('no certificate is refused', async () => {
    await refusedWith(authenticator().authenticate(input({ client_id: 'partner-self-signed' })), 'AS_CLIENT_CERTIFICATE_INVALID', 'certificate')
  })
})
