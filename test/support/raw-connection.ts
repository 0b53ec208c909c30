// A raw TLS connection to a running test gateway: write bytes exactly as given, read the
// answers back one at a time (interim 1xx answers included), see when the server closes.
import { once } from 'node:events'
import { connect, type TLSSocket } from 'node:tls'
import type { Issued } from '../../dev/pki.ts'
import type { TestGateway } from './gateway.ts'

export interface RawResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
  readonly json: Record<string, unknown> | undefined
}

export interface RawConnection {
  readonly socket: TLSSocket
  /** Resolves once the server (or anyone) closed the connection. */
  readonly closed: Promise<void>
  write(data: string): void
  /** The next complete response (every answer of the gateway carries content-length). */
  response(): Promise<RawResponse>
}

/** Parses one response at the start of `buffer`; undefined while it is incomplete. */
export function parseResponse(buffer: string): { response: RawResponse; rest: string } | undefined {
  const headEnd = buffer.indexOf('\r\n\r\n')
  if (headEnd === -1) return undefined
  const [statusLine, ...lines] = buffer.slice(0, headEnd).split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).trim().toLowerCase()
    headers[name] = headers[name] === undefined ? line.slice(colon + 1).trim() : `${headers[name]}, ${line.slice(colon + 1).trim()}`
  }
  const length = Number(headers['content-length'] ?? 0)
  const bodyStart = headEnd + 4
  if (buffer.length < bodyStart + length) return undefined
  const body = Buffer.from(buffer.slice(bodyStart, bodyStart + length), 'latin1').toString('utf8')
  let json: Record<string, unknown> | undefined
  try {
    json = JSON.parse(body) as Record<string, unknown>
  } catch {
    json = undefined
  }
  return { response: { status: Number(statusLine!.split(' ')[1]), headers, body, json }, rest: buffer.slice(bodyStart + length) }
}

export async function openConnection(gw: TestGateway, identity?: Issued): Promise<RawConnection> {
  const socket = connect({
    host: '127.0.0.1',
    port: gw.gateway.partnerPort,
    ca: gw.pki.root.certPem,
    ...(identity && { cert: identity.certPem.trimEnd() + '\n' + gw.pki.intermediate.certPem, key: identity.keyPem }),
  })
  await once(socket, 'secureConnect')
  let buffer = ''
  let wake: (() => void) | undefined
  let ended = false
  socket.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('latin1')
    wake?.()
  })
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      ended = true
      wake?.()
      resolve()
    }),
  )
  return {
    socket,
    closed,
    write: (data) => void socket.write(data),
    async response() {
      for (;;) {
        const parsed = parseResponse(buffer)
        if (parsed) {
          buffer = parsed.rest
          return parsed.response
        }
        if (ended) throw new Error(`connection closed before a complete response: ${JSON.stringify(buffer.slice(0, 200))}`)
        await new Promise<void>((resolve) => (wake = resolve))
      }
    },
  }
}

export function rawRequest(gw: TestGateway, method: string, path: string, headers: [string, string][] = [], body = ''): string {
  const lines = [`${method} ${path} HTTP/1.1`, `Host: 127.0.0.1:${gw.gateway.partnerPort}`, ...headers.map(([name, value]) => `${name}: ${value}`)]
  return `${lines.join('\r\n')}\r\n\r\n${body}`
}
