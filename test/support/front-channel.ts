// Helpers for the front-channel tests: a real memory replay store under createFrontChannelState, a
// partner registry, pushed requests as the PAR endpoint stores them, and the settings of both endpoints.
import type { Partner, PartnerRegistry } from '../../src/authorization-server/partners.ts'
import { createFrontChannelState, type FrontChannelState, type PushedRequest } from '../../src/authorization-server/front-channel/state.ts'
import type { AuthorizationEndpointSettings } from '../../src/authorization-server/front-channel/authorization-endpoint.ts'
import { REQUEST_URI_PREFIX } from '../../src/authorization-server/front-channel/par-endpoint.ts'
import type { CallbackSettings } from '../../src/authorization-server/front-channel/callback-endpoint.ts'
import { newSecret } from '../../src/authorization-server/front-channel/secrets.ts'
import { createMemoryReplayStore } from '../../src/replay/memory-store.ts'
import { partner } from './client-authentication.ts'

export const ISSUER = 'https://api.bank.example'
export const CALLBACK_URL = `${ISSUER}/oauth2/callback`

export function frontChannelState(): FrontChannelState {
  return createFrontChannelState(createMemoryReplayStore({ maxEntries: 1000, now: Date.now }))
}

/** A partner with an authorization_code registration and its own legacy client. */
export function codePartner(clientId: string, legacyClientId: string): Partner {
  const base = partner(clientId, { method: 'tls_client_auth', subjectDn: `CN=${clientId}` })
  return { ...base, grantTypes: new Set(['authorization_code']), legacy: { ...base.legacy, clientId: legacyClientId } }
}

export function registryOf(...partners: Partner[]): PartnerRegistry {
  const byId = new Map(partners.map((p) => [p.clientId, p]))
  return { get: (id) => byId.get(id), legacyCredentials: () => undefined, size: byId.size }
}

export function pushedRequest(overrides: Partial<PushedRequest> = {}): PushedRequest {
  return {
    clientId: 'fintech',
    redirectUri: 'https://fintech.example/callback',
    scope: 'accounts',
    state: 'partner-state-1',
    nonce: undefined,
    codeChallenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    dpopJkt: undefined,
    responseMode: undefined,
    expiresAt: Date.now() + 90_000,
    ...overrides,
  }
}

/** Stores a pushed request as the PAR endpoint would and returns its request_uri and reference. */
export async function push(state: FrontChannelState, request: PushedRequest = pushedRequest()): Promise<{ requestUri: string; ref: string }> {
  const ref = newSecret()
  await state.pushRequest(ref, request, 90_000)
  return { ref, requestUri: `${REQUEST_URI_PREFIX}${ref}` }
}

export function authorizationSettings(overrides: Partial<AuthorizationEndpointSettings> = {}): AuthorizationEndpointSettings {
  return {
    issuer: ISSUER,
    callbackUrl: CALLBACK_URL,
    legacyAuthorizationEndpoint: 'https://legacy.bank.example/auth',
    legacyPkce: true,
    sessionLifetimeSeconds: 600,
    openid: false,
    ...overrides,
  }
}

export const callbackSettings: CallbackSettings = { issuer: ISSUER, codeLifetimeSeconds: 60, sessionLifetimeSeconds: 600 }

export function browserRequest(query: Record<string, string> | URLSearchParams, method = 'GET', nowMs = Date.now()) {
  return { method, query: query instanceof URLSearchParams ? query : new URLSearchParams(query), nowMs }
}
