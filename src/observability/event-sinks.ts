// Builds the security event stream the configuration asks for: JSON lines on stdout
// (events.stdout) and an HTTP collector (events.http), counted in the gateway's metrics.
import { ConfigError } from '../config/load.ts'
import type { GatewayConfig } from '../config/schema.ts'
import type { Clock, Logger } from '../types.ts'
import { createSecurityEvents, createStreamSink, type SecurityEventSink, type SecurityEvents } from './events.ts'
import { createHttpEventSink } from './http-event-sink.ts'
import type { GatewayMetrics } from './metrics.ts'

export interface EventSinkDeps {
  readonly config: GatewayConfig['events']
  readonly env: NodeJS.ProcessEnv
  /** The configuration file, for error messages. */
  readonly file: string
  readonly readFile: (path: string) => string
  readonly metrics: GatewayMetrics
  readonly clock: Clock
  readonly logger: Logger
  /** Where events.stdout writes; process.stdout unless a test captures it. */
  readonly stream?: NodeJS.WritableStream
}

export function createConfiguredSecurityEvents(deps: EventSinkDeps): SecurityEvents {
  const { config, metrics } = deps
  const sinks: SecurityEventSink[] = []
  if (config.stdout) sinks.push(createStreamSink(deps.stream ?? process.stdout))
  const http = config.http
  if (http) {
    const authorization = http.authEnv ? deps.env[http.authEnv] : undefined
    if (http.authEnv && !authorization) throw new ConfigError([`${deps.file}: events.http.authEnv: environment variable ${http.authEnv} is not set`])
    const sink = createHttpEventSink({
      ...http,
      authorization,
      caPem: http.caFile ? deps.readFile(http.caFile) : undefined,
      onDrop: (reason, count) => metrics.securityEventsDropped.inc({ reason }, count),
      onDelivered: (count) => metrics.securityEventsDelivered.inc(count),
      logger: deps.logger,
    })
    metrics.watchEventQueue(() => sink.queued())
    sinks.push(sink)
  }
  return createSecurityEvents({ sinks, clock: deps.clock, onEmit: (action) => metrics.securityEvents.inc({ action }) })
}
