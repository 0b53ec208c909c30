// Wiring: builds every dependency once from a validated configuration, starts the
// partner-facing and admin listeners, and closes everything in order.
import type { AddressInfo } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import { performance } from 'node:perf_hooks'
import type { Server } from 'node:http'
import { createTokenVerifier, type IssuerSettings } from './checks/access-token.ts'
import { parsePemCertificates } from './checks/client-cert.ts'
import { createForwardedClientCert } from './checks/forwarded-client-cert.ts'
import { replayTtlMs } from './checks/replay.ts'
import { noRevocationCheck, type RevocationChecker } from './checks/revocation.ts'
import type { LoadedConfig } from './config/load.ts'
import { ConfigError } from './config/load.ts'
import type { GatewayConfig, IssuerConfig } from './config/schema.ts'
import { createNonceIssuer, type NonceIssuer } from './dpop/nonce.ts'
import { createProofKeyCache } from './dpop/proof-key-cache.ts'
import { createForwarder } from './forward/forward.ts'
import { createHeaderPolicy } from './forward/headers.ts'
import { createConfiguredSecurityEvents } from './observability/event-sinks.ts'
import { createMetrics, type GatewayMetrics } from './observability/metrics.ts'
import { createMemoryReplayStore } from './replay/memory-store.ts'
import { createRedisReplayStore } from './replay/redis-store.ts'
import type { ReplayStore } from './replay/store.ts'
import { createRouteTable } from './routes/route-table.ts'
import { createAdminServer } from './server/admin-server.ts'
import { createPartnerServer } from './server/partner-server.ts'
import { createTlsOptions } from './server/tls.ts'
import { createRevokedTokenList } from './tokens/revoked-tokens.ts'
import { createRevocationFromConfig } from './revocation/from-config.ts'
import { createTokenCache } from './tokens/token-cache.ts'
import type { Clock, Logger } from './types.ts'

const STARTUP_WAIT_MS = 5_000

export interface GatewayOptions {
  readonly logger: Logger
  readonly clock?: Clock
  readonly env?: NodeJS.ProcessEnv
  /** Replaces the checker built from the `revocation` section (which is closed with the gateway; this one is not). */
  readonly revocation?: RevocationChecker
  /** False in cluster workers: the primary serves the admin endpoints for all of them. */
  readonly adminListener?: boolean
  /** Where security events go when events.stdout is on (process.stdout by default). */
  readonly eventStream?: NodeJS.WritableStream
}

export interface RunningGateway {
  readonly partnerPort: number
  readonly adminPort: number
  readonly metrics: GatewayMetrics
  /** Each dependency and whether it can answer now (what /readyz reports). */
  ready(): Record<string, boolean>
  /** Stops accepting, lets in-flight requests finish (up to graceMs), then closes dependencies. */
  close(graceMs?: number): Promise<void>
}

function secretFromEnv(env: NodeJS.ProcessEnv, name: string, key: string, file: string): string {
  const value = env[name]
  if (!value) throw new ConfigError([`${file}: ${key}: environment variable ${name} is not set`])
  return value
}

function issuerSettings(loaded: LoadedConfig, issuer: IssuerConfig, index: number, env: NodeJS.ProcessEnv): IssuerSettings {
  const caPem = issuer.caFile ? loaded.readFile(issuer.caFile) : undefined
  const introspection = issuer.introspection
  return {
    name: issuer.name,
    issuer: issuer.issuer,
    audience: issuer.audience,
    algorithms: issuer.algorithms,
    requireTyp: issuer.requireTyp,
    clockToleranceSeconds: issuer.clockToleranceSeconds,
    jwksUri: issuer.jwksUri,
    caPem,
    jwksCooldownSeconds: issuer.jwksCooldownSeconds,
    jwksMaxAgeSeconds: issuer.jwksMaxAgeSeconds,
    introspectJwt: issuer.introspectJwt,
    introspectJwtCacheSeconds: issuer.introspectJwtCacheSeconds,
    introspection: introspection && {
      endpoint: introspection.endpoint,
      clientId: introspection.clientId,
      cacheTtlSeconds: introspection.cacheTtlSeconds,
      caPem: introspection.caFile ? loaded.readFile(introspection.caFile) : caPem,
      auth: introspection.auth.method === 'client_secret_basic'
        ? { method: 'client_secret_basic', secret: secretFromEnv(env, introspection.auth.secretEnv, `issuers.${index}.introspection.auth.secretEnv`, loaded.file) }
        : { method: 'private_key_jwt', privateKeyPem: loaded.readFile(introspection.auth.privateKeyFile), alg: introspection.auth.alg },
    },
  }
}

