import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { exportJWK, generateKeyPair, exportPKCS8, decodeJwt } from 'jose'
import { chainPem, createDevPki, type DevPki } from '../../../dev/pki.ts'
import { generateDpopKey } from '../../../src/conformance/proofs.ts'
import {
  requestClientCredentialsToken,
  TokenEndpointError,
  type TokenClient,
  type TokenEndpointHooks,
  type TokenExchange,
} from '../../../src/conformance/token-endpoint.ts'
import { startFakeAuthorizationServer, type FakeAuthorizationServer } from './fake-authorization-server.ts'

let pki: DevPki
let as: FakeAuthorizationServer
let asWrongType: FakeAuthorizationServer
let signingKeyPem: string
const minted: { clientId: string; jkt?: string; x5t?: string }[] = []

function hooks(): TokenEndpointHooks & { secrets: string[]; exchanges: TokenExchange[] } {
  const secrets: string[] = []
  const exchanges: TokenExchange[] = []
  return { secrets, exchanges, onSecret: (s) => secrets.push(s), onExchange: (e) => exchanges.push(e) }
}

before(async () => {
  pki = await createDevPki()
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
  signingKeyPem = await exportPKCS8(privateKey)
  const mint = async (request: { clientId: string; jkt?: string; x5t?: string }) => {
    minted.push(request)
    return `token-${minted.length}-${request.jkt ?? request.x5t}`
  }
  const clients = [
    { clientId: 'partner-a', jwk: await exportJWK(publicKey) },
    { clientId: 'partner-mtls', certificateCn: 'partner-a' },
  ]
  as = await startFakeAuthorizationServer({ pki, clients, mint })
  asWrongType = await startFakeAuthorizationServer({ pki, clients, mint, tokenType: 'Bearer', requireNonce: false })
})

after(async () => {
  await as.close()
  await asWrongType.close()
})

function settings(server: FakeAuthorizationServer) {
  return { endpoint: server.tokenEndpoint, issuer: server.issuer, scope: 'accounts:read', caPem: pki.root.certPem, timeoutMs: 5000, now: Date.now }
}

const identity = () => ({ label: 'CN=partner-a', certPem: chainPem(pki.partnerA, pki.intermediate), keyPem: pki.partnerA.keyPem })

describe('client credentials at a token endpoint', () => {
  it('private_key_jwt + DPoP: retries once with the server nonce and returns a DPoP-bound token', async () => {
    const key = await generateDpopKey('ES256')
    const client: TokenClient = { clientId: 'partner-a', auth: { method: 'private_key_jwt', signingKeyPem, alg: 'ES256', kid: 'k1' }, identity: undefined }
    const h = hooks()
    const before = as.requests.length
    const token = await requestClientCredentialsToken(settings(as), client, { kind: 'dpop', key }, h)
    assert.equal(token.tokenType, 'DPoP')
    assert.equal(token.accessToken, `token-${minted.length}-${key.jkt}`)
    assert.deepEqual(
      as.requests.slice(before).map((r) => [r.status, r.error, r.nonce, r.clientAuth]),
      [
        [400, 'use_dpop_nonce', false, 'private_key_jwt'],
        [200, undefined, true, 'private_key_jwt'],
      ],
    )
    assert.equal(h.exchanges.length, 2)
    // The assertion is a fresh JWT per attempt, audience = the issuer (FAPI 2.0 SP 5.3.2.1-8), and registered as a secret.
    const assertions = h.exchanges.map((e) => new URLSearchParams(e.request.body).get('client_assertion')!)
    assert.notEqual(assertions[0], assertions[1])
    const claims = decodeJwt(assertions[1]!)
    assert.equal(claims.aud, as.issuer)
    assert.equal(claims.iss, 'partner-a')
    assert.equal(claims.sub, 'partner-a')
    for (const secret of [...assertions, token.accessToken]) assert.ok(h.secrets.includes(secret))
    // Proofs at the token endpoint have no ath and carry the nonce on the retry.
    const retryProof = h.exchanges[1]!.request.headers.find(([n]) => n === 'DPoP')![1]
    const proofClaims = decodeJwt(retryProof)
    assert.equal(proofClaims.ath, undefined)
    assert.equal(typeof proofClaims.nonce, 'string')
    assert.ok(h.secrets.includes(retryProof))
  })

  it('private_key_jwt + DPoP with a configured certificate: presents it in the handshake and still gets a DPoP-bound token', async () => {
    const key = await generateDpopKey('ES256')
    const client: TokenClient = { clientId: 'partner-a', auth: { method: 'private_key_jwt', signingKeyPem, alg: 'ES256', kid: 'k1' }, identity: identity() }
    const before = as.requests.length
    const token = await requestClientCredentialsToken(settings(as), client, { kind: 'dpop', key }, hooks())
    assert.equal(token.tokenType, 'DPoP')
    assert.equal(minted.at(-1)!.jkt, key.jkt)
    assert.deepEqual(
      as.requests.slice(before).map((r) => r.certificate),
      [true, true],
    )
  })

  it('tls_client_auth + certificate binding: returns a Bearer token bound to the certificate', async () => {
    const client: TokenClient = { clientId: 'partner-mtls', auth: { method: 'tls_client_auth' }, identity: identity() }
    const token = await requestClientCredentialsToken(settings(as), client, { kind: 'mtls' }, hooks())
    assert.equal(token.tokenType, 'Bearer')
    assert.ok(minted.at(-1)!.x5t)
  })

  it('refuses a token whose token_type does not match the binding (RFC 9449 §5)', async () => {
    const key = await generateDpopKey('ES256')
    const client: TokenClient = { clientId: 'partner-a', auth: { method: 'private_key_jwt', signingKeyPem, alg: 'ES256', kid: undefined }, identity: undefined }
    await assert.rejects(
      requestClientCredentialsToken(settings(asWrongType), client, { kind: 'dpop', key }, hooks()),
      (error: Error) => error instanceof TokenEndpointError && /token_type is "Bearer", expected DPoP/.test(error.message),
    )
  })

  it('reports the OAuth error of a refused request', async () => {
    const key = await generateDpopKey('ES256')
    const client: TokenClient = { clientId: 'unknown', auth: { method: 'private_key_jwt', signingKeyPem, alg: 'ES256', kid: undefined }, identity: undefined }
    await assert.rejects(requestClientCredentialsToken(settings(as), client, { kind: 'dpop', key }, hooks()), /answered 401: invalid_client/)
  })

  it('needs a certificate for tls_client_auth before sending anything', async () => {
    const client: TokenClient = { clientId: 'partner-mtls', auth: { method: 'tls_client_auth' }, identity: undefined }
    const h = hooks()
    await assert.rejects(requestClientCredentialsToken(settings(as), client, { kind: 'mtls' }, h), /needs a client certificate/)
    assert.equal(h.exchanges.length, 0)
  })
})
