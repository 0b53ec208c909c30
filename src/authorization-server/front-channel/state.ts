// What the authorization-code flow remembers between its steps (issue 14): pushed requests (RFC 9126),
// the browser's session at the legacy server, and the codes the gateway issues. All of it in the
// replay store, so that any replica can answer any step; single use through claims, never a read
// followed by a delete.
import { createHash } from 'node:crypto'
import type { ReplayStore } from '../../replay/store.ts'

export interface PushedRequest {
  readonly clientId: string
  readonly redirectUri: string
  readonly scope: string | undefined
  /** The partner's own state, returned to it with the code. */
  readonly state: string | undefined
  readonly nonce: string | undefined
  /** RFC 7636 S256 challenge. */
  readonly codeChallenge: string
  /** RFC 9449 §10: the key the code is bound to (dpop_jkt, or the key of the PAR request's proof). */
  readonly dpopJkt: string | undefined
  /** `jwt` for JARM (FAPI 2.0 Message Signing); undefined for the query. */
  readonly responseMode: 'jwt' | undefined
  /** Milliseconds since the epoch. */
  readonly expiresAt: number
}

/** A browser sent to the legacy server, keyed by the gateway's own `state`. */
export interface AuthorizationSession {
  /** The pushed request's reference (the part of the request_uri after its prefix). */
  readonly requestRef: string
  readonly clientId: string
  /** The PKCE verifier of the gateway's own pair at the legacy server, when the legacy server takes PKCE. */
  readonly legacyCodeVerifier: string | undefined
  readonly expiresAt: number
}

/** A code the gateway issued to a partner, standing for the legacy server's code. */
export interface IssuedCode {
  readonly clientId: string
  readonly redirectUri: string
  readonly codeChallenge: string
  readonly dpopJkt: string | undefined
  readonly scope: string | undefined
  readonly legacyCode: string
  readonly legacyCodeVerifier: string | undefined
  readonly issuedAt: number
  readonly expiresAt: number
}

export interface FrontChannelState {
  pushRequest(ref: string, request: PushedRequest, ttlMs: number): Promise<void>
  readRequest(ref: string): Promise<PushedRequest | undefined>
  /** Marks a pushed request used at the point of authorization; false when it already was. */
  useRequest(ref: string, ttlMs: number): Promise<boolean>
  /** Whether an authorization with this request already completed (a read, not a claim: the callback still claims). */
  isRequestUsed(ref: string): Promise<boolean>
  startSession(state: string, session: AuthorizationSession, ttlMs: number): Promise<void>
  /** The session, once: a second take of the same state finds none. */
  takeSession(state: string): Promise<AuthorizationSession | undefined>
  issueCode(code: string, issued: IssuedCode, ttlMs: number): Promise<void>
  /** The code with whether this is its first redemption; undefined when unknown or expired. */
  redeemCode(code: string): Promise<{ readonly use: 'first' | 'reused'; readonly issued: IssuedCode } | undefined>
  /** The hashes of the tokens a code's first redemption issued, to revoke them on a reuse (RFC 6749 §4.1.2). */
  rememberIssued(code: string, tokenHashes: readonly string[], ttlMs: number): Promise<void>
  issuedFor(code: string): Promise<readonly string[]>
  /** Whether a second redemption was attempted: one that came while the first was still at the legacy server ends the first's tokens too. */
  wasReused(code: string): Promise<boolean>
}

/** Keys hold a hash of the secret, never the secret (a code or a state), and one hash tag per secret for Redis Cluster. */
function hashOf(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('base64url')
}

function parsed<T>(value: string | undefined): T | undefined {
  if (value === undefined) return undefined
  try {
    return JSON.parse(value) as T
  } catch {
    return undefined
  }
}

export function createFrontChannelState(store: ReplayStore): FrontChannelState {
  const keys = {
    request: (ref: string) => `par:{${hashOf(ref)}}`,
    requestUsed: (ref: string) => `par:{${hashOf(ref)}}:used`,
    session: (state: string) => `session:{${hashOf(state)}}`,
    sessionTaken: (state: string) => `session:{${hashOf(state)}}:taken`,
    code: (code: string) => `code:{${hashOf(code)}}`,
    codeRedeemed: (code: string) => `code:{${hashOf(code)}}:redeemed`,
    codeIssued: (code: string) => `code:{${hashOf(code)}}:issued`,
    codeReused: (code: string) => `code:{${hashOf(code)}}:reused`,
  }
  const remainingMs = (expiresAt: number) => Math.max(1, expiresAt - Date.now())
  return {
    pushRequest: (ref, request, ttlMs) => store.set(keys.request(ref), JSON.stringify(request), ttlMs),
    readRequest: async (ref) => parsed<PushedRequest>(await store.get(keys.request(ref))),
    useRequest: (ref, ttlMs) => store.claim(keys.requestUsed(ref), ttlMs),
    isRequestUsed: (ref) => store.has(keys.requestUsed(ref)),
    startSession: (state, session, ttlMs) => store.set(keys.session(state), JSON.stringify(session), ttlMs),
    async takeSession(state) {
      const session = parsed<AuthorizationSession>(await store.get(keys.session(state)))
      if (session === undefined) return undefined
      return (await store.claim(keys.sessionTaken(state), remainingMs(session.expiresAt))) ? session : undefined
    },
    issueCode: (code, issued, ttlMs) => store.set(keys.code(code), JSON.stringify(issued), ttlMs),
    async redeemCode(code) {
      const issued = parsed<IssuedCode>(await store.get(keys.code(code)))
      if (issued === undefined) return undefined
      // Remembered well past the code's life, so that a late reuse is still recognised as one.
      const first = await store.claim(keys.codeRedeemed(code), remainingMs(issued.expiresAt) + 3_600_000)
      if (!first) await store.set(keys.codeReused(code), '1', remainingMs(issued.expiresAt) + 3_600_000)
      return { use: first ? 'first' : 'reused', issued }
    },
    rememberIssued: (code, tokenHashes, ttlMs) => store.set(keys.codeIssued(code), JSON.stringify(tokenHashes), ttlMs),
    issuedFor: async (code) => parsed<string[]>(await store.get(keys.codeIssued(code))) ?? [],
    wasReused: async (code) => (await store.get(keys.codeReused(code))) !== undefined,
  }
}
