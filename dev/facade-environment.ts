// The authorization-server façade in front of a legacy server, on 127.0.0.1: the legacy server
// (oidc-provider, plain OAuth 2.0), two partners registered at the gateway (a private_key_jwt one and a
// tls_client_auth one), a demo upstream, and the gateway started from real files through the real loader.
// The end-to-end tests, the demo and the bench run it.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose'
import { stringify } from 'yaml'
import { loadConfig } from '../src/config/load.ts'
import { startGateway, type GatewayOptions, type RunningGateway } from '../src/gateway.ts'
import type { Logger } from '../src/types.ts'
import { DEMO_AUDIENCE, mergeConfig, REPO_ROOT } from './environment.ts'
import { startLegacyServer, type LegacyServer } from './legacy-server.ts'
import { createDevPki, writeDevPki, type DevPki } from './pki.ts'
import { freePort } from './ports.ts'
import { startDemoUpstream, type DemoUpstream } from './upstream.ts'

export const FACADE_SCOPES = ['accounts:read', 'payments:write']

export interface FacadePartnerKeys {
  readonly clientId: string
  readonly privateKey: CryptoKey
  readonly publicJwk: JWK
}

export interface FacadeEnvironmentOptions {
  readonly logger: Logger
  readonly pki?: DevPki
  /** The legacy server's access tokens: opaque (default) or unbound JWTs. */
  readonly legacyTokens?: 'opaque' | 'jwt'
  /** issuers[].facade.validate; introspection for opaque tokens and jwks for JWTs by default. */
  readonly validate?: 'introspection' | 'jwks' | 'registry'
  /** Merged over the generated configuration (one level deep per top-level key), e.g. replay: { store: redis, ... }. */
  readonly config?: Record<string, unknown>
  /** Merged over the generated authorizationServer section. */
  readonly authorizationServer?: Record<string, unknown>
  readonly env?: NodeJS.ProcessEnv
  readonly gateway?: Partial<GatewayOptions>
  /** Run the authorization-code front channel (PAR, authorize, callback; issue 14) in front of the legacy server's login pages. */
  readonly frontChannel?: boolean
  /** Start a second gateway on the same configuration (another replica; share Redis through `config.replay`). */
  readonly replicas?: 1 | 2
  /** Further files written to the environment's directory before the gateway starts (name → contents), e.g. the gateway's own keys. */
  readonly files?: Readonly<Record<string, string>>
  /** false: write the configuration and start everything but the gateway, which the caller runs (the bench: its own process). */
  readonly startGateways?: boolean
}

export interface FacadeEnvironment {
  readonly dir: string
  readonly pki: DevPki
  readonly legacy: LegacyServer
  readonly upstream: DemoUpstream
  readonly gateways: readonly RunningGateway[]
  /** Each replica's public base URL (the first is the issuer). */
  readonly baseUrls: readonly string[]
  readonly issuer: string
  readonly tokenEndpoint: string
  readonly revocationEndpoint: string
  /** partner-a: private_key_jwt with this key. */
  readonly partnerA: FacadePartnerKeys
  /** partner-b: tls_client_auth with the dev PKI's partnerB certificate (RFC 4514: O=Partner,CN=partner-b). */
  readonly partnerB: { readonly clientId: string }
  /** The legacy clients' credentials, as the legacy server has them (a partner never sees these). */
  readonly legacyClients: Readonly<Record<string, { readonly clientId: string; readonly secret: string }>>
  readonly configFile: string
  /** The environment the gateway needs to load configFile (the legacy secrets it names). */
  readonly env: NodeJS.ProcessEnv
  close(): Promise<void>
}

const LEGACY_CLIENTS = {
  'partner-a': { clientId: 'gw-partner-a', secret: 'legacy-secret-partner-a' },
  'partner-b': { clientId: 'gw-partner-b', secret: 'legacy-secret-partner-b' },
  introspection: { clientId: 'gateway-introspection', secret: 'legacy-secret-introspection' },
}

