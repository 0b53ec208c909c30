// Key pairs of the CA, its delegated OCSP responder and generated partner keys: generation,
// PKCS#8 files readable by the owner only, strength rules, and signing parameters.
import { createHash, createPrivateKey, createPublicKey, generateKeyPair as generateNodeKeyPair, type KeyObject, type webcrypto } from 'node:crypto'
import { statSync, readFileSync } from 'node:fs'
import { promisify } from 'node:util'
import { CaError } from './ca-error.ts'

export const KEY_TYPES = ['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072'] as const
export type KeyType = (typeof KEY_TYPES)[number]

const generate = promisify(generateNodeKeyPair)

const MIN_RSA_BITS = 2048
// EC keys of at least P-256 (FAPI 2.0 SP §5.4.1; RFC 8705 leaves the rest to the deployment).
const ACCEPTED_EC_CURVES = new Set(['prime256v1', 'secp384r1', 'secp521r1'])

export function parseKeyType(value: string, source: string): KeyType {
  if ((KEY_TYPES as readonly string[]).includes(value)) return value as KeyType
  throw new CaError(`${source}: unknown key type "${value}" (use one of ${KEY_TYPES.join(', ')})`)
}

export interface KeyPair {
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
}

export async function generateKeyPair(type: KeyType): Promise<KeyPair> {
  switch (type) {
    case 'ec-p256':
      return generate('ec', { namedCurve: 'P-256' })
    case 'ec-p384':
      return generate('ec', { namedCurve: 'P-384' })
    case 'rsa-2048':
      return generate('rsa', { modulusLength: 2048 })
    case 'rsa-3072':
      return generate('rsa', { modulusLength: 3072 })
    default:
      throw new CaError(`unknown key type ${String(type)}`)
  }
}

export function privateKeyPem(key: KeyObject): string {
  return key.export({ format: 'pem', type: 'pkcs8' }).toString()
}

export function spkiDer(publicKey: KeyObject): Buffer {
  return publicKey.export({ format: 'der', type: 'spki' })
}

/** SHA-256 of the SubjectPublicKeyInfo, hex: how the index recognises a key seen before. */
export function keySha256(publicKey: KeyObject): string {
  return createHash('sha256').update(spkiDer(publicKey)).digest('hex')
}

/** Why a public key is too weak to certify, or undefined when it is acceptable. */
export function keyStrengthProblem(publicKey: KeyObject): string | undefined {
  const details = publicKey.asymmetricKeyDetails
  switch (publicKey.asymmetricKeyType) {
    case 'rsa': {
      const bits = details?.modulusLength ?? 0
      return bits >= MIN_RSA_BITS ? undefined : `RSA key of ${bits} bits; at least ${MIN_RSA_BITS} required`
    }
    case 'ec': {
      const curve = details?.namedCurve ?? 'unknown'
      return ACCEPTED_EC_CURVES.has(curve) ? undefined : `EC key on curve ${curve}; P-256, P-384 or P-521 required`
    }
    case 'ed25519':
    case 'ed448':
      return undefined
    default:
      return `key type ${publicKey.asymmetricKeyType ?? 'unknown'} is not accepted (RSA >= 2048, EC >= P-256, Ed25519)`
  }
}

/**
 * Reads a PKCS#8 private key, refusing a file that anyone but its owner can read or write
 * (the same rule ssh applies to its keys).
 */
export function readPrivateKeyFile(path: string): KeyObject {
  let mode: number
  try {
    mode = statSync(path).mode
  } catch (error) {
    throw new CaError(`${path}: cannot read the private key (${(error as NodeJS.ErrnoException).code ?? String(error)})`)
  }
  if ((mode & 0o077) !== 0) {
    throw new CaError(`${path}: private key is accessible by group or others (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); run chmod 600 ${path}`)
  }
  try {
    return createPrivateKey(readFileSync(path))
  } catch (error) {
    throw new CaError(`${path}: not a PEM private key (${error instanceof Error ? error.message : String(error)})`)
  }
}

export function publicKeyFromSpki(der: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' })
}

type HashName = 'sha256' | 'sha384' | 'sha512'

export interface SigningKey {
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
  /** For @peculiar/x509 generators. */
  readonly cryptoKey: webcrypto.CryptoKey
  readonly signingAlgorithm: { name: 'ECDSA'; hash: string } | { name: 'RSASSA-PKCS1-v1_5' }
  /** For node:crypto sign() of OCSP responses. */
  readonly hash: HashName
  /** signatureAlgorithm OID matching hash and key (RFC 5758 §3.2, RFC 4055 §5). */
  readonly signatureOid: string
  /** Whether the AlgorithmIdentifier carries NULL parameters (RSA) or none (ECDSA, RFC 5758 §3.2). */
  readonly nullParameters: boolean
}

const EC_SIGNING: Record<string, { hash: HashName; webHash: string; oid: string; webCurve: string }> = {
  prime256v1: { hash: 'sha256', webHash: 'SHA-256', oid: '1.2.840.10045.4.3.2', webCurve: 'P-256' },
  secp384r1: { hash: 'sha384', webHash: 'SHA-384', oid: '1.2.840.10045.4.3.3', webCurve: 'P-384' },
  secp521r1: { hash: 'sha512', webHash: 'SHA-512', oid: '1.2.840.10045.4.3.4', webCurve: 'P-521' },
}
const SHA256_WITH_RSA = '1.2.840.113549.1.1.11'

export async function toSigningKey(privateKey: KeyObject, source: string): Promise<SigningKey> {
  const publicKey = createPublicKey(privateKey)
  const problem = keyStrengthProblem(publicKey)
  if (problem) throw new CaError(`${source}: ${problem}`)
  if (privateKey.asymmetricKeyType === 'ec') {
    const ec = EC_SIGNING[privateKey.asymmetricKeyDetails?.namedCurve ?? '']
    if (!ec) throw new CaError(`${source}: unsupported EC curve`)
    const cryptoKey = await privateKey.toCryptoKey({ name: 'ECDSA', namedCurve: ec.webCurve }, false, ['sign'])
    return {
      privateKey,
      publicKey,
      cryptoKey,
      signingAlgorithm: { name: 'ECDSA', hash: ec.webHash },
      hash: ec.hash,
      signatureOid: ec.oid,
      nullParameters: false,
    }
  }
  if (privateKey.asymmetricKeyType === 'rsa') {
    const cryptoKey = await privateKey.toCryptoKey({ name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign'])
    return {
      privateKey,
      publicKey,
      cryptoKey,
      signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5' },
      hash: 'sha256',
      signatureOid: SHA256_WITH_RSA,
      nullParameters: true,
    }
  }
  throw new CaError(`${source}: a CA key must be EC or RSA, not ${privateKey.asymmetricKeyType ?? 'unknown'}`)
}
