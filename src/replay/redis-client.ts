// One ioredis client for a Redis topology (single, sentinel or cluster), with the settings the
// gateway relies on: commands never queue while Redis is away, a silent server is dropped, and
// reconnection backs off but never gives up.
import type { ConnectionOptions } from 'node:tls'
import { Cluster, Redis } from 'ioredis'

export interface RedisNodeAddress {
  readonly host: string
  readonly port: number
}

export type RedisTopology =
  /** redis://[:password@]host:port[/db], or rediss:// for TLS. */
  | { readonly mode: 'single'; readonly url: string; readonly password?: string }
  | {
      readonly mode: 'sentinel'
      readonly sentinels: readonly RedisNodeAddress[]
      /** The monitored master's name. */
      readonly name: string
      readonly username?: string
      readonly password?: string
      readonly sentinelPassword?: string
    }
  | {
      readonly mode: 'cluster'
      readonly nodes: readonly RedisNodeAddress[]
      readonly username?: string
      readonly password?: string
    }

export type RedisClientOptions = RedisTopology & {
  /** A command without an answer after this long fails with GW_REPLAY_STORE_UNAVAILABLE. Default 500. */
  readonly commandTimeoutMs?: number
  /** Default 2000. */
  readonly connectTimeoutMs?: number
  /**
   * ioredis enableAutoPipelining. Default false. Outside cluster mode the store batches the
   * claims and lookups of one event-loop turn into one write on its own (createCommandBatch).
   */
  readonly autoPipelining?: boolean
  /** Reconnection backs off up to this delay and never gives up. Default 2000. */
  readonly maxReconnectDelayMs?: number
  /** TLS on (true) or with settings (e.g. `ca`, `servername`); rediss:// URLs enable TLS on their own. */
  readonly tls?: boolean | ConnectionOptions
}

export function connectRedis(options: RedisClientOptions): Redis | Cluster {
  const commandTimeoutMs = options.commandTimeoutMs ?? 500
  const maxReconnectDelayMs = options.maxReconnectDelayMs ?? 2000
  const backoff = (attempt: number): number => Math.min(50 * 2 ** Math.min(attempt, 16), maxReconnectDelayMs)

  const tls = options.tls === true ? {} : options.tls || undefined
  const connection = {
    commandTimeout: commandTimeoutMs,
    // A server that accepts commands but never answers (frozen, black-holed) gets its socket
    // dropped, so ready() turns false and the reconnect loop takes over.
    socketTimeout: Math.max(2 * commandTimeoutMs, 1000),
    connectTimeout: options.connectTimeoutMs ?? 2000,
    enableAutoPipelining: options.autoPipelining ?? false,
    // A command in flight when the connection drops fails instead of waiting for a reconnect.
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // How long close() waits for the socket to end before destroying it (ioredis default 2 s).
    disconnectTimeout: commandTimeoutMs,
    ...(tls ? { tls } : {}),
  }

  switch (options.mode) {
    case 'single':
      return new Redis(options.url, {
        ...connection,
        ...(options.password !== undefined ? { password: options.password } : {}),
        enableOfflineQueue: false,
        retryStrategy: backoff,
      })
    case 'sentinel':
      return new Redis({
        ...connection,
        sentinels: options.sentinels.map(({ host, port }) => ({ host, port })),
        name: options.name,
        username: options.username,
        password: options.password,
        sentinelPassword: options.sentinelPassword,
        ...(tls ? { sentinelTLS: tls, enableTLSForSentinelMode: true } : {}),
        enableOfflineQueue: false,
        retryStrategy: backoff,
        sentinelRetryStrategy: backoff,
      })
    case 'cluster':
      return new Cluster(
        options.nodes.map(({ host, port }) => ({ host, port })),
        {
          enableOfflineQueue: false,
          enableAutoPipelining: options.autoPipelining ?? false,
          clusterRetryStrategy: backoff,
          redisOptions: { ...connection, username: options.username, password: options.password },
        },
      )
  }
}
