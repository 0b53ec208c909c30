// The part of the gateway a reload can replace: route table, TLS material and client trust,
// issuers, upstreams, DPoP settings, forwarding, revocation. Built from a validated
// configuration, at start-up and on every reload; each part is rebuilt only when what it is
// built from changed (its fingerprint), otherwise the running one is kept, caches and
// connection pools included.
import { createHash, type X509Certificate } from 'node:crypto'
import { createSecureContext } from 'node:tls'
import type { ServerOptions } from 'node:https'
import { createTokenVerifier, type IssuerSettings, type TokenVerifier } from './tokens/verifier.ts'
import type { ClientCertPolicy } from './server/peer-certificate.ts'
import { parsePemCertificates } from './x509.ts'
import { createForwardedClientCert } from './server/forwarded-client-cert.ts'
import { replayTtlMs } from './checks/replay.ts'
import { noRevocationCheck, type RevocationChecker } from './checks/revocation.ts'
import { ConfigError, type LoadedConfig } from './config/load.ts'
import type { GatewayConfig, IssuerConfig } from './config/schema.ts'
import { createNonceIssuer, type NonceIssuer } from './checks/dpop/nonce.ts'
import type { ProofKeyCache } from './checks/dpop/proof-key-cache.ts'
import { createForwarder, type Forwarder } from './forward/forward.ts'
import { createHeaderPolicy } from './forward/headers.ts'
import type { SecurityEvents } from './observability/events.ts'
import type { ReplayStore } from './replay/store.ts'
import type { RunningRevocationChecker } from './revocation/checker.ts'
import { createRevocationFromConfig } from './revocation/from-config.ts'
import type { RevocationMetrics } from './revocation/metrics.ts'
import { createRouteTable } from './routes/route-table.ts'
import type { PartnerPipeline } from './server/partner-server.ts'
import { createTlsOptions, TrustStoreError } from './server/tls.ts'
import type { IntrospectionObserver } from './tokens/introspection.ts'
import { opensslInWords } from './util/openssl-words.ts'
import type { RevokedTokenList } from './tokens/revoked-tokens.ts'
import { createTokenCache, type TokenCache } from './tokens/token-cache.ts'
import type { Registry } from 'prom-client'
import type { Clock, Logger } from './types.ts'
import type { Closeable } from './reload/retirement.ts'
import { readUpstreamTls, type UpstreamClientCertificate } from './forward/upstream-tls.ts'
import type { BindingRegistry } from './tokens/binding-registry.ts'
import type { AuthorizationServerMetrics } from './authorization-server/metrics.ts'
import { createFacadeFromConfig, type RunningFacade } from './authorization-server/from-config.ts'

/** What every version of the pipeline shares: never rebuilt by a reload. */
export interface SharedDeps {
  readonly env: NodeJS.ProcessEnv
  readonly clock: Clock
  readonly logger: Logger
  readonly events: SecurityEvents
  readonly registry: Registry
  readonly replay: ReplayStore
  readonly revokedTokens: RevokedTokenList
  readonly proofKeys: ProofKeyCache
  /** A checker the caller supplied: used by every version, never closed here. */
  readonly injectedRevocation?: RevocationChecker
  /** Registered once on the registry, shared by every revocation checker built. */
  readonly revocationMetrics: () => RevocationMetrics
  /** Counts introspection calls, cache hits and refusals of every token verifier built. */
  readonly introspectionMetrics?: IntrospectionObserver
  /** The authorization-server façade's records of the tokens it issued, in the replay store. */
  readonly bindings: BindingRegistry
  /** Registered once on the registry, shared by every façade built. */
  readonly authorizationServerMetrics: () => AuthorizationServerMetrics
}

export interface TlsMaterial {
  /** Server certificate followed by its intermediates. */
  readonly certPem: string
  readonly keyPem: string
  readonly clientCaPem: string | undefined
  readonly clientIntermediatesPem: string | undefined
  readonly serverChain: readonly X509Certificate[]
  readonly clientAnchors: readonly X509Certificate[]
  readonly clientIntermediates: readonly X509Certificate[]
  /** For https.createServer and server.setSecureContext. */
  readonly options: ServerOptions
}

