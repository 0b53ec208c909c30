// The request pipeline. Each step either hands its evidence to the next or throws a
// GatewayError; nothing is forwarded unless every step passed.
import { GatewayError, refuse, type CheckName } from './errors.ts'
import { checkBinding, checkProofKeyBinding } from './checks/binding.ts'
import { checkClientCert } from './checks/client-cert.ts'
import type { PeerCertificateVerdict } from './types.ts'
import { checkCredentials, type CredentialHeaders } from './checks/credentials.ts'
import { checkDpop, checkDpopOffThread, KEY_BOUND_LATER, type DpopInput, type DpopSettings } from './checks/dpop/check.ts'
import { checkPolicy } from './checks/policy.ts'
import { applyBindingRecord } from './checks/registry-binding.ts'
import { checkReplay, readBinding } from './checks/replay.ts'
import type { RevocationChecker } from './checks/revocation.ts'
import type { TokenVerifier } from './tokens/verifier.ts'
import type { ProofKeyCache } from './checks/dpop/proof-key-cache.ts'
import type { ReplayStore } from './replay/store.ts'
import type { Route, RouteTable } from './routes/route-table.ts'
import type { RevokedTokenList } from './tokens/revoked-tokens.ts'
import type { AccessToken, ClientCert, DpopProof, PresentedToken } from './types.ts'

export interface AuthorizeDeps {
  readonly routes: RouteTable
  readonly revocation: RevocationChecker
  readonly tokens: TokenVerifier
  readonly revokedTokens: RevokedTokenList
  readonly dpop: DpopSettings
  readonly proofKeys: ProofKeyCache
  /** Where proof signatures are verified (config dpop.verifyOn). */
  readonly verifyProofsOn: 'threadPool' | 'eventLoop'
  readonly replay: ReplayStore
  readonly replayTtlMs: number
  /** Scheme, host and port the partners use: the base of every `htu`. */
  readonly publicBaseUrl: string
}

export interface GatewayRequest {
  readonly method: string
  /** Path and query as received. */
  readonly target: string
  readonly headers: CredentialHeaders
  readonly peer: PeerCertificateVerdict
  /**
   * Reads and checks a form body (src/checks/form-body.ts). Called last, once every other check
   * passed, so a client that is not authorized never has its body read or invited with
   * `100 Continue`; a proof whose request is then refused for its body stays spent.
   */
  readonly checkBody?: () => Promise<void>
  readonly nowMs: number
  /** The peer's address, to bound what one address can make the gateway ask the issuer. */
  readonly clientAddress?: string
}

export interface Grant {
  readonly route: Route
  readonly path: string
  readonly cert: ClientCert | undefined
  readonly presented: PresentedToken
  readonly token: AccessToken
  readonly proof: DpopProof | undefined
}

/** What was known when a step refused: for the answer's challenge and the security event. */
export interface Refusal {
  readonly error: GatewayError
  /** The step that refused. */
  readonly check: CheckName
  readonly route: Route | undefined
  readonly cert: ClientCert | undefined
  readonly presented: PresentedToken | undefined
  readonly token: AccessToken | undefined
  readonly proof: DpopProof | undefined
}

export type Verdict = { readonly ok: true; readonly grant: Grant } | { readonly ok: false; readonly refusal: Refusal }

export async function authorize(req: GatewayRequest, deps: AuthorizeDeps): Promise<Verdict> {
  let route: Route | undefined
  let cert: ClientCert | undefined
  let presented: PresentedToken | undefined
  let token: AccessToken | undefined
  let proof: DpopProof | undefined
  let check: CheckName = 'route'
  try {
    const matched = deps.routes.match(req.method, req.target)
    route = matched.route
    check = 'client-certificate'
    cert = checkClientCert(req.peer, route.clientCertificate, req.nowMs)
    check = 'revocation'
    if (cert) await deps.revocation.check(cert, { nowMs: req.nowMs, route: route.name, override: route.revocation })
    check = 'credentials'
    presented = checkCredentials(req.headers, req.target)
    check = 'token'
    token = await deps.tokens.verify(presented, { issuerNames: route.issuerNames, audience: route.audience }, req.nowMs, { clientAddress: req.clientAddress })
    const { value: accessToken, hash: accessTokenHash } = presented
    const dpopInput = (boundJkt: DpopInput['boundJkt']): DpopInput => ({
      method: req.method,
      url: deps.publicBaseUrl + req.target,
      proofHeaders: req.headers.dpop,
      accessToken,
      accessTokenHash,
      boundJkt,
    })
    const checkProof = (input: DpopInput): DpopProof | Promise<DpopProof> =>
      deps.verifyProofsOn === 'threadPool'
        ? checkDpopOffThread(input, deps.dpop, deps.proofKeys, req.nowMs)
        : checkDpop(input, deps.dpop, deps.proofKeys, req.nowMs)

    if (token.facade) {
      // A façade token's binding is its record, read in the round trip that claims the proof's jti: the proof is
      // checked first with its key not yet known, the binding once the record is read. A refused proof claims nothing.
      if (presented.scheme === 'DPoP') {
        check = 'dpop'
        proof = await checkProof(dpopInput(KEY_BOUND_LATER))
      }
      check = 'replay'
      const read = await readBinding(proof, presented.hash, deps.replay, deps.replayTtlMs)
      check = 'token'
      token = applyBindingRecord(token, read.stored, req.nowMs)
      check = 'binding'
      checkBinding(route, presented, token, cert)
      if (proof) {
        check = 'dpop'
        checkProofKeyBinding(token.binding.jkt, proof.jkt)
      }
      check = 'scope'
      checkPolicy(route, token)
      check = 'replay'
      if (read.replayed) refuse('GW_DPOP_REPLAY', 'DPoP proof jti already used with this key')
    } else {
      check = 'binding'
      if (checkBinding(route, presented, token, cert) === 'dpop') {
        check = 'dpop'
        // The cnf.jkt binding is checked in there, before the signature.
        proof = await checkProof(dpopInput(token.binding.jkt))
      }
      check = 'scope'
      checkPolicy(route, token)
      check = 'replay'
      // Last of the header checks, so that a request they refuse never burns a legitimate client's jti; one store round
      // trip answers both the revoked-token list and, for DPoP, the replay claim.
      if (proof) await checkReplay(proof, presented.hash, deps.replay, deps.replayTtlMs)
      else if (await deps.revokedTokens.isRevoked(presented.hash)) refuse('GW_TOKEN_REVOKED', 'on the revoked-token list')
    }
    check = 'body'
    if (req.checkBody) await req.checkBody()
    return { ok: true, grant: { route, path: matched.path, cert, presented, token, proof } }
  } catch (error) {
    const gatewayError = error instanceof GatewayError ? error : new GatewayError('GW_INTERNAL', { detail: 'unexpected error in a check', cause: error })
    return { ok: false, refusal: { error: gatewayError, check, route, cert, presented, token, proof } }
  }
}
