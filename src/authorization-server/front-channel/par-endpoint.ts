// The pushed authorization request endpoint (RFC 9126, FAPI 2.0 SP §5.3.2.2): the partner
// authenticates as at the token endpoint, its authorization request is checked here, before any
// browser is involved, and kept in the replay store under a reference of 256 random bits; the
// authorization endpoint later takes it by that reference and uses nothing else the browser sends.
import { randomBytes, type X509Certificate } from 'node:crypto'
import type { DpopProof, PeerCertificateVerdict } from '../../types.ts'
import type { ClientAuthenticator } from '../client-authentication/authenticate.ts'
import { OAuthError } from '../errors.ts'
import type { GatewayKeySource } from '../keys/key-source.ts'
import type { Partner } from '../partners.ts'
import type { TokenRequestFacts } from '../token-endpoint.ts'
import { checkTokenRequestProof, type TokenProofDeps } from '../token-proof.ts'
import { AUTHORIZATION_PARAMETERS, checkAuthorizationParameters, refuseParameter } from './authorization-parameters.ts'
import { currentSigner } from './jarm.ts'
import { verifyRequestObject } from './request-object.ts'
import type { FrontChannelState, PushedRequest } from './state.ts'

/** RFC 9126 §2.2: the URN prefix of the request_uri values the endpoint hands out. */
export const REQUEST_URI_PREFIX = 'urn:ietf:params:oauth:request_uri:'
/** 32 random bytes, base64url: FAPI 2.0 SP §5.4.1-4 asks at least 128 bits. */
const REFERENCE_BYTES = 32
const REFERENCE = /^[A-Za-z0-9_-]{43}$/
/** FAPI 2.0 SP §5.3.2.2-6: expires_in under 600 seconds. */
const MAX_REQUEST_LIFETIME_SECONDS = 599

export interface ParSettings {
  readonly issuer: string
  /** The PAR endpoint's public URL: the `htu` of its DPoP proofs. */
  readonly parUrl: string
  readonly requestLifetimeSeconds: number
  /** `required`: every partner pushes signed request objects (FAPI 2.0 Message Signing); else only those registered so. */
  readonly requestObject: 'optional' | 'required'
}

export interface ParDeps {
  readonly authenticator: ClientAuthenticator
  readonly state: FrontChannelState
  readonly proofs: TokenProofDeps
  /**
   * The gateway's own keys: its signing key makes response_mode=jwt (JARM) available, its decryption keys
   * encrypted request objects. Without them, both are refused.
   */
  readonly keys?: GatewayKeySource | undefined
}

export interface ParRequest {
  /** The form parameters, each present at most once (duplicates were refused before). */
  readonly params: ReadonlyMap<string, string>
  readonly authorization: string | undefined
  readonly proofHeaders: readonly string[]
  readonly peer: PeerCertificateVerdict
  readonly peerCertificate: X509Certificate | undefined
  readonly nowMs: number
}

export interface ParAnswer {
  readonly request_uri: string
  readonly expires_in: number
}

/** The stored request's reference in a request_uri this endpoint handed out; undefined for any other value. */
export function requestRefOf(requestUri: string): string | undefined {
  if (!requestUri.startsWith(REQUEST_URI_PREFIX)) return undefined
  const ref = requestUri.slice(REQUEST_URI_PREFIX.length)
  return REFERENCE.test(ref) ? ref : undefined
}

/**
 * RFC 9101 §6.3 / RFC 9126 §3: with a request object, only its content counts; the form's own
 * authorization parameters are ignored (client_id and client authentication were read already).
 */
