// Wiring: builds every dependency once from a validated configuration, starts the
// partner-facing and admin listeners, and closes everything in order.
import type { AddressInfo } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import { performance } from 'node:perf_hooks'
import type { Server } from 'node:http'
import type { RevocationChecker } from './checks/revocation.ts'
import { ConfigError, type LoadedConfig } from './config/load.ts'
import { startUpstreamProbe } from './forward/upstream-probe.ts'
import type { GatewayConfig } from './config/schema.ts'
import { logConfigWarnings } from './config/warnings.ts'
import { createProofKeyCache } from './checks/dpop/proof-key-cache.ts'
import { createConfiguredSecurityEvents } from './observability/event-sinks.ts'
import { createIntrospectionMetrics } from './observability/introspection-metrics.ts'
import { createMetrics, type GatewayMetrics } from './observability/metrics.ts'
import { createAuthorizationServerMetrics, type AuthorizationServerMetrics } from './authorization-server/metrics.ts'
import { createBindingRegistry } from './tokens/binding-registry.ts'
import { createMemoryReplayStore } from './replay/memory-store.ts'
import type { Redis } from 'ioredis'
import { connectRedis, type RedisClientOptions } from './replay/redis-client.ts'
import { createRedisReplayStore } from './replay/redis-store.ts'
import type { ReplayStore } from './replay/store.ts'
import { certificatesOf, createCertificateExpiry } from './server/certificate-expiry.ts'
import { createKeyExpiry } from './authorization-server/keys/key-expiry.ts'
import { createGenerations } from './reload/generations.ts'
import { createOcspStapler } from './server/ocsp-stapling.ts'
import { buildPipeline, type GatewayPipeline, type SharedDeps } from './pipeline.ts'
import { createReloader, type ReloadResult, type ReloadTrigger } from './reload/reloader.ts'
import { createRevocationMetrics, type RevocationMetrics } from './revocation/metrics.ts'
import { createAdminServer } from './server/admin-server.ts'
import { createPartnerServer } from './server/partner-server.ts'
import { createRevocationMirror, type RevocationMirror } from './tokens/revocation-mirror.ts'
import { createRevokedTokenList, REVOCATION_CHANNEL, REVOKED_KEY_PATTERN, type RevokedTokenList } from './tokens/revoked-tokens.ts'
import type { Clock, Logger } from './types.ts'
import type { StdoutWriter } from './observability/stdout.ts'

const STARTUP_WAIT_MS = 5_000

export interface GatewayOptions {
  readonly logger: Logger
  readonly clock?: Clock
  readonly env?: NodeJS.ProcessEnv
  /** Replaces the checker built from the `revocation` section (which is closed with the gateway; this one is not). */
  readonly revocation?: RevocationChecker
  /** False in cluster workers: the primary serves the admin endpoints for all of them. */
  readonly adminListener?: boolean
  /** Where security events go when events.stdout is on; a test's buffer (default: options.stdout, else process.stdout). */
  readonly eventStream?: NodeJS.WritableStream
  /** The process's asynchronous stdout writer, shared with the log (src/observability/stdout.ts); its drops are counted. */
  readonly stdout?: StdoutWriter
}

export interface RunningGateway {
  readonly partnerPort: number
  readonly adminPort: number
  readonly metrics: GatewayMetrics
  /** Each dependency and whether it can answer now (what /readyz reports). */
  ready(): Record<string, boolean>
  /** Loads the configuration, policies and certificates again (docs/operations.md, "Rotation and reload"); SIGHUP calls it. */
  reload(trigger?: ReloadTrigger): Promise<ReloadResult>
  /** Stops accepting, lets in-flight requests finish (up to graceMs), then closes dependencies. */
  close(graceMs?: number): Promise<void>
}

function redisClientOptions(redis: NonNullable<GatewayConfig['replay']['redis']>, config: GatewayConfig['replay'], env: NodeJS.ProcessEnv): RedisClientOptions {
  const common = { commandTimeoutMs: config.commandTimeoutMs, autoPipelining: config.autoPipelining }
  const password = redis.passwordEnv ? env[redis.passwordEnv] : undefined
  if ('url' in redis) return { mode: 'single', url: redis.url, password, ...common }
  if ('sentinels' in redis) return { mode: 'sentinel', sentinels: redis.sentinels, name: redis.name, password, tls: redis.tls, ...common }
  return { mode: 'cluster', nodes: redis.cluster, password, tls: redis.tls, ...common }
}

export function createReplayStore(config: GatewayConfig['replay'], env: NodeJS.ProcessEnv, clock: Clock, logger: Logger): ReplayStore {
  const redis = config.redis
  if (config.store === 'memory' || !redis) return createMemoryReplayStore({ maxEntries: config.memoryMaxEntries, now: clock })
  return createRedisReplayStore({ ...redisClientOptions(redis, config, env), prefix: config.keyPrefix, logger })
}

