// The OCSP client against a real HTTP responder whose answers each test chooses: what is
// accepted (RFC 6960 §3.2, §4.2.2.2), what ends as "unavailable", what is cached and how
// long, and that concurrent look-ups share one request.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createPrivateKey, generateKeyPairSync, webcrypto } from 'node:crypto'
import { refusedWith } from '../../support/refused-with.ts'
import type { ClientCert } from '../../../src/types.ts'
import { createRevocationPki, x509, type RevocationPki, type TestCert } from '../../support/revocation-pki.ts'
import { startTestOcspResponder, type OcspSigner, type TestOcspResponder } from '../../support/ocsp-test-responder.ts'
import { createHarness, type Harness, type HarnessCa } from '../../support/revocation-harness.ts'

describe('OCSP', () => {
  let pki: RevocationPki
  let responder: TestOcspResponder
  let caSigner: OcspSigner
  const harnesses: Harness[] = []

  before(async () => {
    pki = await createRevocationPki('OCSP Test CA')
    caSigner = { key: pki.ca.key, certDer: pki.ca.der, include: false }
    responder = await startTestOcspResponder({ answer: 'good', signer: caSigner })
  })
  after(async () => {
    await Promise.all(harnesses.map((h) => h.close()))
    await responder.close()
  })

  function harness(ca: Partial<HarnessCa> = {}): Harness {
    const h = createHarness({ cas: [{ name: 'test-ca', certPem: pki.ca.certPem, policy: { sources: ['ocsp'] }, ...ca }] })
    harnesses.push(h)
    return h
  }

  async function leafCert(h: Harness): Promise<{ leaf: TestCert; cert: ClientCert }> {
    const leaf = await pki.leaf(`partner-${Math.random().toString(36).slice(2, 8)}`, { ocspUrl: responder.url })
    return { leaf, cert: h.clientCert(leaf.certPem, [pki.ca.certPem]) }
  }

  it('accepts a good answer signed by the CA, then answers from the cache until nextUpdate', async () => {
    responder.set({ answer: 'good', nextUpdateSeconds: 600 })
    const h = harness()
    const { cert } = await leafCert(h)
    const before = responder.requests
    await h.check(cert)
    await h.check(cert)
    assert.equal(responder.requests, before + 1, 'second check answered from the cache')
    assert.equal(await h.metric('fapi_gateway_revocation_ocsp_cache_total', { result: 'hit' }), 1)
    assert.equal(await h.metric('fapi_gateway_revocation_lookups_total', { source: 'ocsp', outcome: 'good' }), 2)
    h.clock.now += 601_000
    responder.set({ answer: 'good', nextUpdateSeconds: 600, now: () => h.clock.now })
    await h.check(cert)
    assert.equal(responder.requests, before + 2, 'asked again once nextUpdate passed')
  })

  it('refuses a revoked certificate with GW_CLIENT_CERT_REVOKED, and keeps refusing from the cache', async () => {
    responder.set({ answer: 'revoked' })
    const h = harness()
    const { cert, leaf } = await leafCert(h)
    const error = await refusedWith(h.check(cert), 'GW_CLIENT_CERT_REVOKED')
    assert.match(error.detail ?? '', /ocsp: revoked at .*keyCompromise/)
    assert.match(error.detail ?? '', new RegExp(`serial ${leaf.serial}`))
    responder.set({ answer: 'good' })
    await refusedWith(h.check(cert), 'GW_CLIENT_CERT_REVOKED')
    assert.equal(await h.metric('fapi_gateway_revocation_decisions_total', { outcome: 'revoked' }), 2)
  })

  it('treats unknown as unavailable, even under soft-fail', async () => {
    responder.set({ answer: 'unknown' })
    const h = harness({ policy: { sources: ['ocsp'], onUnavailable: 'soft-fail', maxStalenessSeconds: 86_400 } })
    const { cert } = await leafCert(h)
    const error = await refusedWith(h.check(cert), 'GW_REVOCATION_UNAVAILABLE')
    assert.match(error.detail ?? '', /unknown/)
  })

  for (const answer of ['tryLater', 'internalError', 'html', 'garbage', 'http-500'] as const) {
    it(`answers ${answer} with GW_REVOCATION_UNAVAILABLE and never caches it as a status`, async () => {
      const h = harness()
      const { cert } = await leafCert(h)
      responder.set({ answer })
      await refusedWith(h.check(cert), 'GW_REVOCATION_UNAVAILABLE')
      const before = responder.requests
      await refusedWith(h.check(cert), 'GW_REVOCATION_UNAVAILABLE')
      assert.equal(responder.requests, before + 1, 'asked again: the failure was not cached')
      responder.set({ answer: 'good' })
      await h.check(cert)
      assert.equal(responder.requests, before + 2)
      assert.equal(await h.metric('fapi_gateway_revocation_lookups_total', { source: 'ocsp', outcome: 'unavailable' }), 2)
    })
  }

  it('accepts a delegated responder certificate with id-kp-OCSPSigning issued by the CA', async () => {
    const delegated = await pki.responder({ ocspSigning: true })
    responder.set({ answer: 'good', signer: { key: delegated.key, certDer: delegated.der, include: true } })
    const h = harness()
    await h.check((await leafCert(h)).cert)
  })

  it('refuses a delegated responder certificate without id-kp-OCSPSigning (unavailable)', async () => {
    const impostor = await pki.responder({ ocspSigning: false })
    responder.set({ answer: 'good', signer: { key: impostor.key, certDer: impostor.der, include: true } })
    const h = harness()
    const error = await refusedWith(h.check((await leafCert(h)).cert), 'GW_REVOCATION_UNAVAILABLE')
    assert.match(error.detail ?? '', /lacks id-kp-OCSPSigning/)
  })

  it('refuses a revoked answer signed by an unrelated key: the certificate is neither revoked nor good', async () => {
    const other = await createRevocationPki('Unrelated CA')
    const stranger = await other.responder({ ocspSigning: true })
    for (const signer of [
      { key: stranger.key, certDer: stranger.der, include: true },
      { key: other.ca.key, certDer: other.ca.der, include: true },
      { key: other.ca.key, certDer: other.ca.der, include: false },
    ]) {
      responder.set({ answer: 'revoked', signer })
      const h = harness()
      const error = await refusedWith(h.check((await leafCert(h)).cert), 'GW_REVOCATION_UNAVAILABLE')
      assert.match(error.detail ?? '', /signer not accepted/)
    }
  })

  it('refuses a response whose signature does not verify under the identified key', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    // Identifies the CA by key hash but signs with another key.
    responder.set({ answer: 'good', signer: { key: privateKey, certDer: pki.ca.der, include: false } })
    const h = harness()
    const error = await refusedWith(h.check((await leafCert(h)).cert), 'GW_REVOCATION_UNAVAILABLE')
    assert.match(error.detail ?? '', /signature does not verify/)
  })

  it('refuses stale and future answers', async () => {
    const h = harness()
    const { cert } = await leafCert(h)
    responder.set({ answer: 'good', nextUpdateSeconds: -10, thisUpdateSeconds: -600 })
    assert.match((await refusedWith(h.check(cert), 'GW_REVOCATION_UNAVAILABLE')).detail ?? '', /nextUpdate has passed/)
    responder.set({ answer: 'good', thisUpdateSeconds: 3600, nextUpdateSeconds: 7200 })
    assert.match((await refusedWith(h.check(cert), 'GW_REVOCATION_UNAVAILABLE')).detail ?? '', /thisUpdate is in the future/)
    responder.set({ answer: 'good', nextUpdateSeconds: null, thisUpdateSeconds: -3600 })
    assert.match((await refusedWith(h.check(cert), 'GW_REVOCATION_UNAVAILABLE')).detail ?? '', /without nextUpdate is too old/)
    responder.set({ answer: 'good', nextUpdateSeconds: null, thisUpdateSeconds: -10 })
    await h.check(cert)
  })

  it('requires the nonce back when nonces are configured', async () => {
    const h = harness({ ocsp: { nonce: true, hashAlgorithm: 'sha256' } })
    const { cert } = await leafCert(h)
    responder.set({ answer: 'good', echoNonce: false })
    assert.match((await refusedWith(h.check(cert), 'GW_REVOCATION_UNAVAILABLE')).detail ?? '', /without the requested nonce/)
    responder.set({ answer: 'good' })
    await h.check(cert)
  })

  it('uses a configured responder URL over the certificate AIA', async () => {
    responder.set({ answer: 'good' })
    const h = harness({ ocsp: { url: responder.url } })
    const leaf = await pki.leaf('no-aia')
    const before = responder.requests
    await h.check(h.clientCert(leaf.certPem, [pki.ca.certPem]))
    assert.equal(responder.requests, before + 1)
    const noUrl = harness()
    assert.match(
      (await refusedWith(noUrl.check(noUrl.clientCert(leaf.certPem, [pki.ca.certPem])), 'GW_REVOCATION_UNAVAILABLE')).detail ?? '',
      /no OCSP responder/,
    )
  })

  it('bounds a slow responder by the timeout', async () => {
    responder.set({ answer: 'good', delayMs: 3_000 })
    const h = harness({ ocsp: { timeoutMs: 200 } })
    const error = await refusedWith(h.check((await leafCert(h)).cert), 'GW_REVOCATION_UNAVAILABLE')
    assert.match(error.detail ?? '', /no answer .* within 200 ms/)
    responder.set({ answer: 'good' })
  })

  it('sends one request for N concurrent look-ups of a fresh certificate (singleflight)', async () => {
    responder.set({ answer: 'good', delayMs: 300 })
    const h = harness()
    const { cert } = await leafCert(h)
    const before = responder.requests
    await Promise.all(Array.from({ length: 25 }, () => h.check(cert)))
    assert.equal(responder.requests, before + 1)
    assert.equal(await h.metric('fapi_gateway_revocation_ocsp_cache_total', { result: 'shared' }), 24)
    responder.set({ answer: 'good' })
  })

  describe('when the responder stops answering', () => {
    async function withKnownGood(policy: HarnessCa['policy']) {
      responder.set({ answer: 'good', nextUpdateSeconds: 60 })
      const h = harness({ policy })
      const { cert } = await leafCert(h)
      await h.check(cert)
      responder.set({ answer: 'tryLater' })
      return { h, cert }
    }

    it('hard-fail refuses with GW_REVOCATION_UNAVAILABLE once the cached status is stale', async () => {
      const { h, cert } = await withKnownGood({ sources: ['ocsp'], onUnavailable: 'hard-fail' })
      h.clock.now += 120_000
      await refusedWith(h.check(cert), 'GW_REVOCATION_UNAVAILABLE')
    })

    it('soft-fail accepts within maxStalenessSeconds of the last good status, with an event, and refuses after', async () => {
      const { h, cert } = await withKnownGood({ sources: ['ocsp'], onUnavailable: 'soft-fail', maxStalenessSeconds: 600 })
      h.clock.now += 120_000
      await h.check(cert)
      assert.equal(await h.metric('fapi_gateway_revocation_decisions_total', { outcome: 'soft_fail' }), 1)
      const event = h.events.find((e) => e.reason === 'revocation.soft_fail')
      assert.equal(event?.event, 'dependency.unavailable')
      assert.equal(event?.certThumbprint, cert.thumbprint)
      h.clock.now += 600_000
      assert.match((await refusedWith(h.check(cert), 'GW_REVOCATION_UNAVAILABLE')).detail ?? '', /last good status \d+ s old/)
    })

    it('a route can turn hard-fail into soft-fail and back', async () => {
      const { h, cert } = await withKnownGood({ sources: ['ocsp'], onUnavailable: 'hard-fail', maxStalenessSeconds: 600 })
      h.clock.now += 120_000
      await refusedWith(h.check(cert), 'GW_REVOCATION_UNAVAILABLE')
      await h.check(cert, { override: { onUnavailable: 'soft-fail' } })
      await refusedWith(h.check(cert, { override: { onUnavailable: 'soft-fail', maxStalenessSeconds: 60 } }), 'GW_REVOCATION_UNAVAILABLE')
    })

    it('soft-fail never accepts a certificate it has never seen good', async () => {
      responder.set({ answer: 'tryLater' })
      const h = harness({ policy: { sources: ['ocsp'], onUnavailable: 'soft-fail', maxStalenessSeconds: 86_400 } })
      assert.match((await refusedWith(h.check((await leafCert(h)).cert), 'GW_REVOCATION_UNAVAILABLE')).detail ?? '', /no status known/)
    })

    it('soft-fail never accepts a certificate known to be revoked', async () => {
      responder.set({ answer: 'revoked', nextUpdateSeconds: 60 })
      const h = harness({ policy: { sources: ['ocsp'], onUnavailable: 'soft-fail', maxStalenessSeconds: 86_400 } })
      const { cert } = await leafCert(h)
      await refusedWith(h.check(cert), 'GW_CLIENT_CERT_REVOKED')
      responder.set({ answer: 'tryLater' })
      h.clock.now += 120_000
      await refusedWith(h.check(cert), 'GW_CLIENT_CERT_REVOKED')
    })
  })

  it('checks intermediates when the policy says so, each against its own issuer', async () => {
    const root = await createRevocationPki('Chain Root')
    const intermediateResponder = await startTestOcspResponder({ answer: 'good', signer: { key: root.ca.key, certDer: root.ca.der, include: false } })
    try {
      const ecdsa = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
      const keys = (await webcrypto.subtle.generateKey(ecdsa, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
      const intermediate = await x509.X509CertificateGenerator.create({
        serialNumber: '7f01',
        subject: 'CN=Chain Intermediate',
        issuer: root.caCert.subject,
        notBefore: new Date(Date.now() - 3_600_000),
        notAfter: new Date(Date.now() + 86_400_000),
        publicKey: keys.publicKey,
        signingKey: root.caKeys.privateKey,
        signingAlgorithm: ecdsa,
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
          new x509.AuthorityInfoAccessExtension({ ocsp: [intermediateResponder.url] }),
        ],
      })
      const leafKeys = (await webcrypto.subtle.generateKey(ecdsa, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: '7f02',
        subject: 'CN=chain-leaf',
        issuer: intermediate.subject,
        notBefore: new Date(Date.now() - 3_600_000),
        notAfter: new Date(Date.now() + 86_400_000),
        publicKey: leafKeys.publicKey,
        signingKey: keys.privateKey,
        signingAlgorithm: ecdsa,
        extensions: [
          new x509.BasicConstraintsExtension(false),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
          new x509.AuthorityInfoAccessExtension({ ocsp: [responder.url] }),
        ],
      })
      const intermediateKey = createPrivateKey(x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'))
      const intermediatePem = intermediate.toString('pem')
      responder.set({ answer: 'good', signer: { key: intermediateKey, certDer: Buffer.from(intermediate.rawData), include: false } })
      const h = createHarness({
        cas: [
          { name: 'intermediate', certPem: intermediatePem, policy: { sources: ['ocsp'], checkIntermediates: true } },
          { name: 'root', certPem: root.ca.certPem, policy: { sources: ['ocsp'] } },
        ],
      })
      harnesses.push(h)
      const cert = h.clientCert(leaf.toString('pem'), [intermediatePem, root.ca.certPem])
      assert.equal(cert.chainDer.length, 3)
      const asked = intermediateResponder.requests
      await h.check(cert)
      assert.equal(intermediateResponder.requests, asked + 1, 'the intermediate was checked at its own responder')
      h.clock.now += 301_000
      intermediateResponder.set({ answer: 'revoked', now: () => h.clock.now })
      responder.set({ answer: 'good', signer: { key: intermediateKey, certDer: Buffer.from(intermediate.rawData), include: false }, now: () => h.clock.now })
      const error = await refusedWith(h.check(cert), 'GW_CLIENT_CERT_REVOKED')
      assert.match(error.detail ?? '', /serial 7f01, issuer CN=Chain Root/)
      await h.check(cert, { override: { checkIntermediates: false } })
    } finally {
      responder.set({ answer: 'good', signer: caSigner })
      await intermediateResponder.close()
    }
  })
})