export const PIPELINE_PARTS = [
  'routes',
  'serverCertificate',
  'clientTrust',
  'issuers',
  'upstreams',
  'dpop',
  'forwarding',
  'revocation',
  'authorizationServer',
] as const
export type PipelinePart = (typeof PIPELINE_PARTS)[number]

export interface GatewayPipeline extends PartnerPipeline {
  readonly loaded: LoadedConfig
  readonly tlsMaterial: TlsMaterial
  /** The gateway's client certificates for upstreams that require mTLS (for the expiry gauge). */
  readonly upstreamClientCertificates: readonly UpstreamClientCertificate[]
  readonly tokens: TokenVerifier
  readonly tokenCache: TokenCache
  readonly revocation: RevocationChecker
  /** The revocation checker built from the configuration, if any (it can reload its CRLs). */
  readonly ownRevocation: RunningRevocationChecker | undefined
  readonly fingerprints: Readonly<Record<PipelinePart, string>>
  /** Parts holding connections or timers, closed once no version in use shares them. */
  readonly closeables: readonly Closeable[]
  readonly authorizationServer: RunningFacade | undefined
}

export interface BuiltPipeline {
  readonly pipeline: GatewayPipeline
  /** Parts whose fingerprint differs from the previous version (every part without one). */
  readonly changed: readonly PipelinePart[]
}

function fingerprint(...values: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(values)).digest('base64url')
}

function secretFromEnv(env: NodeJS.ProcessEnv, name: string, key: string, file: string): string {
  const value = env[name]
  if (!value) throw new ConfigError([`${file}: ${key}: environment variable ${name} is not set`])
  return value
}

export function issuerSettings(loaded: LoadedConfig, issuer: IssuerConfig, index: number, env: NodeJS.ProcessEnv): IssuerSettings {
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
    facade: issuer.facade?.validate,
    introspection: introspection && {
      endpoint: introspection.endpoint,
      clientId: introspection.clientId,
      cacheTtlSeconds: introspection.cacheTtlSeconds,
      inactiveCacheTtlSeconds: introspection.inactiveCacheTtlSeconds,
      cacheSize: introspection.cacheSize,
      timeoutMs: introspection.timeoutMs,
      connections: introspection.connections,
      maxPendingPerClient: introspection.maxPendingPerClient,
      maxQueued: introspection.maxQueued,
      maxQueueWaitMs: introspection.maxQueueWaitMs,
      tokenShape: introspection.tokenShape,
      caPem: introspection.caFile ? loaded.readFile(introspection.caFile) : caPem,
      auth:
        introspection.auth.method === 'client_secret_basic'
          ? {
              method: 'client_secret_basic',
              secret: secretFromEnv(env, introspection.auth.secretEnv, `issuers.${index}.introspection.auth.secretEnv`, loaded.file),
            }
          : { method: 'private_key_jwt', privateKeyPem: loaded.readFile(introspection.auth.privateKeyFile), alg: introspection.auth.alg },
    },
  }
}

function createNonces(config: GatewayConfig['dpop']['nonce'], env: NodeJS.ProcessEnv, file: string): NonceIssuer | undefined {
  if (config.mode === 'off') return undefined
  const secret = Buffer.from(secretFromEnv(env, config.secretEnv, 'dpop.nonce.secretEnv', file), 'utf8')
  if (secret.length < 32) throw new ConfigError([`${file}: dpop.nonce.secretEnv: ${config.secretEnv} must hold at least 32 bytes`])
  return createNonceIssuer({ secret, slotSeconds: config.slotSeconds })
}

function parseCertificates(pem: string | undefined, key: string, file: string): X509Certificate[] {
  try {
    return parsePemCertificates(pem ?? '')
  } catch (error) {
    throw new ConfigError([`${file}: ${key}: not a PEM certificate bundle (${(error as Error).message})`])
  }
}

