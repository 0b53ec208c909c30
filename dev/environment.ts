// A complete development environment on 127.0.0.1: PKI, token issuer, demo upstream and
// the gateway started from a real configuration file through the real loader.
// The demo runs it once; the end-to-end tests run it with overrides.
import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { stringify } from 'yaml'
import { loadConfig } from '../src/config/load.ts'
import { startGateway, type GatewayOptions, type RunningGateway } from '../src/gateway.ts'
import type { Logger } from '../src/types.ts'
import { startDevIssuer, type DevIssuer } from './issuer.ts'
import { createDevPki, writeDevPki, chainPem, type DevPki } from './pki.ts'
import { startDemoUpstream, type DemoUpstream } from './upstream.ts'
import { freePort } from './ports.ts'

export { freePort }

export const REPO_ROOT = resolve(fileURLToPath(import.meta.url), '../..')
export const DEMO_AUDIENCE = 'https://api.bank.example'

export interface DevEnvironmentOptions {
  /** Where the PKI and the generated configuration go; a fresh temporary folder by default. */
  readonly dir?: string
  /** Merged over the generated configuration (one level deep per top-level key); a function when it names the issuer's URLs. */
  readonly config?: Record<string, unknown> | ((issuer: DevIssuer) => Record<string, unknown>)
  /** Policy folder; the repository's policies/ by default. */
  readonly policiesDir?: string
  readonly env?: NodeJS.ProcessEnv
  readonly logger: Logger
  readonly gateway?: Partial<GatewayOptions>
  /** Reuse a PKI (tests share one to save time). */
  readonly pki?: DevPki
}

export interface DevEnvironment {
  readonly dir: string
  readonly pki: DevPki
  readonly issuer: DevIssuer
  readonly upstream: DemoUpstream
  readonly gateway: RunningGateway
  readonly baseUrl: string
  readonly configFile: string
  close(): Promise<void>
}

/** The generated configuration with overrides merged one level deep per top-level key. */
export function mergeConfig(base: Record<string, unknown>, overrides: Record<string, unknown>): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...base }
  for (const [key, value] of Object.entries(overrides)) {
    const current = merged[key]
    merged[key] =
      typeof current === 'object' && current !== null && !Array.isArray(current) && typeof value === 'object' && value !== null && !Array.isArray(value)
        ? { ...current, ...value }
        : value
  }
  return merged
}

/** The gateway configuration of the development environment; its TLS files are the ones writeDevPki writes next to it. */
export function devGatewayConfig(options: {
  port: number
  issuer: DevIssuer
  upstreamUrl: string
  upstreamName?: string
  policiesDir?: string
}): Record<string, unknown> {
  const baseUrl = `https://127.0.0.1:${options.port}`
  return {
    listener: {
      host: '127.0.0.1',
      port: options.port,
      publicBaseUrl: baseUrl,
      tls: {
        certFile: 'server-chain.crt',
        keyFile: 'server.key',
        clientCaFile: 'client-ca.crt',
        clientIntermediatesFile: 'client-intermediates.crt',
        clientCertificate: 'request',
      },
    },
    admin: { host: '127.0.0.1', port: 0 },
    issuers: [{ name: 'dev', issuer: options.issuer.issuer, jwksUri: options.issuer.jwksUri, caFile: 'client-ca.crt', audience: DEMO_AUDIENCE }],
    upstreams: { [options.upstreamName ?? 'data-api']: { url: options.upstreamUrl } },
    policies: { dir: options.policiesDir ?? join(REPO_ROOT, 'policies') },
    log: { level: 'info' },
  }
}

export async function startDevEnvironment(options: DevEnvironmentOptions): Promise<DevEnvironment> {
  const ownsDir = options.dir === undefined
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'fapi-gateway-'))
  mkdirSync(dir, { recursive: true })
  const pki = options.pki ?? (await createDevPki())
  writeDevPki(pki, dir)

  const issuer = await startDevIssuer({
    tls: pki.server,
    chainPem: chainPem(pki.server, pki.intermediate),
    audience: DEMO_AUDIENCE,
    introspectionClient: { id: 'fapi-gateway', secret: 'dev-introspection-secret' },
  })
  const upstream = await startDemoUpstream()
  const port = await freePort()
  const baseUrl = `https://127.0.0.1:${port}`
  const overrides = typeof options.config === 'function' ? options.config(issuer) : (options.config ?? {})
  const config = mergeConfig(devGatewayConfig({ port, issuer, upstreamUrl: upstream.url, policiesDir: options.policiesDir }), overrides)
  const configFile = join(dir, 'gateway.yaml')
  writeFileSync(configFile, stringify(config))

  let gateway: RunningGateway
  try {
    gateway = await startGateway(loadConfig(configFile, options.env ?? {}), { logger: options.logger, env: options.env ?? {}, ...options.gateway })
  } catch (error) {
    await Promise.allSettled([issuer.close(), upstream.close()])
    if (ownsDir) rmSync(dir, { recursive: true, force: true })
    throw error
  }
  return {
    dir,
    pki,
    issuer,
    upstream,
    gateway,
    baseUrl,
    configFile,
    async close() {
      await gateway.close(1000)
      await Promise.allSettled([issuer.close(), upstream.close()])
      if (ownsDir) rmSync(dir, { recursive: true, force: true })
    },
  }
}
