// The demo's second act: the gateway as the FAPI 2.0 face of a legacy OAuth 2.0 server. A partner gets
// a DPoP-bound token through the gateway and uses it; then the ways around the binding, each refused; then the
// authorization-code flow through the legacy server's login pages and the attacks on it (dev/demo-code-flow.ts).
import type { FacadeEnvironment } from './facade-environment.ts'
import { createPartnerClient, generateDpopKey } from '../src/client/partner-client.ts'
import { accessTokenOf, createFacadePartner, FORM_HEADER, formBody } from './demo-facade-partner.ts'
import { buildCodeFlowScenarios } from './demo-code-flow.ts'
import { resourceError, tokenEndpointError, type DemoScenario } from './demo-scenario.ts'
import type { Issued } from './pki.ts'

export interface FacadeDemo {
  readonly scenarios: readonly DemoScenario[]
  close(): Promise<void>
}

/** The façade's scenarios; the environment runs the front channel (startFacadeEnvironment with frontChannel: true). */
export async function buildFacadeScenarios(facade: FacadeEnvironment): Promise<FacadeDemo> {
  const { pki, legacy } = facade
  const caPem = pki.root.certPem
  const identity = (leaf: Issued) => ({ certPem: leaf.certPem.trimEnd() + '\n' + pki.intermediate.certPem, keyPem: leaf.keyPem })
  const partner = createFacadePartner(facade)
  const partnerB = createPartnerClient({ baseUrl: facade.issuer, caPem, identity: identity(pki.partnerB) })
  const legacyDirect = createPartnerClient({ baseUrl: legacy.url, caPem })
  const tokenPath = new URL(facade.tokenEndpoint).pathname
  const partnerKey = await generateDpopKey('ES256')
  const imposterKey = await generateDpopKey('ES256')
  const codeFlow = await buildCodeFlowScenarios(facade, partner, partnerKey, imposterKey)
  const clientCredentials = () => partner.post(facade.tokenEndpoint, { grant_type: 'client_credentials', scope: 'accounts:read' }, partnerKey)

  let issued: string | undefined
  const scenarios: DemoScenario[] = [
    {
      name: 'token through the gateway, used',
      expectStatus: 200,
      expectError: undefined,
      errorOf: resourceError,
      run: async () => {
        const answer = await clientCredentials()
        issued = accessTokenOf(answer)
        return issued ? partner.useToken(issued, partnerKey) : answer
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
          [FORM_HEADER, ['authorization', `Basic ${Buffer.from(`${secret.clientId}:${secret.secret}`).toString('base64')}`]],
          formBody({ grant_type: 'client_credentials', scope: 'accounts:read' }),
        )
        const direct = accessTokenOf(answer)
        return direct ? partner.useToken(direct, partnerKey) : answer
      },
    },
    {
      name: 'gateway token, another DPoP key',
      expectStatus: 401,
      expectError: 'invalid_token',
      errorOf: resourceError,
      run: async () => (issued ? partner.useToken(issued, imposterKey) : clientCredentials()),
    },
    {
      name: 'client_secret_basic at gateway',
      expectStatus: 401,
      expectError: 'invalid_client',
      errorOf: tokenEndpointError,
      run: () =>
        partner.gateway.send(
          'POST',
          tokenPath,
          [FORM_HEADER, ['authorization', `Basic ${Buffer.from(`${facade.partnerA.clientId}:a-guessed-secret`).toString('base64')}`]],
          formBody({ grant_type: 'client_credentials' }),
        ),
    },
    codeFlow.wholeFlow,
    codeFlow.anotherKey,
    {
      name: "another partner's refresh token",
      expectStatus: 400,
      expectError: 'invalid_grant',
      errorOf: tokenEndpointError,
      run: async () => {
        // partner-b authenticates with its own certificate and presents the refresh token of partner-a's code flow.
        const refreshToken = codeFlow.refreshToken()
        if (refreshToken === undefined) return { status: 0, headers: {}, body: '', json: { error: 'no refresh token from the flow' } }
        return partnerB.send(
          'POST',
          tokenPath,
          [FORM_HEADER],
          formBody({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: facade.partnerB.clientId }),
        )
      },
    },
    codeFlow.codeReplay,
    codeFlow.wrongVerifier,
    codeFlow.anotherClientsRequestUri,
  ]
  return {
    scenarios,
    close: async () => {
      await Promise.all([partner.close(), partnerB.close(), legacyDirect.close(), codeFlow.close()])
    },
  }
}
