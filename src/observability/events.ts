// Security events: one ECS document (src/observability/ecs.ts) per refusal and per other
// security-relevant fact, as a JSON line on stdout and, optionally, to an HTTP sink.
// emit() never waits: it formats, writes the line and queues it, and returns.
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { Clock } from '../types.ts'
import { toEcs, type SecurityEvent, type SecurityAction } from './ecs.ts'

export type { SecurityEvent, SecurityAction } from './ecs.ts'
export { SECURITY_ACTIONS, refusalAction } from './ecs.ts'

export interface SecurityEvents {
  emit(event: SecurityEvent): void
  /** Flushes what the sinks still hold, waiting at most timeoutMs. */
  close(timeoutMs?: number): Promise<void>
}

/** Where event lines go: stdout, an HTTP collector, a test's buffer. */
export interface SecurityEventSink {
  /** One JSON document, without the newline. Must not block or throw. */
  write(line: string): void
  close(timeoutMs: number): Promise<void>
}

/** JSON lines on a stream (process.stdout by default), one write per event. */
export function createStreamSink(stream: NodeJS.WritableStream): SecurityEventSink {
  return {
    write: (line) => void stream.write(`${line}\n`),
    close: async () => {},
  }
}

export interface SecurityEventsOptions {
  readonly sinks: readonly SecurityEventSink[]
  readonly clock: Clock
  readonly hostname?: string
  /** Called once per event, e.g. to count it by action. */
  readonly onEmit?: (action: SecurityAction) => void
}

export function createSecurityEvents(options: SecurityEventsOptions): SecurityEvents {
  const host = options.hostname ?? hostname()
  return {
    emit(event) {
      const document = toEcs(event, { now: options.clock(), id: randomUUID(), hostname: host })
      const line = JSON.stringify(document)
      options.onEmit?.(document.event.action)
      for (const sink of options.sinks) sink.write(line)
    },
    async close(timeoutMs = 2_000) {
      await Promise.allSettled(options.sinks.map((sink) => sink.close(timeoutMs)))
    },
  }
}
