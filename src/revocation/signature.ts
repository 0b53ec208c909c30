// Verifies the signature of an OCSP response or CRL with node:crypto. Only algorithms
// without SHA-1 are accepted (RFC 9155 spirit; a SHA-1 signature counts as no signature).
import { verify, type KeyObject } from 'node:crypto'
import type { AlgorithmIdentifier } from '@peculiar/asn1-x509'

type Verification = { readonly digest: string | null; readonly keyTypes: readonly string[] }

const SIGNATURE_ALGORITHMS: Readonly<Record<string, Verification>> = {
  '1.2.840.113549.1.1.11': { digest: 'sha256', keyTypes: ['rsa'] },
  '1.2.840.113549.1.1.12': { digest: 'sha384', keyTypes: ['rsa'] },
  '1.2.840.113549.1.1.13': { digest: 'sha512', keyTypes: ['rsa'] },
  '1.2.840.10045.4.3.2': { digest: 'sha256', keyTypes: ['ec'] },
  '1.2.840.10045.4.3.3': { digest: 'sha384', keyTypes: ['ec'] },
  '1.2.840.10045.4.3.4': { digest: 'sha512', keyTypes: ['ec'] },
  '1.3.101.112': { digest: null, keyTypes: ['ed25519'] },
  '1.3.101.113': { digest: null, keyTypes: ['ed448'] },
}

/** True only when `signature` over `data` verifies with `publicKey` under an accepted algorithm. */
export function verifySignedData(
  algorithm: AlgorithmIdentifier,
  data: ArrayBuffer | Uint8Array,
  signature: ArrayBuffer | Uint8Array,
  publicKey: KeyObject,
): boolean {
  const accepted = SIGNATURE_ALGORITHMS[algorithm.algorithm]
  if (!accepted || !accepted.keyTypes.includes(publicKey.asymmetricKeyType ?? '')) return false
  try {
    return verify(accepted.digest, toBytes(data), publicKey, toBytes(signature))
  } catch {
    return false
  }
}

export function isAcceptedSignatureAlgorithm(oid: string): boolean {
  return oid in SIGNATURE_ALGORITHMS
}

function toBytes(value: ArrayBuffer | Uint8Array): Uint8Array {
  return value instanceof Uint8Array ? value : new Uint8Array(value)
}
