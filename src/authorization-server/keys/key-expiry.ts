// How long the gateway's own keys remain in use: a gauge read at scrape time
// (fapi_gateway_as_key_expiry_seconds, seconds until each key's retireAt; keys without retireAt are
// not reported) and a warning logged at most once per key per day when fewer than
// authorizationServer.keyRotation.expiryWarningDays remain, like the certificates' (src/server/certificate-expiry.ts).
import { Gauge, type Registry } from 'prom-client'
import type { Clock, Logger } from '../../types.ts'
import type { GatewayKeySource } from './key-source.ts'

const DAY_MS = 24 * 60 * 60 * 1000
const DEFAULT_CHECK_INTERVAL_MS = 60 * 60 * 1000

export interface KeyExpiryOptions {
  readonly registry: Registry
  /** The current façade's keys, when it has any. */
  readonly keys: () => GatewayKeySource | undefined
  /** 0: no warnings. */
  readonly warningDays: () => number
  readonly now: Clock
  readonly logger: Pick<Logger, 'warn'>
  readonly checkIntervalMs?: number
}

export interface KeyExpiry {
  /** Logs a warning for keys close to retirement not yet reported today. */
  check(): void
  close(): void
}

export function createKeyExpiry(options: KeyExpiryOptions): KeyExpiry {
  const { now, logger } = options
  /** kid → the day (since the epoch) it was last reported. */
  const reported = new Map<string, number>()

  new Gauge({
    name: 'fapi_gateway_as_key_expiry_seconds',
    help: "Seconds until one of the gateway's own keys (JARM signing, request-object decryption) retires (negative once retired); keys without retireAt are not reported.",
    labelNames: ['kid', 'use'],
    registers: [options.registry],
    collect() {
      this.reset()
      const at = now()
      for (const { kid, use, notAfter } of options.keys()?.expiries() ?? []) this.set({ kid, use }, Math.round((notAfter - at) / 1000))
    },
  })

  function check(): void {
    const warningDays = options.warningDays()
    const expiries = options.keys()?.expiries() ?? []
    if (warningDays > 0) {
      const at = now()
      const today = Math.floor(at / DAY_MS)
      for (const { kid, use, notAfter } of expiries) {
        const remainingMs = notAfter - at
        if (remainingMs >= warningDays * DAY_MS || reported.get(kid) === today) continue
        reported.set(kid, today)
        const when = new Date(notAfter).toISOString()
        logger.warn(
          { kid, use, retireAt: when },
          remainingMs <= 0 ? `gateway key ${kid} retired at ${when}` : `gateway key ${kid} retires in ${Math.floor(remainingMs / DAY_MS)} days, at ${when}`,
        )
      }
    }
    const kids = new Set(expiries.map((e) => e.kid))
    for (const kid of [...reported.keys()]) if (!kids.has(kid)) reported.delete(kid)
  }

  const timer = setInterval(check, options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS)
  timer.unref()
  return { check, close: () => clearInterval(timer) }
}
