// One line of the demo's tables: what a partner does, and the answer it must get.
import { challengeError, type PartnerResponse } from '../src/client/partner-client.ts'

export interface DemoScenario {
  readonly name: string
  readonly expectStatus: number
  readonly expectError: string | undefined
  /** Where the answer's OAuth error is: the WWW-Authenticate challenge by default. */
  readonly errorOf?: (response: PartnerResponse) => string | undefined
  readonly run: () => Promise<PartnerResponse>
}

/** The OAuth error of a resource answer: its challenge's. */
export function resourceError(response: PartnerResponse): string | undefined {
  return challengeError(response, 'DPoP') ?? challengeError(response, 'Bearer')
}

/** The `error` of a JSON answer (RFC 6749 §5.2 body: the token and PAR endpoints). */
export function tokenEndpointError(response: PartnerResponse): string | undefined {
  return typeof response.json?.error === 'string' ? response.json.error : undefined
}

/** The error the front channel's HTML error page names (shown when no redirect URI can be trusted). */
export function errorPageError(response: PartnerResponse): string | undefined {
  if (!String(response.headers['content-type']).startsWith('text/html')) return undefined
  return /Error: <code>([^<]+)<\/code>/.exec(response.body)?.[1]
}

/** The error of whichever answer a multi-step flow ended on: a resource's, an endpoint's or an error page's. */
export function flowError(response: PartnerResponse): string | undefined {
  return resourceError(response) ?? tokenEndpointError(response) ?? errorPageError(response)
}
