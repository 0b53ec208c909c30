// private_key_jwt client assertions (RFC 7523 §3, OIDC Core §9) as a FAPI 2.0 partner signs
// them (audience = the issuer as a string, FAPI 2.0 SP 5.3.2.1-8), and the variants the
// authorization-server checks send: another audience, no `sub`, expired, RS256, from the future.
import { createPrivateKey, randomUUID, type KeyObject } from 'node:crypto'
import { SignJWT } from 'jose'
import type { ProofAlgorithm } from './proofs.ts'

export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
const LIFETIME_SECONDS = 60

export interface AssertionSigner {
  readonly signingKeyPem: string
  readonly alg: ProofAlgorithm
  readonly kid: string | undefined
}

/** What differs from a valid assertion; offsets are seconds from now. */
export interface AssertionVariant {
  readonly aud?: string | readonly string[]
  readonly omitSub?: true
  readonly iatOffset?: number
  readonly nbfOffset?: number
  readonly expOffset?: number
  /** Signs with RS256 (RSA keys only). */
  readonly alg?: 'RS256'
}

/** Whether the key can sign RS256 (an RSA key that is not restricted to PSS). */
export function canSignRs256(signingKeyPem: string): boolean {
  try {
    return createPrivateKey(signingKeyPem).asymmetricKeyType === 'rsa'
  } catch {
    return false
  }
}

export function signClientAssertion(
  clientId: string,
  signer: AssertionSigner,
  issuer: string,
  nowSeconds: number,
  variant: AssertionVariant = {},
): Promise<string> {
  const key: KeyObject = createPrivateKey(signer.signingKeyPem)
  const iat = nowSeconds + (variant.iatOffset ?? 0)
  const claims: Record<string, unknown> = {
    iss: clientId,
    ...(variant.omitSub === undefined && { sub: clientId }),
    aud: variant.aud ?? issuer,
    jti: randomUUID(),
    iat,
    ...(variant.nbfOffset !== undefined && { nbf: nowSeconds + variant.nbfOffset }),
    exp: variant.expOffset !== undefined ? nowSeconds + variant.expOffset : iat + LIFETIME_SECONDS,
  }
  return new SignJWT(claims).setProtectedHeader({ alg: variant.alg ?? signer.alg, ...(signer.kid !== undefined && { kid: signer.kid }) }).sign(key)
}

/** One line on an assertion for the report: header and claims relative to now, no signature. */
export function describeAssertion(jws: string, nowSeconds: number): string {
  try {
    const [header, payload] = jws.split('.')
    const h = JSON.parse(Buffer.from(header ?? '', 'base64url').toString('utf8')) as Record<string, unknown>
    const c = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8')) as Record<string, unknown>
    const parts = Object.entries(c).map(([name, value]) => {
      if ((name === 'iat' || name === 'nbf' || name === 'exp') && typeof value === 'number') {
        const offset = value - nowSeconds
        return `${name}=now${offset === 0 ? '' : offset > 0 ? `+${offset}s` : `${offset}s`}`
      }
      return name === 'jti' ? 'jti=…' : `${name}=${JSON.stringify(value)}`
    })
    return `client assertion alg=${JSON.stringify(h.alg)}; claims {${parts.join(', ')}}`
  } catch {
    return 'client assertion: not decodable'
  }
}
