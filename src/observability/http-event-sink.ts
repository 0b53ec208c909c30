// Ships security events to an HTTP collector (Vector, Fluent Bit, Logstash, Splunk HEC raw, …)
// as batched NDJSON POSTs. The request path only pushes to a bounded queue; delivery, retries
// with exponential backoff and the drops they cost happen in the background and are counted.
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent, request } from 'undici'
import type { Logger } from '../types.ts'
import type { SecurityEventSink } from './events.ts'

export type EventDropReason = 'queue_full' | 'sink_unavailable' | 'rejected' | 'shutdown'

export interface HttpEventSinkOptions {
  readonly url: string
  /** Events per POST; a full batch is sent at once, a partial one every flushIntervalMs. */
  readonly batchSize: number
  readonly flushIntervalMs: number
  /** Events held while the collector is slow or away; beyond this they are dropped. */
  readonly maxQueue: number
  /** Connect, headers and body timeout of one POST. */
  readonly timeoutMs: number
  /** Retries of a batch after a network error, a timeout, 408, 429 or 5xx. */
  readonly maxRetries: number
  /** First retry delay; doubles per retry (with jitter), at most 30 s. */
  readonly retryBackoffMs: number
  readonly headers?: Readonly<Record<string, string>>
  /** Value of the Authorization header (from the environment, never the file). */
  readonly authorization?: string
  /** CA bundle for an https collector with a private CA. */
  readonly caPem?: string
  readonly onDrop?: (reason: EventDropReason, count: number) => void
  readonly onDelivered?: (count: number) => void
  readonly logger?: Logger
}

export interface HttpEventSink extends SecurityEventSink {
  /** Events waiting to be sent (not counting a batch in flight). */
  queued(): number
}

const MAX_BACKOFF_MS = 30_000

type PostResult = 'delivered' | 'retry' | 'rejected'

export function createHttpEventSink(options: HttpEventSinkOptions): HttpEventSink {
  const queue: string[] = []
  const dispatcher = new Agent({
    connections: 2,
    connectTimeout: options.timeoutMs,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    ...(options.caPem ? { connect: { ca: options.caPem } } : {}),
  })
  const headers: Record<string, string> = { ...options.headers, 'content-type': 'application/x-ndjson' }
  if (options.authorization) headers.authorization = options.authorization
  // wake: cuts backoff sleeps short when closing; deadline: abandons whatever is left.
  const wake = new AbortController()
  const deadline = new AbortController()
  let sending: Promise<void> | undefined
  let scheduled = false
  let closing = false
  let healthy = true

  const drop = (reason: EventDropReason, count: number) => {
    if (count > 0) options.onDrop?.(reason, count)
  }

  function backoffMs(attempt: number): number {
    const ceiling = Math.min(options.retryBackoffMs * 2 ** attempt, MAX_BACKOFF_MS)
    return ceiling / 2 + (Math.random() * ceiling) / 2
  }

  function noteHealth(ok: boolean, why: string): void {
    if (ok === healthy) return
    healthy = ok
    if (ok) options.logger?.info({ sink: 'http' }, 'security event sink reachable again')
    else options.logger?.warn({ sink: 'http', why }, 'security event sink unavailable: events are queued, then dropped')
  }

  async function post(batch: readonly string[]): Promise<PostResult> {
    try {
      const response = await request(options.url, {
        method: 'POST',
        dispatcher,
        headers,
        body: `${batch.join('\n')}\n`,
        signal: AbortSignal.any([deadline.signal, AbortSignal.timeout(options.timeoutMs)]),
      })
      await response.body.dump()
      const status = response.statusCode
      if (status >= 200 && status < 300) {
        noteHealth(true, '')
        return 'delivered'
      }
      noteHealth(false, `HTTP ${status}`)
      return status === 408 || status === 429 || status >= 500 ? 'retry' : 'rejected'
    } catch (error) {
      noteHealth(false, (error as NodeJS.ErrnoException).code ?? (error as Error).name)
      return 'retry'
    }
  }

  async function deliver(batch: readonly string[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const result = await post(batch)
      if (result === 'delivered') return options.onDelivered?.(batch.length)
      if (result === 'rejected') return drop('rejected', batch.length)
      if (deadline.signal.aborted) return drop('shutdown', batch.length)
      if (attempt >= options.maxRetries || (closing && attempt > 0)) return drop('sink_unavailable', batch.length)
      await sleep(backoffMs(attempt), undefined, { signal: wake.signal, ref: false }).catch(() => {})
    }
  }

  /** Sends full batches; with `all`, also the partial one at the end. One POST at a time. */
  async function drain(all: boolean): Promise<void> {
    while (!deadline.signal.aborted && queue.length >= (all ? 1 : options.batchSize)) {
      await deliver(queue.splice(0, options.batchSize))
    }
  }

  function kick(all: boolean): void {
    if (sending) return
    sending = drain(all).finally(() => {
      sending = undefined
      if (!closing && queue.length >= options.batchSize) schedule()
    })
  }

  /** Never starts network work inside emit(): the request that emitted goes on first. */
  function schedule(): void {
    if (scheduled) return
    scheduled = true
    setImmediate(() => {
      scheduled = false
      kick(false)
    })
  }

  const timer = setInterval(() => kick(true), options.flushIntervalMs)
  timer.unref()

  return {
    write(line) {
      if (closing) return drop('shutdown', 1)
      if (queue.length >= options.maxQueue) return drop('queue_full', 1)
      queue.push(line)
      if (queue.length >= options.batchSize) schedule()
    },
    queued: () => queue.length,
    async close(timeoutMs) {
      if (closing) return
      closing = true
      clearInterval(timer)
      wake.abort()
      const limit = setTimeout(() => deadline.abort(), timeoutMs)
      try {
        await sending
        await drain(true)
      } finally {
        clearTimeout(limit)
        drop('shutdown', queue.splice(0).length)
        await dispatcher.destroy().catch(() => {})
      }
    },
  }
}
