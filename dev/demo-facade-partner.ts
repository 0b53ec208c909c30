// partner-a as the demo plays it at the façade: every request to an endpoint of the gateway carries a fresh
// private_key_jwt assertion and a DPoP proof of the key given; raw requests, so that the table shows the answers.
import { randomUUID } from 'node:crypto'
import { SignJWT } from 'jose'
import type { FacadeEnvironment } from './facade-environment.ts'
import { createPartnerClient, createProof, type DpopKey, type PartnerClient, type PartnerResponse } from '../src/client/partner-client.ts'

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
export const RESOURCE_PATH = '/accounts/42'
export const FORM_HEADER: [string, string] = ['content-type', 'application/x-www-form-urlencoded']

export function formBody(fields: Record<string, string>): string {
  return new URLSearchParams(fields).toString()
}

/** The access token of a token answer; undefined when it failed (then the answer is what a scenario shows). */
export function accessTokenOf(response: PartnerResponse): string | undefined {
  return response.status === 200 ? (response.json?.access_token as string | undefined) : undefined
}

export interface FacadePartner {
  /** The gateway, without a client certificate: partner-a authenticates with private_key_jwt. */
  readonly gateway: PartnerClient
  /** Form fields POSTed to an endpoint of the gateway (its full URL) with partner-a's assertion and a DPoP proof of `key`. */
  post(endpointUrl: string, fields: Record<string, string>, key: DpopKey): Promise<PartnerResponse>
  /** A resource request with the token and a DPoP proof of `key`. */
  useToken(token: string, key: DpopKey): Promise<PartnerResponse>
  close(): Promise<void>
}

export function createFacadePartner(facade: FacadeEnvironment): FacadePartner {
  const gateway = createPartnerClient({ baseUrl: facade.issuer, caPem: facade.pki.root.certPem })
  const assertion = async () => {
    const now = Math.floor(Date.now() / 1000)
    return new SignJWT({ iss: facade.partnerA.clientId, sub: facade.partnerA.clientId, aud: facade.issuer, jti: randomUUID(), iat: now, exp: now + 60 })
      .setProtectedHeader({ alg: 'ES256', kid: facade.partnerA.publicJwk.kid })
      .sign(facade.partnerA.privateKey)
  }
  return {
    gateway,
    post: async (endpointUrl, fields, key) =>
      gateway.send(
        'POST',
        new URL(endpointUrl).pathname,
        [FORM_HEADER, ['dpop', await createProof(key, { htm: 'POST', htu: endpointUrl })]],
        formBody({ ...fields, client_assertion_type: ASSERTION_TYPE, client_assertion: await assertion() }),
      ),
    useToken: async (token, key) =>
      gateway.send('GET', RESOURCE_PATH, [
        ['authorization', `DPoP ${token}`],
        ['dpop', await createProof(key, { htm: 'GET', htu: facade.issuer + RESOURCE_PATH, accessToken: token })],
      ]),
    close: () => gateway.close(),
  }
}