/** Reads and checks the TLS files; an unusable certificate, key or bundle is a ConfigError naming the key. */
export function readTlsMaterial(loaded: LoadedConfig): TlsMaterial {
  const { file, readFile } = loaded
  const tls = loaded.config.listener.tls
  const certPem = readFile(tls.certFile)
  const keyPem = readFile(tls.keyFile)
  const clientCaPem = tls.clientCaFile ? readFile(tls.clientCaFile) : undefined
  const clientIntermediatesPem = tls.clientIntermediatesFile ? readFile(tls.clientIntermediatesFile) : undefined
  const serverChain = parseCertificates(certPem, 'listener.tls.certFile', file)
  if (serverChain.length === 0) throw new ConfigError([`${file}: listener.tls.certFile: no certificate in ${tls.certFile}`])
  let options: ServerOptions
  try {
    options = createTlsOptions({ certPem, keyPem, clientCaPem, clientIntermediatesPem, clientCertificate: tls.clientCertificate })
  } catch (error) {
    if (!(error instanceof TrustStoreError)) throw error
    const key = error.bundle === 'anchors' ? 'listener.tls.clientCaFile' : 'listener.tls.clientIntermediatesFile'
    throw new ConfigError([`${file}: ${key}: ${error.message}`])
  }
  try {
    // What the listener would do with them: a key that does not match the certificate, a
    // malformed PEM or a weak key fails here, before anything is replaced.
    createSecureContext(options)
  } catch (error) {
    throw new ConfigError([`${file}: listener.tls.certFile, keyFile: ${opensslInWords(error)}`])
  }
  return {
    certPem,
    keyPem,
    clientCaPem,
    clientIntermediatesPem,
    serverChain,
    clientAnchors: parseCertificates(clientCaPem, 'listener.tls.clientCaFile', file),
    clientIntermediates: parseCertificates(clientIntermediatesPem, 'listener.tls.clientIntermediatesFile', file),
    options,
  }
}

function revocationFingerprint(loaded: LoadedConfig): string {
  const revocation = loaded.config.revocation
  if (!revocation) return fingerprint(null)
  return fingerprint(
    revocation,
    revocation.cas.map((ca) => (ca.caFile ? loaded.readFile(ca.caFile) : null)),
  )
}

/** Everything the façade is built from, the legacy secrets included (hashed), so that a changed secret file is read again. */
function authorizationServerFingerprint(loaded: LoadedConfig, env: NodeJS.ProcessEnv): string {
  const as = loaded.config.authorizationServer
  if (!as) return fingerprint(null)
  const read = (path: string | undefined) => {
    if (path === undefined) return null
    try {
      return loaded.readFile(path)
    } catch {
      return 'unreadable'
    }
  }
  const clients = [as.legacy.sharedClient, ...(loaded.partners?.entries ?? []).map((p) => (p.legacy === 'shared' ? undefined : p.legacy))]
  const secrets = clients.map((c) => (c === undefined ? null : c.secretEnv !== undefined ? (env[c.secretEnv] ?? null) : read(c.secretFile)))
  // The gateway's own keys: a replaced key file or variable is read again.
  const keys = as.keys.map((k) => (k.privateKeyEnv !== undefined ? (env[k.privateKeyEnv] ?? null) : read(k.privateKeyFile)))
  return fingerprint(
    as,
    loaded.partners?.entries ?? null,
    loaded.config.dpop,
    loaded.config.listener.publicBaseUrl,
    [as.legacy.caFile, as.legacy.certFile, as.legacy.keyFile, as.partnerJwksCaFile].map(read),
    createHash('sha256').update(JSON.stringify(secrets)).digest('base64url'),
    createHash('sha256').update(JSON.stringify(keys)).digest('base64url'),
  )
}

/**
 * Builds the pipeline for `loaded`, keeping the parts of `previous` whose inputs did not change.
 * Throws ConfigError (closing whatever it created) when something cannot be built.
 */
