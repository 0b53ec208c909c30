// A key source for tests (the GatewayKeySource interface) with real jose keys generated in memory: a
// signing key for JARM responses and decryption keys for encrypted request objects, and a partner's
// side of the same: encrypting a request object to the gateway's published key.
import { randomBytes } from 'node:crypto'
import { CompactEncrypt, CompactSign, compactDecrypt, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose'
import type { GatewayDecrypter, GatewayKeySource, GatewaySigner } from '../../src/authorization-server/keys/key-source.ts'

export type SigningAlgorithm = 'ES256' | 'PS256' | 'EdDSA'
export type EncryptionAlgorithm = 'RSA-OAEP-256' | 'ECDH-ES'

export interface TestKeySourceOptions {
  /** The signing key's algorithm; undefined for a key source without one. Default ES256. */
  readonly sign?: SigningAlgorithm | undefined
  /** One decryption key per entry. Default none. */
  readonly decrypt?: readonly EncryptionAlgorithm[]
}

export interface TestKeySource extends GatewayKeySource {
  /** The published encryption keys, as a partner reads them from the gateway's JWKS. */
  readonly encryptionJwks: readonly JWK[]
}

function kidOf(use: string, alg: string): string {
  return `${use}-${alg}-${randomBytes(4).toString('hex')}`
}

async function testSigner(alg: SigningAlgorithm): Promise<{ signer: GatewaySigner; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const kid = kidOf('sig', alg)
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }
  const signer: GatewaySigner = {
    kid,
    alg,
    sign: (payload, typ) => new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg, kid, typ }).sign(privateKey),
  }
  return { signer, publicJwk }
}

async function testDecrypter(alg: EncryptionAlgorithm): Promise<{ decrypter: GatewayDecrypter; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const kid = kidOf('enc', alg)
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'enc' }
  const decrypter: GatewayDecrypter = {
    kid,
    alg,
    async decrypt(jwe) {
      const { plaintext } = await compactDecrypt(jwe, privateKey, { keyManagementAlgorithms: [alg], contentEncryptionAlgorithms: ['A256GCM'] })
      return plaintext
    },
  }
  return { decrypter, publicJwk }
}

export async function testKeySource(options: TestKeySourceOptions = {}): Promise<TestKeySource> {
  const signAlg = 'sign' in options ? options.sign : 'ES256'
  const signing = signAlg === undefined ? undefined : await testSigner(signAlg)
  const decrypting = await Promise.all((options.decrypt ?? []).map(testDecrypter))
  const published = [...(signing ? [signing.publicJwk] : []), ...decrypting.map((d) => d.publicJwk)]
  return {
    signer() {
      if (!signing) throw new Error('no signing key')
      return signing.signer
    },
    decrypters: () => decrypting.map((d) => d.decrypter),
    publicJwks: () => ({ keys: published }),
    expiries: () => published.map((key) => ({ kid: key.kid!, use: key.use as 'sig' | 'enc', notAfter: Date.now() + 86_400_000 })),
    close: async () => {},
    encryptionJwks: decrypting.map((d) => d.publicJwk),
  }
}

export interface EncryptOptions {
  readonly alg?: string
  readonly enc?: string
  /** The kid in the JWE header; undefined leaves it out. Default the key's kid. */
  readonly kid?: string | undefined
  readonly cty?: string
}

/** RFC 9101 §6.1: a (signed) request object encrypted to one of the gateway's published keys, as a partner does it. */
export async function encryptRequestObject(plaintext: string, gatewayKey: JWK, options: EncryptOptions = {}): Promise<string> {
  const alg = options.alg ?? (gatewayKey.alg as string)
  const key = (await importJWK(gatewayKey, alg)) as CryptoKey
  const kid = 'kid' in options ? options.kid : gatewayKey.kid
  return new CompactEncrypt(new TextEncoder().encode(plaintext))
    .setProtectedHeader({ alg, enc: options.enc ?? 'A256GCM', cty: options.cty ?? 'JWT', ...(kid !== undefined && { kid }) })
    .encrypt(key)
}