/** The revoked-token list on the replay store, with a local mirror when replay.revocationMirror is on. */
export function createRevokedTokens(
  config: GatewayConfig['replay'],
  store: ReplayStore,
  env: NodeJS.ProcessEnv,
  logger: Logger,
): { list: RevokedTokenList; mirror?: RevocationMirror } {
  const { revocationMirror } = config
  if (!revocationMirror.enabled || !config.redis) return { list: createRevokedTokenList(store) }
  const options = redisClientOptions(config.redis, config, env)
  const mirror = createRevocationMirror({
    connect: () => connectRedis(options) as Redis,
    prefix: config.keyPrefix,
    channel: REVOCATION_CHANNEL,
    keyPattern: REVOKED_KEY_PATTERN,
    heartbeatMs: revocationMirror.heartbeatMs,
    maxStalenessMs: revocationMirror.maxStalenessMs,
    maxEntries: revocationMirror.maxEntries,
    logger,
  })
  return { list: createRevokedTokenList(store, { announce: true, mirror }), mirror }
}

/** Resolves to the port bound; a port in use or not allowed is a ConfigError naming the key. */
export function listen(server: Server, port: number, host: string, at: { readonly file: string; readonly key: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const fail = (error: NodeJS.ErrnoException) => {
      const why: Record<string, string> = {
        EADDRINUSE: `${host}:${port} is already in use by another process`,
        EACCES: `${host}:${port} needs privileges this process does not have (ports below 1024)`,
        EADDRNOTAVAIL: `${host} is not an address of this machine`,
      }
      reject(error.code && why[error.code] ? new ConfigError([`${at.file}: ${at.key}: ${why[error.code]}`]) : error)
    }
    server.once('error', fail)
    server.listen(port, host, () => {
      server.off('error', fail)
      resolve((server.address() as AddressInfo).port)
    })
  })
}

