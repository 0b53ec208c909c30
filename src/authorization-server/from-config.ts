// Builds the authorization-server façade from a validated configuration: at start-up and on every
// reload that changes it (the partner file, the legacy server, the DPoP settings).
import { createHmac } from 'node:crypto'
import { createNonceIssuer, type NonceIssuer } from '../checks/dpop/nonce.ts'
import type { DpopSettings } from '../checks/dpop/check.ts'
import type { ProofKeyCache } from '../checks/dpop/proof-key-cache.ts'
import { ConfigError, type LoadedConfig } from '../config/load.ts'
import type { SecurityEvents } from '../observability/events.ts'
import type { ReplayStore } from '../replay/store.ts'
import type { BindingRegistry } from '../tokens/binding-registry.ts'
import type { RevokedTokenList } from '../tokens/revoked-tokens.ts'
import type { Clock, Logger } from '../types.ts'
import { createClientAuthenticator } from './client-authentication/authenticate.ts'
import { createAuthorizationServerFacade, type AuthorizationServerFacade } from './facade.ts'
import { createLegacyClient, type LegacyClient } from './legacy-client.ts'
import { OAuthError } from './errors.ts'
import { performance } from 'node:perf_hooks'
import { GATEWAY_METADATA_NAMES } from './metadata.ts'
import type { AuthorizationServerMetrics } from './metrics.ts'
import { createPartnerRegistry, type PartnerRegistry } from './partners.ts'
import { createFrontChannelState } from './front-channel/state.ts'
import { createFileKeySource, keysAddedSince, type FileKeySource } from './keys/file-key-source.ts'
import { loadGatewayKeys } from './keys/load-keys.ts'

export interface FacadeBuildDeps {
  readonly env: NodeJS.ProcessEnv
  readonly clock: Clock
  readonly logger: Logger
  readonly events: SecurityEvents
  readonly metrics: AuthorizationServerMetrics
  readonly store: ReplayStore
  readonly bindings: BindingRegistry
  readonly revokedTokens: RevokedTokenList
  readonly proofKeys: ProofKeyCache
  /** The resource side's DPoP settings; the façade has nonces of its own. */
  readonly dpop: DpopSettings
  readonly verifyProofsOn: 'threadPool' | 'eventLoop'
  readonly replayTtlMs: number
  /** The keys of the façade this one replaces on a reload: a key that was not there is published from now. */
  readonly previousKeys?: FileKeySource
}

export interface RunningFacade extends AuthorizationServerFacade {
  /** The gateway's own keys (authorizationServer.keys), when configured. */
  readonly keys: FileKeySource | undefined
  close(): Promise<void>
}

/** RFC 9449 §8, §9: the façade's nonces are its own, derived from the shared secret, so an RS nonce is never an AS nonce. */
function facadeNonces(loaded: LoadedConfig, env: NodeJS.ProcessEnv): NonceIssuer | undefined {
  const nonce = loaded.config.dpop.nonce
  if (nonce.mode === 'off') return undefined
  const secret = env[nonce.secretEnv]
  if (!secret) throw new ConfigError([`${loaded.file}: dpop.nonce.secretEnv: environment variable ${nonce.secretEnv} is not set`])
  return createNonceIssuer({ secret: createHmac('sha256', secret).update('fapi-gateway authorization-server nonces').digest(), slotSeconds: nonce.slotSeconds })
}

/** What the façade checks when it is built, without building it (check-config): the metadata and the legacy secrets. */
export function checkFacadeConfig(loaded: LoadedConfig, env: NodeJS.ProcessEnv): PartnerRegistry {
  const as = loaded.config.authorizationServer
  if (!as) throw new ConfigError([`${loaded.file}: authorizationServer: not configured`])
  const clashing = Object.keys(as.metadata).filter((name) => (GATEWAY_METADATA_NAMES as readonly string[]).includes(name))
  if (clashing.length > 0) throw new ConfigError([`${loaded.file}: authorizationServer.metadata: ${clashing.join(', ')} is set by the gateway itself`])
  if (as.keys.length > 0 && 'jwks_uri' in as.metadata)
    throw new ConfigError([`${loaded.file}: authorizationServer.metadata: jwks_uri is set by the gateway itself when authorizationServer.keys are configured`])
  loadGatewayKeys(loaded, env)
  return createPartnerRegistry(loaded, env)
}

/** The legacy client, its calls timed into fapi_gateway_as_legacy_duration_seconds. */
function timedLegacyClient(legacy: LegacyClient, metrics: AuthorizationServerMetrics): LegacyClient {
  const timed =
    (endpoint: 'token' | 'revocation', call: LegacyClient['token']): LegacyClient['token'] =>
    async (params, credentials) => {
      const started = performance.now()
      let outcome = 'error'
      try {
        const answer = await call(params, credentials)
        outcome = `${Math.floor(answer.status / 100)}xx`
        return answer
      } catch (error) {
        outcome = error instanceof OAuthError ? error.code : 'error'
        throw error
      } finally {
        metrics.legacyDuration.observe({ endpoint, outcome }, (performance.now() - started) / 1000)
      }
    }
  return { token: timed('token', legacy.token), revoke: timed('revocation', legacy.revoke), close: () => legacy.close() }
}

