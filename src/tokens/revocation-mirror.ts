// A local copy of the revoked-token list, so that an mTLS or Bearer request needs no Redis round
// trip. Revocations are announced on a Redis channel in the same atomic step that stores them
// (RedisReplayStore.put with announceOn); the mirror subscribes, then loads what is already
// stored. It answers only while it can prove it is current:
//
// Every heartbeatMs it publishes a heartbeat on a channel of its own, from a second connection,
// and notes when it sent it. Redis runs commands one at a time and writes a subscriber's
// messages in that order, so when the heartbeat comes back, every revocation Redis stored before
// the heartbeat has come back before it. The mirror is therefore complete up to the send time
// of the last heartbeat that returned. When that is more than maxStalenessMs ago (Redis slow or
// away, the subscription cut, a heartbeat lost), lookup() answers undefined and the caller asks
// Redis itself, which fails closed.
//
// Redis Cluster is not supported: messages published on different nodes reach a subscriber in
// no guaranteed order, so a heartbeat would prove nothing.
import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { Redis } from 'ioredis'
import type { Logger } from '../types.ts'

export interface RevocationMirror {
  /**
   * Whether the key is on the list: true or false when the mirror holds every revocation stored
   * more than maxStalenessMs ago, undefined when it cannot say (ask the store).
   */
  lookup(key: string): boolean | undefined
  /** A revocation this instance stored: known at once, before its announcement comes back. */
  add(key: string, ttlMs: number): void
  /** True while lookup() answers from the copy. */
  current(): boolean
  /** Lookups answered from the copy (hits) and left to the store (misses). */
  stats(): { hits: number; misses: number }
  close(): Promise<void>
}

export interface RevocationMirrorOptions {
  /** A new Redis connection (single or sentinel topology) each call; the mirror opens two. */
  readonly connect: () => Redis
  /** The store's key prefix: announcements come on `<prefix><channel>`, keys are `<prefix><keyPattern>`. */
  readonly prefix: string
  readonly channel: string
  /** Keys already stored that the first load reads, as a pattern after the prefix, e.g. `revoked:*`. */
  readonly keyPattern: string
  readonly heartbeatMs: number
  readonly maxStalenessMs: number
  /** Past this many entries the mirror stops answering (the caller asks Redis) rather than grow. */
  readonly maxEntries: number
  readonly logger?: Logger
  /** Monotonic milliseconds. */
  readonly now?: () => number
}

const SCAN_COUNT = 1000
const RETRY_MS = 1000

