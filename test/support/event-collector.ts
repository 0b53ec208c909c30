// A real HTTP collector for the security event sink: records each POST (headers and NDJSON
// lines), can answer with an error status or hang, and can stop and start again on its port.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'

export interface CollectedBatch {
  readonly headers: IncomingMessage['headers']
  readonly lines: string[]
}

export type CollectorMode = 'accept' | 'hang' | { readonly status: number }

export interface EventCollector {
  readonly url: string
  readonly port: number
  readonly batches: CollectedBatch[]
  /** Every line received, in order. */
  lines(): string[]
  /** POSTs received, including refused ones. */
  attempts(): number
  setMode(mode: CollectorMode): void
  /** Answers the next `count` POSTs with `status`, then goes back to accepting. */
  failNext(count: number, status: number): void
  stop(): Promise<void>
  start(): Promise<void>
  waitForLines(count: number, limitMs?: number): Promise<void>
  close(): Promise<void>
}

export async function startEventCollector(port = 0): Promise<EventCollector> {
  const batches: CollectedBatch[] = []
  const hanging = new Set<ServerResponse>()
  let mode: CollectorMode = 'accept'
  let failures = { count: 0, status: 503 }
  let attempts = 0
  let server: Server | undefined
  let boundPort = port

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      attempts++
      if (failures.count > 0) {
        failures = { ...failures, count: failures.count - 1 }
        res.writeHead(failures.status).end()
        return
      }
      if (mode === 'hang') {
        hanging.add(res)
        return
      }
      if (mode !== 'accept') {
        res.writeHead(mode.status).end()
        return
      }
      batches.push({ headers: req.headers, lines: Buffer.concat(chunks).toString('utf8').split('\n').filter(Boolean) })
      res.writeHead(204).end()
    })
  }

  async function start(): Promise<void> {
    server = createServer(handle)
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject)
      server!.listen(boundPort, '127.0.0.1', () => resolve())
    })
    boundPort = (server.address() as AddressInfo).port
  }

  async function stop(): Promise<void> {
    const current = server
    server = undefined
    if (!current) return
    for (const res of hanging) res.destroy()
    hanging.clear()
    current.closeAllConnections()
    await new Promise<void>((resolve) => current.close(() => resolve()))
  }

  await start()
  return {
    get url() {
      return `http://127.0.0.1:${boundPort}/events`
    },
    get port() {
      return boundPort
    },
    batches,
    lines: () => batches.flatMap((batch) => batch.lines),
    attempts: () => attempts,
    setMode(next) {
      mode = next
      if (next !== 'hang') {
        for (const res of hanging) res.destroy()
        hanging.clear()
      }
    },
    failNext(count, status) {
      failures = { count, status }
    },
    stop,
    start,
    async waitForLines(count, limitMs = 15_000) {
      const deadline = Date.now() + limitMs
      while (batches.flatMap((b) => b.lines).length < count) {
        if (Date.now() > deadline) throw new Error(`collector received ${batches.flatMap((b) => b.lines).length} of ${count} events`)
        await delay(10)
      }
    },
    close: stop,
  }
}