export function createFacadeFromConfig(loaded: LoadedConfig, deps: FacadeBuildDeps): RunningFacade {
  const { config } = loaded
  const partners = checkFacadeConfig(loaded, deps.env)
  const as = config.authorizationServer!

  const publicBaseUrl = config.listener.publicBaseUrl.replace(/\/$/, '')
  const issuer = as.issuer ?? publicBaseUrl
  const nonces = facadeNonces(loaded, deps.env)
  const loadedKeys = loadGatewayKeys(loaded, deps.env)
  const keys =
    loadedKeys.length > 0
      ? createFileKeySource(loadedKeys, { ...as.keyRotation, addedAt: keysAddedSince(deps.previousKeys, loadedKeys, deps.clock()) })
      : undefined
  const authenticator = createClientAuthenticator(
    {
      issuer,
      clockToleranceSeconds: as.assertion.clockToleranceSeconds,
      maxLifetimeSeconds: as.assertion.maxLifetimeSeconds,
      partnerJwksCaPem: as.partnerJwksCaFile ? loaded.readFile(as.partnerJwksCaFile) : undefined,
    },
    { partners, store: deps.store },
  )
  const legacy = timedLegacyClient(
    createLegacyClient({
      tokenEndpoint: as.legacy.tokenEndpoint,
      revocationEndpoint: as.legacy.revocationEndpoint,
      caPem: as.legacy.caFile ? loaded.readFile(as.legacy.caFile) : undefined,
      certPem: as.legacy.certFile ? loaded.readFile(as.legacy.certFile) : undefined,
      keyPem: as.legacy.keyFile ? loaded.readFile(as.legacy.keyFile) : undefined,
      connectTimeoutMs: as.legacy.connectTimeoutMs,
      timeoutMs: as.legacy.timeoutMs,
      connections: as.legacy.connections,
    }),
    deps.metrics,
  )
  const revocationPath = as.endpoints.revocation
  const front = as.legacy.authorizationEndpoint
  const frontState = front ? createFrontChannelState(deps.store) : undefined
  const proofDeps = {
    dpop: { ...deps.dpop, nonces },
    proofKeys: deps.proofKeys,
    verifyOn: deps.verifyProofsOn,
    store: deps.store,
    replayTtlMs: deps.replayTtlMs,
  }
  const facade = createAuthorizationServerFacade(
    {
      metadata: {
        issuer,
        publicBaseUrl,
        tokenPath: as.endpoints.token,
        revocationPath,
        frontChannel: front
          ? {
              parPath: as.endpoints.par,
              authorizationPath: as.endpoints.authorization,
              requestObjectRequired: as.authorizationCode.requestObject === 'required',
            }
          : undefined,
        dpopAlgorithms: config.dpop.algorithms,
        jwksPath: keys ? as.endpoints.jwks : undefined,
        openid: as.openid,
        extra: as.metadata,
      },
      token: {
        url: `${publicBaseUrl}${as.endpoints.token}`,
        resourceIssuer: as.resourceIssuer,
        accessTokenMaxLifetimeSeconds: as.tokens.accessTokenMaxLifetimeSeconds,
        refreshTokenLifetimeSeconds: as.tokens.refreshTokenLifetimeSeconds,
        openid: as.openid,
      },
      frontChannel: front
        ? {
            parPath: as.endpoints.par,
            authorizationPath: as.endpoints.authorization,
            callbackPath: as.endpoints.callback,
            par: {
              issuer,
              parUrl: `${publicBaseUrl}${as.endpoints.par}`,
              requestLifetimeSeconds: as.authorizationCode.requestLifetimeSeconds,
              requestObject: as.authorizationCode.requestObject,
            },
            authorization: {
              issuer,
              callbackUrl: `${publicBaseUrl}${as.endpoints.callback}`,
              legacyAuthorizationEndpoint: front,
              legacyPkce: as.legacy.pkce,
              sessionLifetimeSeconds: as.authorizationCode.sessionLifetimeSeconds,
              openid: as.openid,
            },
            callback: {
              issuer,
              codeLifetimeSeconds: as.authorizationCode.codeLifetimeSeconds,
              sessionLifetimeSeconds: as.authorizationCode.sessionLifetimeSeconds,
            },
          }
        : undefined,
      maxBodyBytes: as.limits.maxBodyBytes,
      perClientPerSecond: as.limits.perClientPerSecond,
      perAddressPerSecond: as.limits.perAddressPerSecond,
      burst: as.limits.burst,
    },
    {
      token: {
        authenticator,
        legacy,
        bindings: deps.bindings,
        proofs: proofDeps,
        frontChannel: frontState && { state: frontState, revokedTokens: deps.revokedTokens, callbackUrl: `${publicBaseUrl}${as.endpoints.callback}` },
      },
      frontChannel: frontState
        ? {
            par: { authenticator, state: frontState, proofs: proofDeps, keys },
            authorization: { partners, state: frontState, keys },
            callback: { state: frontState, keys },
          }
        : undefined,
      revocation: {
        authenticator,
        partners,
        legacy,
        legacyRevocation: as.legacy.revocationEndpoint !== undefined,
        bindings: deps.bindings,
        revokedTokens: deps.revokedTokens,
        logger: deps.logger,
      },
      keys,
      nonces,
      metrics: deps.metrics,
      events: deps.events,
      logger: deps.logger,
      clock: deps.clock,
    },
  )
  return {
    ...facade,
    keys,
    async close() {
      authenticator.close()
      await legacy.close()
    },
  }
}