export async function startGateway(loaded: LoadedConfig, options: GatewayOptions): Promise<RunningGateway> {
  const { config, readFile } = loaded
  const env = options.env ?? process.env
  const clock = options.clock ?? Date.now
  const logger = options.logger
  const metrics = createMetrics()
  const events = createConfiguredSecurityEvents({
    config: config.events,
    env,
    file: loaded.file,
    readFile,
    metrics,
    clock,
    logger,
    stream: options.eventStream ?? options.stdout?.stream,
  })
  options.stdout?.onDrop((lines) => metrics.stdoutDroppedLines.inc(lines))
  const replay = createReplayStore(config.replay, env, clock, logger)
  const { list: revokedTokens, mirror: revocationMirror } = createRevokedTokens(config.replay, replay, env, logger)
  const proofKeys = createProofKeyCache({ maxEntries: config.caches.proofKeys })
  let revocationMetrics: RevocationMetrics | undefined
  let authorizationServerMetrics: AuthorizationServerMetrics | undefined
  const shared: SharedDeps = {
    env,
    clock,
    logger,
    events,
    registry: metrics.registry,
    replay,
    revokedTokens,
    proofKeys,
    injectedRevocation: options.revocation,
    revocationMetrics: () => (revocationMetrics ??= createRevocationMetrics(metrics.registry)),
    introspectionMetrics: createIntrospectionMetrics(metrics.registry),
    bindings: createBindingRegistry(replay),
    authorizationServerMetrics: () => (authorizationServerMetrics ??= createAuthorizationServerMetrics(metrics.registry)),
  }
  // Everything a reload may replace (src/pipeline.ts); a request uses one version throughout.
  let initial: GatewayPipeline
  try {
    initial = buildPipeline(loaded, shared).pipeline
  } catch (error) {
    await Promise.allSettled([replay.close(), revocationMirror?.close(), events.close(0)])
    throw error
  }
  let configWarnings = logConfigWarnings(config, logger)
  const generations = createGenerations(initial, { drainTimeoutMs: config.reload.drainTimeoutMs })
  const live = () => generations.current()
  // Counters survive a reload that replaces the verified-token cache.
  const retiredTokenStats = { hits: 0, misses: 0 }
  let countedCache = initial.tokenCache
  metrics.watchCache('verified_tokens', () => {
    const { hits, misses } = live().tokenCache.stats()
    return { hits: retiredTokenStats.hits + hits, misses: retiredTokenStats.misses + misses }
  })
  metrics.watchCache('proof_keys', () => ({ hits: proofKeys.hits, misses: proofKeys.misses }))
  metrics.watchDependency('replay_store', () => replay.ready())
  metrics.watchDependency('issuer_keys', () => live().tokens.ready())
  if (revocationMirror) {
    metrics.watchDependency('revocation_mirror', () => revocationMirror.current())
    metrics.watchCache('revocation_mirror', () => revocationMirror.stats())
  }

  const partner = createPartnerServer({
    tls: initial.tlsMaterial.options,
    limits: config.listener.limits,
    authorize: initial.authorize,
    clientCertPolicy: initial.clientCertPolicy,
    forwardedClientCert: initial.forwardedClientCert,
    headers: initial.headers,
    forwarder: initial.forwarder,
    nonces: initial.nonces,
    pipeline: () => generations.acquire(),
    metrics,
    events,
    logger,
    accessLog: config.log.access,
    clock,
  })
  const stapler = createOcspStapler({ now: clock, logger })
  partner.on('OCSPRequest', (certificate: Buffer, _issuer: Buffer | null, callback: (error: Error | null, response: Buffer | null) => void) => {
    callback(null, stapler.staple(certificate) ?? null)
  })
  const expiry = createCertificateExpiry({
    registry: metrics.registry,
    certificates: () => certificatesOf(live().tlsMaterial, live().upstreamClientCertificates),
    warningDays: () => live().loaded.config.listener.tls.expiryWarningDays,
    now: clock,
    events,
  })
  const keyExpiry = createKeyExpiry({
    registry: metrics.registry,
    keys: () => live().authorizationServer?.keys,
    warningDays: () => live().loaded.config.authorizationServer?.keyRotation.expiryWarningDays ?? 0,
    now: clock,
    logger,
  })
  const applyCertificates = (pipeline: GatewayPipeline) => {
    stapler.configure(pipeline.tlsMaterial.serverChain, pipeline.loaded.config.listener.tls.ocspStapling)
    expiry.check()
    keyExpiry.check()
  }
  applyCertificates(initial)
  const reloader = createReloader({
    file: loaded.file,
    env,
    server: partner,
    generations,
    shared,
    events,
    logger,
    pollIntervalMs: config.reload.pollIntervalMs,
    onApplied: (pipeline) => {
      configWarnings = logConfigWarnings(pipeline.loaded.config, logger, configWarnings)
      if (pipeline.tokenCache !== countedCache) {
        const { hits, misses } = countedCache.stats()
        retiredTokenStats.hits += hits
        retiredTokenStats.misses += misses
        countedCache = pipeline.tokenCache
      }
      applyCertificates(pipeline)
    },
  })
  const { readiness } = config.admin
  const upstreamProbe = readiness.upstreams
    ? startUpstreamProbe({
        upstreams: () => live().loaded.config.upstreams,
        intervalMs: readiness.upstreamProbeIntervalMs,
        timeoutMs: readiness.upstreamProbeTimeoutMs,
      })
    : undefined
  const ready = () => ({ replay_store: replay.ready(), issuer_keys: live().tokens.ready(), ...upstreamProbe?.status() })
  const admin =
    options.adminListener === false
      ? undefined
      : createAdminServer({ exposition: metrics.registry, adminToken: env[config.admin.tokenEnv], ready, revokedTokens, events, logger })

  // Give Redis a moment to connect so the first partners are not refused; /readyz tells the rest.
  const connectDeadline = performance.now() + STARTUP_WAIT_MS
  while (!replay.ready() && performance.now() < connectDeadline) await delay(20)
  if (!replay.ready()) logger.warn({}, 'replay store not reachable yet: requests are refused with 503 until it is')
  const partnerPort = await listen(partner, config.listener.port, config.listener.host, { file: loaded.file, key: 'listener.port' })
  const adminPort = admin ? await listen(admin, config.admin.port, config.admin.host, { file: loaded.file, key: 'admin.port' }) : 0
  logger.info({ partnerPort, adminPort, routes: loaded.routes.length, replayStore: config.replay.store }, 'fapi-gateway listening')

  let closing: Promise<void> | undefined
  async function close(graceMs = 10_000): Promise<void> {
    await reloader.stop()
    expiry.close()
    keyExpiry.close()
    upstreamProbe?.close()
    const stopped = new Promise<void>((resolve) => partner.close(() => resolve()))
    partner.closeIdleConnections()
    const timer = setTimeout(() => partner.closeAllConnections(), graceMs)
    await stopped
    clearTimeout(timer)
    if (admin) {
      await new Promise<void>((resolve) => {
        admin.closeAllConnections()
        admin.close(() => resolve())
      })
    }
    await Promise.allSettled([reloader.closeParts(), stapler.close(), replay.close(), revocationMirror?.close(), events.close(Math.min(graceMs, 2_000))])
    logger.info({}, 'fapi-gateway stopped')
  }
  return { partnerPort, adminPort, metrics, ready, reload: (trigger) => reloader.reload(trigger), close: (graceMs) => (closing ??= close(graceMs)) }
}
