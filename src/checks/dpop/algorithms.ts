// The proof algorithms FAPI 2.0 allows (SP §5.4.1) and the keys each may use.

export type DpopAlgorithm = 'ES256' | 'PS256' | 'EdDSA'

/** RFC 9449 §4.3 check 5: the key type each allowed alg needs (OKP: Ed25519 only, FAPI 2.0 SP §5.4.1). */
export const DPOP_KEY_TYPES: Readonly<Record<DpopAlgorithm, { readonly kty: string; readonly crv?: string }>> = {
  ES256: { kty: 'EC', crv: 'P-256' },
  PS256: { kty: 'RSA' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
}
export const MIN_RSA_BITS = 2048
/** Upper bounds on an RSA proof key, so that one verification costs what an ordinary key's does. */
export const MAX_RSA_BITS = 4096
export const RSA_PUBLIC_EXPONENT = 65537n

/** Why an RSA proof key is refused, or undefined: 2048 to 4096 bits, e = 65537. */
export function rsaProofKeyProblem(modulusBits: number, publicExponent: bigint): string | undefined {
  if (modulusBits < MIN_RSA_BITS) return `jwk: RSA key shorter than ${MIN_RSA_BITS} bits`
  if (modulusBits > MAX_RSA_BITS) return `jwk: RSA key longer than ${MAX_RSA_BITS} bits`
  if (publicExponent !== RSA_PUBLIC_EXPONENT) return `jwk: RSA public exponent is not ${RSA_PUBLIC_EXPONENT}`
  return undefined
}