export function createReplayStore(config: GatewayConfig['replay'], env: NodeJS.ProcessEnv, clock: Clock, logger: Logger): ReplayStore {
  const redis = config.redis
  if (config.store === 'memory' || !redis) return createMemoryReplayStore({ maxEntries: config.memoryMaxEntries, now: clock })
  const common = { prefix: config.keyPrefix, commandTimeoutMs: config.commandTimeoutMs, autoPipelining: config.autoPipelining, logger }
  const password = redis.passwordEnv ? env[redis.passwordEnv] : undefined
  if ('url' in redis) return createRedisReplayStore({ mode: 'single', url: redis.url, password, ...common })
  if ('sentinels' in redis) return createRedisReplayStore({ mode: 'sentinel', sentinels: redis.sentinels, name: redis.name, password, tls: redis.tls, ...common })
  return createRedisReplayStore({ mode: 'cluster', nodes: redis.cluster, password, tls: redis.tls, ...common })
}

function createNonces(config: GatewayConfig['dpop']['nonce'], env: NodeJS.ProcessEnv, file: string): NonceIssuer | undefined {
  if (config.mode === 'off') return undefined
  const secret = Buffer.from(secretFromEnv(env, config.secretEnv, 'dpop.nonce.secretEnv', file), 'utf8')
  if (secret.length < 32) throw new ConfigError([`${file}: dpop.nonce.secretEnv: ${config.secretEnv} must hold at least 32 bytes`])
  return createNonceIssuer({ secret, slotSeconds: config.slotSeconds })
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
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
  const events = createConfiguredSecurityEvents({ config: config.events, env, file: loaded.file, readFile, metrics, clock, logger, stream: options.eventStream })
  const tls = config.listener.tls

  const nonces = createNonces(config.dpop.nonce, env, loaded.file)
  const issuers = config.issuers.map((issuer, index) => issuerSettings(loaded, issuer, index, env))
  const tokenCache = createTokenCache({ maxEntries: config.caches.verifiedTokens })
  const tokens = createTokenVerifier(issuers, { now: clock, logger, tokenCache })
  const proofKeys = createProofKeyCache({ maxEntries: config.caches.proofKeys })
  const replay = createReplayStore(config.replay, env, clock, logger)
  const revokedTokens = createRevokedTokenList(replay)
  const forwarder = createForwarder(
    Object.fromEntries(Object.entries(config.upstreams).map(([name, u]) => [name, { ...u, caPem: u.caFile ? readFile(u.caFile) : undefined }])),
    { maxBodyBytes: config.listener.limits.maxBodyBytes, now: clock },
  )
  metrics.watchCache('verified_tokens', () => tokenCache.stats())
  metrics.watchCache('proof_keys', () => ({ hits: proofKeys.hits, misses: proofKeys.misses }))
  metrics.watchDependency('replay_store', () => replay.ready())
  metrics.watchDependency('issuer_keys', () => tokens.ready())

  const clientCaPem = tls.clientCaFile ? readFile(tls.clientCaFile) : undefined
  const clientIntermediatesPem = tls.clientIntermediatesFile ? readFile(tls.clientIntermediatesFile) : undefined
  // Without a revocation section nothing is checked (README "Revocation").
  const ownRevocation = !options.revocation && config.revocation
    ? createRevocationFromConfig(loaded, config.revocation, { now: clock, logger, events, registry: metrics.registry })
    : undefined
  const revocation = options.revocation ?? ownRevocation ?? noRevocationCheck
  const certificateHeader = config.listener.clientCertificateHeader
  const forwardedClientCert = certificateHeader && createForwardedClientCert({
    headerName: certificateHeader.name,
    trustedProxies: certificateHeader.trustedProxies,
    anchors: parsePemCertificates(clientCaPem ?? ''),
    intermediates: parsePemCertificates(clientIntermediatesPem ?? ''),
    minRsaBits: tls.minRsaBits,
  })
  const partner = createPartnerServer({
    tls: createTlsOptions({ certPem: readFile(tls.certFile), keyPem: readFile(tls.keyFile), clientCaPem, clientIntermediatesPem, clientCertificate: tls.clientCertificate }),
    limits: config.listener.limits,
    authorize: {
      routes: createRouteTable(loaded.routes, config.issuers.map((i) => i.name)),
      revocation,
      tokens,
      revokedTokens,
      dpop: {
        algorithms: config.dpop.algorithms,
        maxAgeSeconds: config.dpop.maxAgeSeconds,
        maxFutureSeconds: config.dpop.maxFutureSeconds,
        maxJtiLength: config.dpop.maxJtiLength,
        nonceMode: config.dpop.nonce.mode,
        nonces,
      },
      proofKeys,
      replay,
      replayTtlMs: replayTtlMs(config.dpop.maxAgeSeconds, config.dpop.maxFutureSeconds, 0),
      publicBaseUrl: config.listener.publicBaseUrl.replace(/\/$/, ''),
    },
    clientCertPolicy: {
      minRsaBits: tls.minRsaBits,
      issuers: [...parsePemCertificates(clientCaPem ?? ''), ...parsePemCertificates(clientIntermediatesPem ?? '')],
    },
    headers: createHeaderPolicy({
      publicHost: new URL(config.listener.publicBaseUrl).host,
      identityPrefix: config.forwarding.identityHeaderPrefix,
      stripAuthorization: config.forwarding.stripAuthorization,
      stripDpop: config.forwarding.stripDpop,
      rewriteDpopToBearer: config.forwarding.rewriteDpopToBearer,
      // The load balancer's certificate header is consumed here, never passed on.
      stripHeaders: certificateHeader ? [...config.forwarding.stripHeaders, certificateHeader.name] : config.forwarding.stripHeaders,
    }),
    forwardedClientCert,
    forwarder,
    nonces,
    metrics,
    events,
    logger,
    clock,
  })
  const ready = () => ({ replay_store: replay.ready(), issuer_keys: tokens.ready() })
  const admin = options.adminListener === false
    ? undefined
    : createAdminServer({ exposition: metrics.registry, adminToken: env[config.admin.tokenEnv], ready, revokedTokens, events, logger })

  // Give Redis a moment to connect so the first partners are not refused; /readyz tells the rest.
  const connectDeadline = performance.now() + STARTUP_WAIT_MS
  while (!replay.ready() && performance.now() < connectDeadline) await delay(20)
  if (!replay.ready()) logger.warn({}, 'replay store not reachable yet: requests are refused with 503 until it is')
  const partnerPort = await listen(partner, config.listener.port, config.listener.host)
  const adminPort = admin ? await listen(admin, config.admin.port, config.admin.host) : 0
  logger.info({ partnerPort, adminPort, routes: loaded.routes.length, replayStore: config.replay.store }, 'fapi-gateway listening')

  let closing: Promise<void> | undefined
  async function close(graceMs = 10_000): Promise<void> {
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
    await Promise.allSettled([forwarder.close(), tokens.close(), replay.close(), events.close(Math.min(graceMs, 2_000)), ownRevocation?.close()])
    logger.info({}, 'fapi-gateway stopped')
  }
  return { partnerPort, adminPort, metrics, ready, close: (graceMs) => (closing ??= close(graceMs)) }
}
