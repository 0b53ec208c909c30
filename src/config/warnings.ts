// Settings that are valid but weaker than they look: logged at start-up and on a reload that
// brings them in, and printed by check-config. Never a refusal to start.
import type { Logger } from '../types.ts'
import type { GatewayConfig } from './schema.ts'

export interface ConfigWarning {
  /** The configuration key, as docs/configuration.md names it. */
  readonly key: string
  readonly message: string
}

export function configWarnings(config: GatewayConfig): ConfigWarning[] {
  const warnings: ConfigWarning[] = []
  if (config.dpop.nonce.mode === 'optional') {
    warnings.push({
      key: 'dpop.nonce.mode',
      message:
        'optional hands out DPoP nonces but accepts proofs without one (RFC 9449 §8 expects a nonce once one is handed out): ' +
        'a migration mode; set it to required once every client sends nonces',
    })
  }
  return warnings
}

/** One line per warning, naming the key: `<key>: <message>`. */
export function describeConfigWarning(warning: ConfigWarning): string {
  return `${warning.key}: ${warning.message}`
}

/** Logs the warnings of `config` not already logged (`logged`, from the previous call); returns what is current. */
export function logConfigWarnings(config: GatewayConfig, logger: Logger, logged: ReadonlySet<string> = new Set()): Set<string> {
  const lines = new Set<string>()
  for (const warning of configWarnings(config)) {
    const line = describeConfigWarning(warning)
    if (!logged.has(line)) logger.warn({ key: warning.key }, line)
    lines.add(line)
  }
  return lines
}
