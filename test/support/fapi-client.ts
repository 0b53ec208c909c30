// The FAPI client side of the façade's end-to-end tests: oauth4webapi over undici, trusting the dev PKI
// and presenting a partner certificate when given one.
import * as oauth from 'oauth4webapi'
import { Agent, fetch as undiciFetch } from 'undici'
import { generateKeyPair } from 'jose'
import { testPki } from './gateway.ts'

export interface Transport {
  readonly agent: Agent
  readonly options: { [oauth.customFetch]: typeof fetch }
}

export async function transport(cert?: { certPem: string; keyPem: string }): Promise<Transport> {
  const pki = await testPki()
  const agent = new Agent({ connect: { ca: pki.root.certPem, ...(cert && { cert: cert.certPem, key: cert.keyPem }) } })
  const customFetch = ((url: string, init: RequestInit) => undiciFetch(url, { ...(init as object), dispatcher: agent })) as unknown as typeof fetch
  return { agent, options: { [oauth.customFetch]: customFetch } }
}

export async function discover(issuerUrl: string, t: Transport): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(issuerUrl)
  return oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { ...t.options, algorithm: 'oauth2' }))
}

/** oauth4webapi's own DPoP nonce retry, as its documentation shows it. */
export async function withNonceRetry<T>(attempt: () => Promise<T>): Promise<T> {
  try {
    return await attempt()
  } catch (error) {
    if (oauth.isDPoPNonceError(error)) return attempt()
    throw error
  }
}

export type DpopKeyPair = Parameters<typeof oauth.DPoP>[1]

export async function dpopKeys(): Promise<DpopKeyPair> {
  return (await generateKeyPair('ES256', { extractable: false })) as DpopKeyPair
}
