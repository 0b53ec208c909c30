// Connections that have not finished the TLS handshake (Node closes each after handshakeTimeout):
// at most maxPending of them are held at once. A new connection beyond that closes the oldest
// pending one, so a flood of idle sockets cannot keep a legitimate client out: it would have to
// open maxPending connections within the time that client needs for its handshake.
import type { Server } from 'node:https'
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'

export interface HandshakeGuardOptions {
  readonly maxPending: number
  /** A pending handshake was closed to make room for a new connection. */
  onEvicted(): void
  onPendingChanged(count: number): void
}

export interface HandshakeGuard {
  /** Whether the guard closed the connection under this TLS socket (its failure is already counted). */
  evicted(socket: TLSSocket): boolean
}

// The TCP 4-tuple names a connection on both its TCP socket ('connection') and its TLS socket ('secureConnection').
function connectionKey(socket: Socket): string | undefined {
  const { localAddress, localPort, remoteAddress, remotePort } = socket
  if (localAddress === undefined || remoteAddress === undefined) return undefined
  return `${localAddress}|${localPort}|${remoteAddress}|${remotePort}`
}

export function guardHandshakes(server: Server, options: HandshakeGuardOptions): HandshakeGuard {
  // Insertion order is arrival order: the first entry is the oldest pending handshake.
  const pending = new Map<string, Socket>()
  const evicted = new WeakSet<Socket>()

  function forget(key: string, socket: Socket): void {
    if (pending.get(key) !== socket) return
    pending.delete(key)
    options.onPendingChanged(pending.size)
  }

  server.on('connection', (socket: Socket) => {
    const key = connectionKey(socket)
    if (key === undefined) return void socket.destroy()
    while (pending.size >= options.maxPending) {
      const [oldestKey, oldest] = pending.entries().next().value!
      forget(oldestKey, oldest)
      evicted.add(oldest)
      oldest.destroy()
      options.onEvicted()
    }
    pending.set(key, socket)
    options.onPendingChanged(pending.size)
    socket.once('close', () => forget(key, socket))
  })

  server.on('secureConnection', (socket: TLSSocket) => {
    const key = connectionKey(socket)
    const tcp = key === undefined ? undefined : pending.get(key)
    if (tcp !== undefined) forget(key!, tcp)
  })

  return {
    // Node keeps the TCP socket a server-side TLSSocket wraps as _parent; without it such a close
    // is counted a second time, as ECONNRESET.
    evicted: (socket) => {
      const parent = (socket as TLSSocket & { _parent?: Socket })._parent
      return parent !== undefined && evicted.has(parent)
    },
  }
}