export function buildPipeline(loaded: LoadedConfig, shared: SharedDeps, previous?: GatewayPipeline): BuiltPipeline {
  const { config, file } = loaded
  const { env, clock, logger } = shared
  const tls = readTlsMaterial(loaded)
  const issuers = config.issuers.map((issuer, index) => issuerSettings(loaded, issuer, index, env))
  const upstreamTls = readUpstreamTls(loaded)
  const upstreams = upstreamTls.settings
  const fingerprints: Record<PipelinePart, string> = {
    routes: fingerprint(
      loaded.routes,
      config.issuers.map((i) => i.name),
    ),
    serverCertificate: fingerprint(tls.certPem, tls.keyPem),
    clientTrust: fingerprint(
      tls.clientCaPem ?? null,
      tls.clientIntermediatesPem ?? null,
      config.listener.tls.minRsaBits,
      config.listener.clientCertificateHeader ?? null,
    ),
    issuers: fingerprint(issuers, config.caches.verifiedTokens),
    upstreams: fingerprint(upstreams, config.listener.limits.maxBodyBytes),
    dpop: fingerprint(config.dpop),
    forwarding: fingerprint(config.forwarding, config.listener.publicBaseUrl, config.listener.clientCertificateHeader ?? null),
    revocation: revocationFingerprint(loaded),
    authorizationServer: authorizationServerFingerprint(loaded, env),
  }
  const same = (part: PipelinePart) => previous !== undefined && previous.fingerprints[part] === fingerprints[part]
  const changed = PIPELINE_PARTS.filter((part) => !same(part))
  const created: Closeable[] = []

  try {
    const routes = same('routes')
      ? previous!.authorize.routes
      : createRouteTable(
          loaded.routes,
          config.issuers.map((i) => i.name),
        )
    // The same policy object while the trust does not change: connections keep their verdicts.
    const clientCertPolicy: ClientCertPolicy = same('clientTrust')
      ? previous!.clientCertPolicy
      : { minRsaBits: config.listener.tls.minRsaBits, issuers: [...tls.clientAnchors, ...tls.clientIntermediates] }
    const certificateHeader = config.listener.clientCertificateHeader
    const forwardedClientCert = same('clientTrust')
      ? previous!.forwardedClientCert
      : certificateHeader &&
        createForwardedClientCert({
          headerName: certificateHeader.name,
          trustedProxies: certificateHeader.trustedProxies,
          anchors: tls.clientAnchors,
          intermediates: tls.clientIntermediates,
          minRsaBits: config.listener.tls.minRsaBits,
        })
    const headers = same('forwarding')
      ? previous!.headers
      : createHeaderPolicy({
          publicHost: new URL(config.listener.publicBaseUrl).host,
          identityPrefix: config.forwarding.identityHeaderPrefix,
          stripAuthorization: config.forwarding.stripAuthorization,
          stripDpop: config.forwarding.stripDpop,
          rewriteDpopToBearer: config.forwarding.rewriteDpopToBearer,
          // The load balancer's certificate header is consumed here, never passed on.
          stripHeaders: certificateHeader ? [...config.forwarding.stripHeaders, certificateHeader.name] : config.forwarding.stripHeaders,
          underscoreHeaders: config.forwarding.underscoreHeaders,
          blockOverrides: config.forwarding.blockOverrides,
          stripResponseHeaders: config.forwarding.stripResponseHeaders,
          rewriteLocation: config.forwarding.rewriteLocation,
          publicBaseUrl: config.listener.publicBaseUrl,
        })
    const nonces = same('dpop') ? previous!.nonces : createNonces(config.dpop.nonce, env, file)

    let tokens: TokenVerifier
    let tokenCache: TokenCache
    if (same('issuers')) ({ tokens, tokenCache } = previous!)
    else {
      tokenCache = createTokenCache({ maxEntries: config.caches.verifiedTokens })
      try {
        tokens = createTokenVerifier(issuers, { now: clock, logger, tokenCache, introspectionObserver: shared.introspectionMetrics })
      } catch (error) {
        throw new ConfigError([`${file}: issuers: ${(error as Error).message}`])
      }
      created.push(tokens)
    }
    let forwarder: Forwarder
    if (same('upstreams')) forwarder = previous!.forwarder
    else {
      forwarder = createForwarder(upstreams, { maxBodyBytes: config.listener.limits.maxBodyBytes, now: clock })
      created.push(forwarder)
    }
    // Last: building it starts CRL downloads and registers its gauges' sources.
    let ownRevocation = previous?.ownRevocation
    if (!shared.injectedRevocation && !same('revocation')) {
      ownRevocation = config.revocation
        ? createRevocationFromConfig(loaded, config.revocation, {
            now: clock,
            logger,
            events: shared.events,
            registry: shared.registry,
            metrics: shared.revocationMetrics(),
          })
        : undefined
      if (ownRevocation) created.push(ownRevocation)
      // The gauges read the newest checker; what a replaced one held is no longer in force.
      if (previous?.ownRevocation) {
        if (!ownRevocation) shared.revocationMetrics().watchCrls(() => new Map())
        if (!config.revocation?.denyListFile) shared.revocationMetrics().watchDenyListSize(() => 0)
      }
    }
    const revocation = shared.injectedRevocation ?? ownRevocation ?? noRevocationCheck
    const dpopSettings = {
      algorithms: config.dpop.algorithms,
      maxAgeSeconds: config.dpop.maxAgeSeconds,
      maxFutureSeconds: config.dpop.maxFutureSeconds,
      maxJtiLength: config.dpop.maxJtiLength,
      nonceMode: config.dpop.nonce.mode,
      nonces,
    }
    // Replicas' clocks may be off by the skew the gateway tolerates (dpop.maxFutureSeconds): a jti is
    // remembered until the replica furthest behind stops accepting its proof.
    const proofReplayTtlMs = replayTtlMs(config.dpop.maxAgeSeconds, config.dpop.maxFutureSeconds, config.dpop.maxFutureSeconds)
    let authorizationServer: RunningFacade | undefined
    if (same('authorizationServer')) authorizationServer = previous!.authorizationServer
    else if (config.authorizationServer) {
      authorizationServer = createFacadeFromConfig(loaded, {
        env,
        clock,
        logger,
        events: shared.events,
        metrics: shared.authorizationServerMetrics(),
        store: shared.replay,
        bindings: shared.bindings,
        revokedTokens: shared.revokedTokens,
        proofKeys: shared.proofKeys,
        dpop: dpopSettings,
        verifyProofsOn: config.dpop.verifyOn,
        replayTtlMs: proofReplayTtlMs,
        previousKeys: previous?.authorizationServer?.keys,
      })
      created.push(authorizationServer)
    }

    const pipeline: GatewayPipeline = {
      loaded,
      tlsMaterial: tls,
      upstreamClientCertificates: upstreamTls.clientCertificates,
      tokens,
      tokenCache,
      revocation,
      ownRevocation,
      clientCertPolicy,
      forwardedClientCert,
      headers,
      forwarder,
      nonces,
      authorize: {
        routes,
        revocation,
        tokens,
        revokedTokens: shared.revokedTokens,
        dpop: dpopSettings,
        proofKeys: shared.proofKeys,
        verifyProofsOn: config.dpop.verifyOn,
        replay: shared.replay,
        replayTtlMs: proofReplayTtlMs,
        publicBaseUrl: config.listener.publicBaseUrl.replace(/\/$/, ''),
      },
      fingerprints,
      authorizationServer,
      closeables: [tokens, forwarder, ...(ownRevocation ? [ownRevocation] : []), ...(authorizationServer ? [authorizationServer] : [])],
    }
    return { pipeline, changed }
  } catch (error) {
    for (const part of created) void Promise.resolve(part.close()).catch(() => undefined)
    throw error
  }
}

/** Parts of `retired` that `kept` does not share. */
export function partsToClose(retired: GatewayPipeline, kept: GatewayPipeline): Closeable[] {
  return retired.closeables.filter((part) => !kept.closeables.includes(part))
}
