// DPoP proofs as the runner sends them: valid ones through the project's partner client
// (jose), and deliberately broken ones for the negative checks (RFC 9449 §4.2, §4.3).
// A broken proof is a draft (header and claims as plain objects) changed in one place, then
// signed with jose where the header still names a signing algorithm, by hand where it does not.
import { KeyObject, constants, randomUUID, sign } from 'node:crypto'
import { CompactSign, exportJWK, type CompactJWSHeaderParameters, type CryptoKey } from 'jose'
import { DPOP_TYP } from '../checks/dpop/check.ts'
import { accessTokenHash, createProof, generateDpopKey, type DpopKey, type ProofAlgorithm } from '../client/partner-client.ts'

export { accessTokenHash, generateDpopKey, type DpopKey, type ProofAlgorithm }

export interface ProofInput {
  readonly key: DpopKey
  readonly htm: string
  readonly htu: string
  /** For `ath`; undefined leaves `ath` out (token endpoint proofs, RFC 9449 §4.2). */
  readonly accessToken: string | undefined
  readonly nonce: string | undefined
  readonly iat: number
  readonly jti?: string
}

export interface ProofDraft {
  readonly header: Record<string, unknown>
  readonly claims: Record<string, unknown>
}

const encoder = new TextEncoder()

export function validProof(input: ProofInput): Promise<string> {
  return createProof(input.key, {
    htm: input.htm,
    htu: input.htu,
    iat: input.iat,
    ...(input.accessToken !== undefined && { accessToken: input.accessToken }),
    ...(input.nonce !== undefined && { nonce: input.nonce }),
    ...(input.jti !== undefined && { jti: input.jti }),
  })
}

export function draftProof(input: ProofInput): ProofDraft {
  return {
    header: { typ: DPOP_TYP, alg: input.key.alg, jwk: input.key.publicJwk },
    claims: {
      jti: input.jti ?? randomUUID(),
      htm: input.htm,
      htu: input.htu,
      iat: input.iat,
      ...(input.accessToken !== undefined && { ath: accessTokenHash(input.accessToken) }),
      ...(input.nonce !== undefined && { nonce: input.nonce }),
    },
  }
}

/** Signs with jose; the header's `alg` decides how (ES256, PS256, EdDSA, RS256, HS256). */
export function signDraft(draft: ProofDraft, key: CryptoKey | KeyObject | Uint8Array): Promise<string> {
  return new CompactSign(encoder.encode(JSON.stringify(draft.claims))).setProtectedHeader(draft.header as CompactJWSHeaderParameters).sign(key)
}

function segment(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url')
}

/**
 * Signs a draft whose header carries no usable `alg` with the key's own algorithm, so that
 * the missing parameter is the only fault (jose will not sign without `alg`).
 */
export function signDraftByHand(draft: ProofDraft, key: DpopKey): string {
  const signingInput = `${segment(draft.header)}.${segment(draft.claims)}`
  const privateKey = KeyObject.from(key.privateKey as unknown as Parameters<typeof KeyObject.from>[0])
  const data = Buffer.from(signingInput, 'latin1')
  const signature =
    key.alg === 'ES256'
      ? sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' })
      : key.alg === 'PS256'
        ? sign('sha256', data, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
        : sign(null, data, privateKey)
  return `${signingInput}.${signature.toString('base64url')}`
}

/** RFC 7515 §A.5 unsecured JWS: `alg: none` and an empty signature. */
export function unsecuredProof(draft: ProofDraft): string {
  return `${segment({ ...draft.header, alg: 'none' })}.${segment(draft.claims)}.`
}

/** Flips one bit of the first signature byte; the encoding stays canonical base64url. */
export function corruptSignature(jws: string): string {
  const [header, payload, signature = ''] = jws.split('.')
  const bytes = Buffer.from(signature, 'base64url')
  bytes[0] = bytes[0]! ^ 0x01
  return `${header}.${payload}.${bytes.toString('base64url')}`
}

/** `header.payload`: two segments, not a JWS (RFC 9449 §4.3 check 2). */
export function withoutSignature(jws: string): string {
  return jws.split('.').slice(0, 2).join('.')
}

/** The proof key's JWK with its private members (RFC 9449 §4.3 check 7). */
export async function privateJwkOf(key: DpopKey): Promise<Record<string, unknown>> {
  return { ...(await exportJWK(key.privateKey)) }
}

/** Header and claims of a compact JWS, for describing a proof in a report (never the proof itself). */
export function decodeProof(jws: string): ProofDraft | undefined {
  const [header, payload] = jws.split('.')
  try {
    return {
      header: JSON.parse(Buffer.from(header ?? '', 'base64url').toString('utf8')) as Record<string, unknown>,
      claims: JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8')) as Record<string, unknown>,
    }
  } catch {
    return undefined
  }
}

/** One line on what a proof holds, relative to `nowSeconds`; key material and hashes are not shown. */
export function describeProof(jws: string, nowSeconds: number): string {
  const draft = decodeProof(jws)
  if (!draft) return 'proof: not decodable'
  const { header, claims } = draft
  const jwk = header.jwk as Record<string, unknown> | undefined
  const headerParts = Object.keys(header).map((name) => {
    if (name === 'jwk') {
      const privateMembers = jwk ? Object.keys(jwk).filter((member) => ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'].includes(member)) : []
      return `jwk=${jwk?.kty ?? '?'}${jwk?.crv ? ` ${String(jwk.crv)}` : ''}${privateMembers.length > 0 ? ` with private members (${privateMembers.join(',')})` : ''}`
    }
    return `${name}=${JSON.stringify(header[name])}`
  })
  const claimParts = Object.keys(claims).map((name) => {
    const value = claims[name]
    if ((name === 'iat' || name === 'nbf' || name === 'exp') && typeof value === 'number') {
      const offset = value - nowSeconds
      return `${name}=now${offset === 0 ? '' : offset > 0 ? `+${offset}s` : `${offset}s`}`
    }
    if (name === 'ath' || name === 'nonce' || name === 'jti') return `${name}=…`
    return `${name}=${JSON.stringify(value)}`
  })
  return `proof header {${headerParts.join(', ')}}; claims {${claimParts.join(', ')}}; ${jws.split('.').length} segments`
}
