import { randomUUID } from 'node:crypto'

// RFC 9110 field value characters, bounded: one rule for what the gateway accepts from a client,
// answers with and passes upstream.
const INTERACTION_ID = /^[\x21-\x7e]{1,128}$/

export function isInteractionId(value: string): boolean {
  return INTERACTION_ID.test(value)
}

/** The client's `x-fapi-interaction-id` when it is one, else a fresh UUID (FAPI 2.0: every answer carries one). */
export function interactionIdOf(value: string | undefined): string {
  return value !== undefined && isInteractionId(value) ? value : randomUUID()
}