async function authorizationRequestOf(request: ParRequest, partner: Partner, settings: ParSettings, deps: ParDeps): Promise<ReadonlyMap<string, string>> {
  const requestObject = request.params.get('request')
  if (requestObject === undefined) {
    if (settings.requestObject === 'required' || partner.config.requireSignedRequestObject)
      throw new OAuthError('AS_REQUEST_OBJECT_INVALID', { detail: 'request: a signed request object is required', rule: 'request' })
    return request.params
  }
  return verifyRequestObject(requestObject, deps.authenticator.keysOf(partner), {
    issuer: settings.issuer,
    clientId: partner.clientId,
    nowMs: request.nowMs,
    stringParameters: AUTHORIZATION_PARAMETERS,
    decrypters: deps.keys?.decrypters(request.nowMs) ?? [],
  })
}

/** RFC 9449 §10: the key the future code is bound to. dpop_jkt and a proof at PAR, when both are sent, must name one key. */
function codeBindingOf(dpopJkt: string | undefined, proof: DpopProof | undefined): string | undefined {
  if (proof !== undefined && dpopJkt !== undefined && proof.jkt !== dpopJkt)
    refuseParameter('AS_DPOP_INVALID', 'dpop_jkt', "not the thumbprint of the DPoP proof's key")
  return dpopJkt ?? proof?.jkt
}

function newReference(): string {
  return randomBytes(REFERENCE_BYTES).toString('base64url')
}

/** Throws OAuthError for every refusal; the caller answers 201 with the result. */
export async function answerPushedAuthorizationRequest(
  request: ParRequest,
  settings: ParSettings,
  deps: ParDeps,
  facts: TokenRequestFacts,
): Promise<ParAnswer> {
  const lifetimeSeconds = settings.requestLifetimeSeconds
  if (!Number.isInteger(lifetimeSeconds) || lifetimeSeconds < 1 || lifetimeSeconds > MAX_REQUEST_LIFETIME_SECONDS)
    throw new OAuthError('AS_INTERNAL', { detail: 'settings: requestLifetimeSeconds must be 1 to 599', rule: 'settings' })

  const { partner } = await deps.authenticator.authenticate({
    params: request.params,
    authorization: request.authorization,
    peer: request.peer,
    peerCertificate: request.peerCertificate,
    nowMs: request.nowMs,
  })
  facts.clientId = partner.clientId
  if (!partner.grantTypes.has('authorization_code'))
    refuseParameter('AS_GRANT_TYPE_NOT_ALLOWED', 'grant_type', 'authorization_code not registered for the client')
  // RFC 9126 §2.1: a pushed request cannot itself refer to a pushed request.
  if (request.params.has('request_uri')) refuseParameter('AS_REQUEST_MALFORMED', 'request_uri', 'not allowed in a pushed authorization request')

  const authorizationRequest = await authorizationRequestOf(request, partner, settings, deps)
  const checked = checkAuthorizationParameters(authorizationRequest, partner, { jarm: currentSigner(deps.keys, request.nowMs) !== undefined })

  const proof = await checkTokenRequestProof({ method: 'POST', url: settings.parUrl, proofHeaders: request.proofHeaders, nowMs: request.nowMs }, deps.proofs)
  const dpopJkt = codeBindingOf(checked.dpopJkt, proof)
  if (dpopJkt !== undefined) facts.keyThumbprint = dpopJkt

  const ttlMs = lifetimeSeconds * 1000
  const pushed: PushedRequest = {
    clientId: partner.clientId,
    redirectUri: checked.redirectUri,
    scope: checked.scope,
    state: checked.state,
    nonce: checked.nonce,
    codeChallenge: checked.codeChallenge,
    dpopJkt,
    responseMode: checked.responseMode,
    expiresAt: request.nowMs + ttlMs,
  }
  const ref = newReference()
  try {
    await deps.state.pushRequest(ref, pushed, ttlMs)
  } catch (error) {
    throw new OAuthError('AS_STORE_UNAVAILABLE', { detail: 'store: the pushed request could not be kept', rule: 'store', cause: error })
  }
  return { request_uri: `${REQUEST_URI_PREFIX}${ref}`, expires_in: lifetimeSeconds }
}
