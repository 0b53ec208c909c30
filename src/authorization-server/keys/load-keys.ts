// Reads and checks the gateway's own keys (authorizationServer.keys) at start-up and on reload:
// every problem is one line naming the key, and no key material ever appears in a message.
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto'
import type { JWK } from 'jose'
import { ConfigError, type LoadedConfig } from '../../config/load.ts'
import type { GatewayKeyConfig } from '../../config/schema.ts'
import type { GatewayKeyUse } from './key-source.ts'

export interface LoadedGatewayKey {
  readonly kid: string
  readonly use: GatewayKeyUse
  readonly alg: string
  readonly privateKey: KeyObject
  /** The public members only, with kid, use and alg. */
  readonly publicJwk: JWK
  /** ms since the epoch; undefined: active from the start. */
  readonly activeFrom: number | undefined
  readonly retireAt: number | undefined
}

const RSA_MIN_BITS = 2048
const EC_CURVES_FOR_ECDH = ['prime256v1', 'secp384r1', 'secp521r1']

/** Why `key` cannot serve `alg`, or undefined when it can. */
export function keyMismatch(alg: string, key: KeyObject): string | undefined {
  const type = key.asymmetricKeyType
  const details = key.asymmetricKeyDetails ?? {}
  switch (alg) {
    case 'PS256':
    case 'RSA-OAEP-256':
      if (type !== 'rsa' && !(alg === 'PS256' && type === 'rsa-pss')) return `${alg} needs an RSA key, this is ${type}`
      if ((details.modulusLength ?? 0) < RSA_MIN_BITS) return `RSA key of ${details.modulusLength} bits, at least ${RSA_MIN_BITS} needed`
      return undefined
    case 'ES256':
      if (type !== 'ec') return `ES256 needs an EC P-256 key, this is ${type}`
      return details.namedCurve === 'prime256v1' ? undefined : `ES256 needs an EC P-256 key, this is on ${details.namedCurve}`
    case 'EdDSA':
      return type === 'ed25519' ? undefined : `EdDSA needs an Ed25519 key, this is ${type}`
    case 'ECDH-ES':
      if (type === 'x25519') return undefined
      if (type !== 'ec') return `ECDH-ES needs an EC (P-256, P-384, P-521) or X25519 key, this is ${type}`
      return EC_CURVES_FOR_ECDH.includes(details.namedCurve ?? '') ? undefined : `ECDH-ES does not take the curve ${details.namedCurve}`
    default:
      return `unsupported alg ${alg}`
  }
}

/** A PEM (PKCS#8, or any PEM private key node reads) or a private JWK in JSON. */
function parsePrivateKey(text: string): KeyObject {
  const trimmed = text.trim()
  if (trimmed.startsWith('{')) {
    const jwk = JSON.parse(trimmed) as JWK
    if (typeof jwk !== 'object' || jwk === null || !('d' in jwk)) throw new Error('a JWK without its private member')
    return createPrivateKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' })
  }
  return createPrivateKey(trimmed)
}

function publicJwkOf(key: GatewayKeyConfig, privateKey: KeyObject): JWK {
  // Derived from the public key object: no private member can reach the JWKS.
  const { kty, crv, n, e, x, y } = createPublicKey(privateKey).export({ format: 'jwk' }) as JWK
  const members = Object.fromEntries(Object.entries({ kty, crv, n, e, x, y }).filter(([, value]) => value !== undefined))
  return { ...members, kid: key.kid, use: key.use, alg: key.alg }
}

/** The text of a key, from its file or its environment variable; throws a one-line reason. */
function keyText(loaded: LoadedConfig, key: GatewayKeyConfig, env: NodeJS.ProcessEnv): { text: string; from: string } {
  if (key.privateKeyEnv !== undefined) {
    const text = env[key.privateKeyEnv]
    if (!text) throw new Error(`environment variable ${key.privateKeyEnv} is not set`)
    return { text, from: 'privateKeyEnv' }
  }
  try {
    return { text: loaded.readFile(key.privateKeyFile!), from: 'privateKeyFile' }
  } catch (error) {
    throw new Error(`file "${key.privateKeyFile}" cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
  }
}

/** The configured keys, read and checked; a ConfigError listing every problem otherwise. */
export function loadGatewayKeys(loaded: LoadedConfig, env: NodeJS.ProcessEnv): LoadedGatewayKey[] {
  const configured = loaded.config.authorizationServer?.keys ?? []
  const problems: string[] = []
  const keys: LoadedGatewayKey[] = []
  configured.forEach((key, index) => {
    const at = `${loaded.file}: authorizationServer.keys.${index}`
    let source: { text: string; from: string }
    try {
      source = keyText(loaded, key, env)
    } catch (error) {
      problems.push(`${at}.${key.privateKeyEnv !== undefined ? 'privateKeyEnv' : 'privateKeyFile'}: ${(error as Error).message}`)
      return
    }
    let privateKey: KeyObject
    try {
      privateKey = parsePrivateKey(source.text)
    } catch {
      // The parser's message may quote the input: it is not repeated.
      problems.push(`${at}.${source.from}: not a private key (PEM PKCS#8 or a private JWK) for kid ${key.kid}`)
      return
    }
    const mismatch = keyMismatch(key.alg, privateKey)
    if (mismatch) {
      problems.push(`${at}.alg: ${mismatch} (kid ${key.kid})`)
      return
    }
    keys.push({
      kid: key.kid,
      use: key.use,
      alg: key.alg,
      privateKey,
      publicJwk: publicJwkOf(key, privateKey),
      activeFrom: key.activeFrom === undefined ? undefined : Date.parse(key.activeFrom),
      retireAt: key.retireAt === undefined ? undefined : Date.parse(key.retireAt),
    })
  })
  if (problems.length > 0) throw new ConfigError(problems)
  return keys
}
