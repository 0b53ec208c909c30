// The demo's second act: the gateway as the FAPI 2.0 face of a legacy OAuth 2.0 server. A partner gets
// a DPoP-bound token through the gateway and uses it; then the ways around the binding, each refused.
import { randomUUID } from 'node:crypto'
import { SignJWT } from 'jose'
import { signInForCode } from './legacy-server.ts'
import type { FacadeEnvironment } from './facade-environment.ts'
import type { Issued } from './pki.ts'
import { createPartnerClient, createProof, generateDpopKey, type PartnerResponse } from '../src/client/partner-client.ts'
import { resourceError, type DemoScenario } from './demo-scenario.ts'

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
const RESOURCE_PATH = '/accounts/42'

/** The error of a token-endpoint answer (RFC 6749 §5.2 body), or of a resource answer (its challenge). */
export function tokenEndpointError(response: PartnerResponse): string | undefined {
  return typeof response.json?.error === 'string' ? response.json.error : undefined
}

export interface FacadeDemo {
  readonly scenarios: readonly DemoScenario[]
  close(): Promise<void>
}

export async function buildFacadeScenarios(facade: FacadeEnvironment): Promise<FacadeDemo> {
  const { pki, legacy } = facade
  const caPem = pki.root.certPem
  const identity = (leaf: Issued) => ({ certPem: leaf.certPem.trimEnd() + '\n' + pki.intermediate.certPem, keyPem: leaf.keyPem })
  const gateway = createPartnerClient({ baseUrl: facade.issuer, caPem })
  const partnerB = createPartnerClient({ baseUrl: facade.issuer, caPem, identity: identity(pki.partnerB) })
  const legacyDirect = createPartnerClient({ baseUrl: legacy.url, caPem })
  const tokenPath = new URL(facade.tokenEndpoint).pathname
  const partnerKey = await generateDpopKey('ES256')
  const imposterKey = await generateDpopKey('ES256')

  const assertion = async () => {
    const now = Math.floor(Date.now() / 1000)
    return new SignJWT({ iss: facade.partnerA.clientId, sub: facade.partnerA.clientId, aud: facade.issuer, jti: randomUUID(), iat: now, exp: now + 60 })
      .setProtectedHeader({ alg: 'ES256', kid: facade.partnerA.publicJwk.kid })
      .sign(facade.partnerA.privateKey)
  }
  const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString()
  const formHeader: [string, string] = ['content-type', 'application/x-www-form-urlencoded']
  /** partner-a at the gateway's token endpoint: private_key_jwt and a DPoP proof of its key. */
  const tokenThroughGateway = async (fields: Record<string, string>) =>
    gateway.send(
      'POST',
      tokenPath,
      [formHeader, ['dpop', await createProof(partnerKey, { htm: 'POST', htu: facade.tokenEndpoint })]],
      form({ ...fields, client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion() }),
    )
  const useToken = async (token: string, key = partnerKey) =>
    gateway.send('GET', RESOURCE_PATH, [
      ['authorization', `DPoP ${token}`],
      ['dpop', await createProof(key, { htm: 'GET', htu: facade.issuer + RESOURCE_PATH, accessToken: token })],
    ])
  /** The token of a token answer; a failed answer is what the scenario shows then. */
  const accessTokenOf = (response: PartnerResponse) => (response.status === 200 ? (response.json?.access_token as string | undefined) : undefined)

  let issued: string | undefined
  const scenarios: DemoScenario[] = [
    {
      name: 'token through the gateway, used',
      expectStatus: 200,
      expectError: undefined,
      errorOf: resourceError,
      run: async () => {
        const answer = await tokenThroughGateway({ grant_type: 'client_credentials', scope: 'accounts:read' })
        issued = accessTokenOf(answer)
        return issued ? useToken(issued) : answer
      },
    },
    {
      name: 'legacy token, gateway bypassed',
      expectStatus: 401,
      expectError: 'invalid_token',
      errorOf: resourceError,
      run: async () => {
        // Someone holding the legacy client's secret asks the legacy server directly: no binding is recorded.
        const secret = facade.legacyClients['partner-a']!
        const answer = await legacyDirect.send(
          'POST',
          new URL(legacy.tokenEndpoint).pathname,
          [formHeader, ['authorization', `Basic ${Buffer.from(`${secret.clientId}:${secret.secret}`).toString('base64')}`]],
          form({ grant_type: 'client_credentials', scope: 'accounts:read' }),
        )
        const direct = accessTokenOf(answer)
        return direct ? useToken(direct) : answer
      },
    },
    {
      name: 'gateway token, another DPoP key',
      expectStatus: 401,
      expectError: 'invalid_token',
      errorOf: resourceError,
      run: async () => {
        if (!issued) return tokenThroughGateway({ grant_type: 'client_credentials', scope: 'accounts:read' })
        return useToken(issued, imposterKey)
      },
    },
    {
      name: 'client_secret_basic at gateway',
      expectStatus: 401,
      expectError: 'invalid_client',
      errorOf: tokenEndpointError,
      run: () =>
        gateway.send(
          'POST',
          tokenPath,
          [formHeader, ['authorization', `Basic ${Buffer.from(`${facade.partnerA.clientId}:a-guessed-secret`).toString('base64')}`]],
          form({ grant_type: 'client_credentials' }),
        ),
    },
    {
      name: "another partner's refresh token",
      expectStatus: 400,
      expectError: 'invalid_grant',
      errorOf: tokenEndpointError,
      run: async () => {
        const redirectUri = 'https://partner-a.example/callback'
        const code = await signInForCode(legacy, { clientId: facade.legacyClients['partner-a']!.clientId, redirectUri, scope: 'accounts:read' })
        const answer = await tokenThroughGateway({ grant_type: 'authorization_code', code, redirect_uri: redirectUri })
        const refreshToken = answer.status === 200 ? (answer.json?.refresh_token as string | undefined) : undefined
        if (!refreshToken) return answer
        // partner-b authenticates with its own certificate and presents partner-a's refresh token.
        return partnerB.send(
          'POST',
          tokenPath,
          [formHeader],
          form({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: facade.partnerB.clientId }),
        )
      },
    },
  ]
  return {
    scenarios,
    close: async () => {
      await Promise.all([gateway.close(), partnerB.close(), legacyDirect.close()])
    },
  }
}