export async function startFacadeEnvironment(options: FacadeEnvironmentOptions): Promise<FacadeEnvironment> {
  const dir = mkdtempSync(join(tmpdir(), 'fapi-facade-'))
  mkdirSync(dir, { recursive: true })
  const pki = options.pki ?? (await createDevPki())
  writeDevPki(pki, dir)
  const legacyTokens = options.legacyTokens ?? 'opaque'
  const validate = options.validate ?? (legacyTokens === 'jwt' ? 'jwks' : 'introspection')

  const replicas = options.replicas ?? 1
  const ports = [await freePort(), ...(replicas === 2 ? [await freePort()] : [])]
  const baseUrls = ports.map((port) => `https://127.0.0.1:${port}`)
  const issuer = baseUrls[0]!
  // The gateway's callback is registered at the legacy server for every legacy client (issue 14).
  const callbackUrl = `${issuer}/oauth2/callback`
  const legacy = await startLegacyServer({
    pki,
    accessTokenFormat: legacyTokens,
    resource: DEMO_AUDIENCE,
    clients: [
      {
        clientId: LEGACY_CLIENTS['partner-a'].clientId,
        clientSecret: LEGACY_CLIENTS['partner-a'].secret,
        grantTypes: ['client_credentials', 'authorization_code', 'refresh_token'],
        scopes: FACADE_SCOPES,
        redirectUris: ['https://partner-a.example/callback', callbackUrl],
      },
      {
        clientId: LEGACY_CLIENTS['partner-b'].clientId,
        clientSecret: LEGACY_CLIENTS['partner-b'].secret,
        grantTypes: ['client_credentials', 'authorization_code', 'refresh_token'],
        redirectUris: ['https://partner-b.example/callback', callbackUrl],
        scopes: FACADE_SCOPES,
      },
      { clientId: LEGACY_CLIENTS.introspection.clientId, clientSecret: LEGACY_CLIENTS.introspection.secret, grantTypes: ['client_credentials'] },
    ],
  })
  const upstream = await startDemoUpstream()
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
  const publicJwk = { ...(await exportJWK(publicKey)), kid: 'partner-a-1', alg: 'ES256', use: 'sig' }

  writeFileSync(
    join(dir, 'partners.yaml'),
    stringify({
      partners: [
        {
          clientId: 'partner-a',
          authentication: { method: 'private_key_jwt', jwks: { keys: [publicJwk] } },
          grantTypes: ['client_credentials', 'refresh_token', 'authorization_code'],
          scopes: FACADE_SCOPES,
          redirectUris: ['https://partner-a.example/callback'],
          legacy: { clientId: LEGACY_CLIENTS['partner-a'].clientId, secretEnv: 'LEGACY_SECRET_PARTNER_A' },
        },
        {
          clientId: 'partner-b',
          authentication: { method: 'tls_client_auth', subjectDn: 'O=Partner,CN=partner-b' },
          grantTypes: ['client_credentials', 'refresh_token', 'authorization_code'],
          scopes: FACADE_SCOPES,
          redirectUris: ['https://partner-b.example/callback'],
          legacy: { clientId: LEGACY_CLIENTS['partner-b'].clientId, authentication: 'client_secret_basic', secretEnv: 'LEGACY_SECRET_PARTNER_B' },
        },
      ],
    }),
  )
  const env = {
    LEGACY_SECRET_PARTNER_A: LEGACY_CLIENTS['partner-a'].secret,
    LEGACY_SECRET_PARTNER_B: LEGACY_CLIENTS['partner-b'].secret,
    LEGACY_INTROSPECTION_SECRET: LEGACY_CLIENTS.introspection.secret,
    ...options.env,
  }

  const legacyIssuer = {
    name: 'legacy',
    issuer: legacy.issuer,
    audience: DEMO_AUDIENCE,
    caFile: 'client-ca.crt',
    // oidc-provider's JWT access tokens are typed at+jwt; a ten-year-old product's may not be (requireTyp: false).
    ...(validate === 'jwks' && { jwksUri: legacy.jwksUri }),
    ...(validate === 'introspection' && {
      introspection: {
        endpoint: legacy.introspectionEndpoint,
        clientId: LEGACY_CLIENTS.introspection.clientId,
        auth: { method: 'client_secret_basic', secretEnv: 'LEGACY_INTROSPECTION_SECRET' },
        caFile: 'client-ca.crt',
      },
    }),
    facade: { validate },
  }
  const configFor = (port: number) =>
    mergeConfig(
      {
        listener: {
          host: '127.0.0.1',
          port,
          // Every replica is the same issuer to partners (behind one load balancer in production).
          publicBaseUrl: issuer,
          tls: {
            certFile: 'server-chain.crt',
            keyFile: 'server.key',
            clientCaFile: 'client-ca.crt',
            clientIntermediatesFile: 'client-intermediates.crt',
            clientCertificate: 'request',
          },
        },
        admin: { host: '127.0.0.1', port: 0 },
        issuers: [legacyIssuer],
        upstreams: { 'data-api': { url: upstream.url } },
        policies: { dir: join(REPO_ROOT, 'policies') },
        log: { level: 'info' },
        authorizationServer: {
          partnersFile: 'partners.yaml',
          resourceIssuer: 'legacy',
          legacy: {
            tokenEndpoint: legacy.tokenEndpoint,
            revocationEndpoint: legacy.revocationEndpoint,
            caFile: 'client-ca.crt',
            timeoutMs: 2_000,
            ...(options.frontChannel && { authorizationEndpoint: legacy.authorizationEndpoint }),
          },
          ...options.authorizationServer,
        },
      },
      options.config ?? {},
    )
  for (const [name, contents] of Object.entries(options.files ?? {})) writeFileSync(join(dir, name), contents)
  const configFiles = ports.map((port, index) => {
    const file = join(dir, index === 0 ? 'gateway.yaml' : `gateway-${index}.yaml`)
    writeFileSync(file, stringify(configFor(port)))
    return file
  })

  const gateways: RunningGateway[] = []
  try {
    for (const file of options.startGateways === false ? [] : configFiles)
      gateways.push(await startGateway(loadConfig(file, env), { logger: options.logger, env, ...options.gateway }))
  } catch (error) {
    await Promise.allSettled([...gateways.map((g) => g.close(500)), legacy.close(), upstream.close()])
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
  return {
    dir,
    pki,
    legacy,
    upstream,
    gateways,
    baseUrls,
    issuer,
    tokenEndpoint: `${issuer}/oauth2/token`,
    revocationEndpoint: `${issuer}/oauth2/revoke`,
    partnerA: { clientId: 'partner-a', privateKey, publicJwk },
    partnerB: { clientId: 'partner-b' },
    legacyClients: LEGACY_CLIENTS,
    configFile: configFiles[0]!,
    env,
    async close() {
      await Promise.allSettled(gateways.map((gateway) => gateway.close(1000)))
      await Promise.allSettled([legacy.close(), upstream.close()])
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
