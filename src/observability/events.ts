// Security events: one JSON line per refusal (and other security-relevant facts), with
// identities and thumbprints but never a token, proof or key.
import type { Logger } from '../types.ts'

export interface SecurityEvent {
  readonly event: string
  readonly reason?: string
  readonly route?: string
  readonly clientId?: string
  readonly subject?: string
  readonly certThumbprint?: string
  readonly keyThumbprint?: string
  readonly sourceAddress?: string
  readonly interactionId?: string
  readonly status?: number
  readonly detail?: string
}

export interface SecurityEvents {
  emit(event: SecurityEvent): void
}

export function createSecurityEvents(logger: Logger): SecurityEvents {
  return {
    emit(event) {
      logger.warn({ security: true, ...event }, event.event)
    },
  }
}
