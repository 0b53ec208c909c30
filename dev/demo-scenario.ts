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
