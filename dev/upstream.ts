// A demo data API that knows nothing of FAPI: it answers with what it was sent, so the
// demo and the tests can see which requests reached it and with which identity headers.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface ReceivedRequest {
  readonly method: string
  readonly url: string
  readonly headers: IncomingHttpHeaders
  readonly rawHeaders: readonly string[]
  readonly bodyBytes: number
  /** The body exactly as it arrived, so tests can compare what the gateway forwarded. */
  readonly body: Buffer
}

export interface DemoUpstream {
  readonly url: string
  readonly received: ReceivedRequest[]
  close(): Promise<void>
}

export async function startDemoUpstream(host = '127.0.0.1', port = 0): Promise<DemoUpstream> {
  const received: ReceivedRequest[] = []
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, bodyBytes: body.length, body }
      received.push(seen)
      const answer = JSON.stringify({
        account: 'demo-account-1',
        balance: '1024.00',
        seenBy: {
          clientId: req.headers['x-fapi-gateway-client-id'],
          subject: req.headers['x-fapi-gateway-subject'],
          scopes: req.headers['x-fapi-gateway-scopes'],
        },
      })
      res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) })
      res.end(answer)
    })
  })
  await new Promise<void>((resolve) => server.listen(port, host, resolve))
  return {
    url: `http://${host}:${(server.address() as AddressInfo).port}`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
