// Bounds the calls to one introspection endpoint: at most maxInFlight at once (the size of the
// connection pool), at most maxPendingPerClient in flight or waiting per client address, and a
// short queue that refuses at once when full. A flood from one address then costs that address
// refusals while other partners still find a free connection, and nobody waits out a timeout.
import { isIP } from 'node:net'
import { GatewayError, refuse } from '../errors.ts'

export interface IntrospectionLimits {
  readonly maxInFlight: number
  readonly maxPendingPerClient: number
  /** Calls waiting for a free slot; 0 refuses as soon as every slot is taken. */
  readonly maxQueued: number
  readonly maxQueueWaitMs: number
}

export type LimiterRefusal = 'client_limit' | 'queue_full' | 'queue_timeout'

export interface IntrospectionLimiter {
  /**
   * Resolves with the function that frees the slot once the call may start. Refuses with
   * GW_INTROSPECTION_THROTTLED when the client has too many calls pending, GW_INTROSPECTION_BUSY
   * when the queue is full or the wait too long. Without a client address only the global bounds apply.
   */
  acquire(client: string | undefined): Promise<() => void>
  readonly inFlight: number
  readonly queued: number
  /** Refuses every waiting call. */
  close(): void
}

/**
 * Whose calls count together: an IPv4 address (also when IPv4-mapped), or the /64 of an IPv6
 * address, which one subscriber usually holds whole.
 */
export function clientKey(address: string | undefined): string | undefined {
  if (address === undefined) return undefined
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped) return mapped[1]
  const bare = address.split('%')[0]!
  if (isIP(bare) !== 6) return address
  const [head = '', tail] = bare.split('::')
  const groups = (part: string | undefined) => (part ? part.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g])) : [])
  const before = groups(head)
  const after = groups(tail)
  const full = tail === undefined ? before : [...before, ...Array<string>(8 - before.length - after.length).fill('0'), ...after]
  return `${full
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`
}

interface Waiter {
  readonly client: string | undefined
  readonly grant: (release: () => void) => void
  readonly fail: (error: GatewayError) => void
  readonly timer: NodeJS.Timeout
}

export function createIntrospectionLimiter(limits: IntrospectionLimits, onRefused: (reason: LimiterRefusal) => void = () => undefined): IntrospectionLimiter {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < (name === 'maxQueued' ? 0 : 1)) throw new TypeError(`introspection limit ${name} must be a positive integer`)
  }
  let inFlight = 0
  const pending = new Map<string, number>()
  const queue: Waiter[] = []

  function enter(client: string | undefined): void {
    if (client !== undefined) pending.set(client, (pending.get(client) ?? 0) + 1)
  }

  function leave(client: string | undefined): void {
    if (client === undefined) return
    const left = (pending.get(client) ?? 1) - 1
    if (left > 0) pending.set(client, left)
    else pending.delete(client)
  }

  function releaser(client: string | undefined): () => void {
    let released = false
    return () => {
      if (released) return
      released = true
      leave(client)
      const next = queue.shift()
      if (!next) {
        inFlight--
        return
      }
      clearTimeout(next.timer)
      next.grant(releaser(next.client))
    }
  }

  return {
    async acquire(client) {
      if (client !== undefined && (pending.get(client) ?? 0) >= limits.maxPendingPerClient) {
        onRefused('client_limit')
        refuse('GW_INTROSPECTION_THROTTLED', `${limits.maxPendingPerClient} introspection calls already pending for this client address`)
      }
      if (inFlight < limits.maxInFlight) {
        inFlight++
        enter(client)
        return releaser(client)
      }
      if (queue.length >= limits.maxQueued) {
        onRefused('queue_full')
        refuse('GW_INTROSPECTION_BUSY', `${limits.maxInFlight} introspection calls in flight and ${queue.length} waiting`)
      }
      enter(client)
      return new Promise<() => void>((grant, fail) => {
        const waiter: Waiter = {
          client,
          grant,
          fail,
          timer: setTimeout(() => {
            queue.splice(queue.indexOf(waiter), 1)
            leave(client)
            onRefused('queue_timeout')
            fail(new GatewayError('GW_INTROSPECTION_BUSY', { detail: `no introspection slot within ${limits.maxQueueWaitMs} ms` }))
          }, limits.maxQueueWaitMs),
        }
        queue.push(waiter)
      })
    },
    get inFlight() {
      return inFlight
    },
    get queued() {
      return queue.length
    },
    close() {
      for (const waiter of queue.splice(0)) {
        clearTimeout(waiter.timer)
        leave(waiter.client)
        waiter.fail(new GatewayError('GW_ISSUER_UNAVAILABLE', { detail: 'introspection client closed' }))
      }
    },
  }
}
