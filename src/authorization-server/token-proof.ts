// DPoP at the token endpoint (RFC 9449 §5): the resource side's proof check (src/checks/dpop/),
// without `ath`, answered in the token endpoint's form (400 invalid_dpop_proof, 400 use_dpop_nonce),
// and the proof's jti claimed in the same store as the resource side's.
import { createHash } from 'node:crypto'
import { checkDpop, checkDpopOffThread, KEY_BOUND_LATER, type DpopInput, type DpopSettings } from '../checks/dpop/check.ts'
import type { ProofKeyCache } from '../checks/dpop/proof-key-cache.ts'
import { GatewayError } from '../errors.ts'
import type { ReplayStore } from '../replay/store.ts'
import type { DpopProof } from '../types.ts'
import { OAuthError, oauthRefuse, type OAuthErrorCode } from './errors.ts'

export interface TokenProofDeps {
  /** The resource side's settings with the façade's own nonces (RFC 9449 §8: an AS nonce is not an RS nonce). */
  readonly dpop: DpopSettings
  readonly proofKeys: ProofKeyCache
  readonly verifyOn: 'threadPool' | 'eventLoop'
  readonly store: ReplayStore
  readonly replayTtlMs: number
}

export interface TokenProofInput {
  readonly method: string
  /** The endpoint's public URL (issuer origin + path), the only accepted `htu`. */
  readonly url: string
  readonly proofHeaders: readonly string[]
  readonly nowMs: number
}

const AS_CODES: Partial<Record<string, OAuthErrorCode>> = {
  GW_DPOP_INVALID: 'AS_DPOP_INVALID',
  GW_DPOP_MULTIPLE: 'AS_DPOP_INVALID',
  GW_DPOP_BINDING_MISMATCH: 'AS_DPOP_INVALID',
  GW_DPOP_NONCE: 'AS_DPOP_NONCE',
  GW_REPLAY_STORE_UNAVAILABLE: 'AS_STORE_UNAVAILABLE',
}

function asOAuthError(error: unknown): OAuthError {
  if (error instanceof OAuthError) return error
  if (error instanceof GatewayError) return new OAuthError(AS_CODES[error.code] ?? 'AS_INTERNAL', { detail: error.detail, rule: error.rule, cause: error })
  return new OAuthError('AS_INTERNAL', { detail: 'dpop: proof check failed', cause: error })
}

/** The proof of a token request, or undefined when it carries none. Throws OAuthError. */
export async function checkTokenRequestProof(input: TokenProofInput, deps: TokenProofDeps): Promise<DpopProof | undefined> {
  if (input.proofHeaders.length === 0) return undefined
  // No key is bound yet: this proof's key is the one the token will be bound to.
  const dpopInput: DpopInput = {
    method: input.method,
    url: input.url,
    proofHeaders: input.proofHeaders,
    accessToken: '',
    accessTokenHash: undefined,
    boundJkt: KEY_BOUND_LATER,
  }
  let proof: DpopProof
  try {
    proof =
      deps.verifyOn === 'threadPool'
        ? await checkDpopOffThread(dpopInput, deps.dpop, deps.proofKeys, input.nowMs)
        : checkDpop(dpopInput, deps.dpop, deps.proofKeys, input.nowMs)
  } catch (error) {
    throw asOAuthError(error)
  }
  const key = `dpop:{${proof.jkt}}:token:${createHash('sha256').update(proof.jti, 'utf8').digest('base64url')}`
  let first: boolean
  try {
    first = await deps.store.claim(key, deps.replayTtlMs)
  } catch (error) {
    throw asOAuthError(error)
  }
  if (!first) oauthRefuse('AS_DPOP_REPLAY', 'jti: proof already used at the token endpoint')
  return proof
}