export function createRevocationMirror(options: RevocationMirrorOptions): RevocationMirror {
  const { prefix, heartbeatMs, maxStalenessMs, maxEntries, logger } = options
  const silentAfterMs = Math.max(4 * maxStalenessMs, 2_000)
  const now = options.now ?? (() => performance.now())
  const revocationChannel = prefix + options.channel
  const heartbeatChannel = `${prefix}${options.channel}:heartbeat:${randomUUID()}`
  const expiries = new Map<string, number>()
  const subscriber = options.connect()
  const commands = options.connect()

  // Bumped on every (re)subscription: answers that belong to an older one are ignored.
  let subscription = 0
  let loaded = false
  let overflowed = false
  let closed = false
  /** Send time of the last heartbeat that came back on the current subscription. */
  let currentAsOf = Number.NEGATIVE_INFINITY
  const heartbeatsInFlight = new Map<number, { subscription: number; sentAt: number }>()
  let nextHeartbeat = 0

  const remember = (key: string, ttlMs: number): void => {
    if (!Number.isFinite(ttlMs) || ttlMs <= 0 || overflowed) return
    const expiresAt = now() + ttlMs
    if (expiries.size >= maxEntries && !expiries.has(key)) {
      dropExpired()
      if (expiries.size >= maxEntries) {
        overflowed = true
        expiries.clear()
        logger?.error({ maxEntries }, 'revocation mirror: more revoked tokens than replay.revocationMirror.maxEntries; asking Redis from now on')
        return
      }
    }
    if ((expiries.get(key) ?? 0) < expiresAt) expiries.set(key, expiresAt)
  }
  const dropExpired = (): void => {
    const at = now()
    for (const [key, expiresAt] of expiries) if (expiresAt <= at) expiries.delete(key)
  }

  const sendHeartbeat = (): void => {
    if (closed || subscriber.status !== 'ready' || commands.status !== 'ready') return
    const sentAt = now()
    const [oldest] = heartbeatsInFlight.values()
    if (oldest && sentAt - oldest.sentAt > silentAfterMs) {
      // Published, yet never delivered: a subscription that died without its socket closing.
      logger?.warn({ silentForMs: Math.round(sentAt - oldest.sentAt) }, 'revocation mirror: heartbeats stopped coming back; reconnecting its subscription')
      heartbeatsInFlight.clear()
      subscriber.disconnect(true)
      return
    }
    const id = nextHeartbeat++
    heartbeatsInFlight.set(id, { subscription, sentAt })
    commands.publish(heartbeatChannel, String(id)).catch(() => heartbeatsInFlight.delete(id))
  }
  const heartbeatReturned = (message: string): void => {
    const id = Number(message)
    const heartbeat = heartbeatsInFlight.get(id)
    if (!heartbeat) return
    // Heartbeats come back in order: older ones still listed were lost with a connection.
    for (const older of heartbeatsInFlight.keys()) {
      if (older > id) break
      heartbeatsInFlight.delete(older)
    }
    if (heartbeat.subscription === subscription) currentAsOf = Math.max(currentAsOf, heartbeat.sentAt)
  }

  const loadStored = async (mine: number): Promise<void> => {
    let cursor = '0'
    do {
      const [next, keys] = await commands.scan(cursor, 'MATCH', escapeGlob(prefix) + options.keyPattern, 'COUNT', SCAN_COUNT)
      if (mine !== subscription) return
      if (keys.length > 0) {
        const pipeline = commands.pipeline()
        for (const key of keys) pipeline.pttl(key)
        const ttls = (await pipeline.exec()) ?? []
        if (mine !== subscription) return
        keys.forEach((key, i) => {
          const [error, ttl] = ttls[i] ?? [new Error('no answer')]
          if (error) throw error
          // -1: stored without expiry (kept as long as the mirror lives); -2: gone meanwhile.
          if (ttl === -1) remember(key.slice(prefix.length), Number.MAX_SAFE_INTEGER)
          else if (typeof ttl === 'number' && ttl > 0) remember(key.slice(prefix.length), ttl)
        })
      }
      cursor = next
    } while (cursor !== '0')
  }

  let lastFailure: string | undefined
  const follow = async (): Promise<void> => {
    if (closed || subscriber.status !== 'ready' || commands.status !== 'ready') return
    const mine = ++subscription
    loaded = false
    try {
      await subscriber.subscribe(revocationChannel, heartbeatChannel)
      if (mine !== subscription) return
      // Only what is stored after the subscription took effect is sure to be announced to it.
      sendHeartbeat()
      await loadStored(mine)
      if (mine !== subscription) return
      loaded = true
      lastFailure = undefined
      logger?.info({ entries: expiries.size }, 'revocation mirror: following revocations')
    } catch (error) {
      if (mine !== subscription || closed) return
      const message = error instanceof Error ? error.message : String(error)
      if (message !== lastFailure) logger?.warn({ err: message }, 'revocation mirror: cannot follow revocations; asking Redis until it can')
      lastFailure = message
      setTimeout(() => void (mine === subscription && follow()), RETRY_MS).unref()
    }
  }
  const lost = (): void => {
    subscription++
    loaded = false
    currentAsOf = Number.NEGATIVE_INFINITY
  }

  // Both connections must be up; whichever comes up last starts following.
  subscriber.on('ready', () => void follow())
  commands.on('ready', () => void (loaded || follow()))
  subscriber.on('close', lost)
  subscriber.on('message', (channel: string, message: string) => {
    if (channel === heartbeatChannel) return heartbeatReturned(message)
    if (channel !== revocationChannel) return
    const space = message.lastIndexOf(' ')
    remember(message.slice(0, space), Number(message.slice(space + 1)))
  })
  // Connection errors are the store's to log; here they only make the mirror stale.
  subscriber.on('error', () => undefined)
  commands.on('error', () => undefined)
  // A missing heartbeat must show within maxStalenessMs even when no request looks.
  const heartbeats = setInterval(sendHeartbeat, heartbeatMs)
  heartbeats.unref()
  const sweeps = setInterval(dropExpired, 30_000)
  sweeps.unref()

  const current = (): boolean => loaded && !overflowed && !closed && now() - currentAsOf <= maxStalenessMs

  let hits = 0
  let misses = 0
  return {
    lookup(key) {
      if (!current()) {
        misses++
        return undefined
      }
      hits++
      const expiresAt = expiries.get(key)
      if (expiresAt === undefined) return false
      if (expiresAt > now()) return true
      expiries.delete(key)
      return false
    },
    add: remember,
    current,
    stats: () => ({ hits, misses }),
    async close() {
      if (closed) return
      closed = true
      clearInterval(heartbeats)
      clearInterval(sweeps)
      subscriber.disconnect()
      commands.disconnect()
    },
  }
}

/** A literal prefix inside a SCAN MATCH pattern. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&')
}
