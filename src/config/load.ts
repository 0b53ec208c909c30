// Reads the configuration file and the policy files, applies environment overrides,
// validates everything once, and reports every problem as `file: key: what is wrong`.
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { availableParallelism } from 'node:os'
import { parse as parseYaml, YAMLParseError } from 'yaml'
import type { z } from 'zod'
import { describeIssues } from './issues.ts'
import { gatewayConfigSchema, partnerFileSchema, policyFileSchema, type GatewayConfig, type PartnerConfig, type RoutePolicy } from './schema.ts'

export class ConfigError extends Error {
  readonly problems: readonly string[]
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

export interface SourcedRoute extends RoutePolicy {
  readonly source: string
}

export interface LoadedConfig {
  readonly file: string
  readonly config: GatewayConfig
  readonly routes: readonly SourcedRoute[]
  /** The authorization-server façade's partner registry (authorizationServer.partnersFile), resolved path and entries. */
  readonly partners: { readonly file: string; readonly entries: readonly PartnerConfig[] } | undefined
  /** Reads a file named in the configuration, relative to the configuration file. */
  readonly readFile: (path: string) => string
  /** Keys set by FAPI_GATEWAY__* environment variables, over the file. */
  readonly overrides: readonly EnvOverride[]
}

export interface EnvOverride {
  /** Dotted key, as in messages: `listener.publicBaseUrl`. */
  readonly key: string
  readonly variable: string
}

const ENV_PREFIX = 'FAPI_GATEWAY__'

function formatIssues(file: string, issues: readonly z.core.$ZodIssue[], raw: unknown, schema: z.ZodType, overrides: readonly EnvOverride[] = []): string[] {
  return describeIssues(issues, raw, schema).map(({ key, message }) => {
    // A value from the environment is blamed on its variable, not on the file.
    const override = overrides.find((o) => key === o.key || key.startsWith(`${o.key}.`))
    return `${override ? `${override.variable} (environment)` : file}: ${key}: ${message}`
  })
}

function readYaml(file: string, problems: string[]): unknown {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    problems.push(`${file}: cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
    return undefined
  }
  try {
    return parseYaml(text)
  } catch (error) {
    problems.push(`${file}: ${describeYamlError(error, text)}`)
    return undefined
  }
}

/** One line: where, what, and the offending line itself (yaml's message ends in a multi-line excerpt). */
function describeYamlError(error: unknown, text: string): string {
  const message = (error as Error).message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')
  if (!(error instanceof YAMLParseError) || !error.linePos) return `not valid YAML: ${message}`
  const { line, col } = error.linePos[0]
  const source = text.split(/\r?\n/)[line - 1]?.trim()
  return `not valid YAML at line ${line}, column ${col}: ${message}${source ? ` (in "${source.length > 60 ? `${source.slice(0, 60)}…` : source}")` : ''}`
}

function camelCase(segment: string): string {
  return segment.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase())
}

/** FAPI_GATEWAY__LISTENER__PUBLIC_BASE_URL=https://api.example sets listener.publicBaseUrl. */
export function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): EnvOverride[] {
  const applied: EnvOverride[] = []
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue
    const path = name.slice(ENV_PREFIX.length).split('__').map(camelCase)
    let node: Record<string, unknown> = raw
    for (const key of path.slice(0, -1)) {
      const next = node[key]
      if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {}
      node = node[key] as Record<string, unknown>
    }
    node[path[path.length - 1]!] = parseYaml(value)
    applied.push({ key: path.join('.'), variable: name })
  }
  return applied
}

function policyFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.yaml') || name.endsWith('.yml'))
    .sort()
    .map((name) => join(dir, name))
}

function loadRoutes(dir: string, problems: string[]): SourcedRoute[] {
  let files: string[]
  try {
    if (!statSync(dir).isDirectory()) throw Object.assign(new Error(), { code: 'ENOTDIR' })
    files = policyFiles(dir)
  } catch (error) {
    problems.push(`${dir}: policy directory cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
    return []
  }
  if (files.length === 0) problems.push(`${dir}: no policy files (*.yaml): every request would be refused`)
  const routes: SourcedRoute[] = []
  for (const file of files) {
    const raw = readYaml(file, problems)
    if (raw === undefined) continue
    const parsed = policyFileSchema.safeParse(raw)
    if (!parsed.success) {
      problems.push(...formatIssues(file, parsed.error.issues, raw, policyFileSchema))
      continue
    }
    routes.push(...parsed.data.routes.map((route) => ({ ...route, source: file })))
  }
  return routes
}

function loadPartners(file: string, problems: string[]): PartnerConfig[] {
  const raw = readYaml(file, problems)
  if (raw === undefined) return []
  const parsed = partnerFileSchema.safeParse(raw)
  if (!parsed.success) {
    problems.push(...formatIssues(file, parsed.error.issues, raw, partnerFileSchema))
    return []
  }
  return parsed.data.partners
}

function crossCheckAuthorizationServer(
  file: string,
  config: GatewayConfig,
  partners: { file: string; entries: readonly PartnerConfig[] },
  problems: string[],
): void {
  const as = config.authorizationServer
  if (!as) return
  const issuer = config.issuers.find((i) => i.name === as.resourceIssuer)
  if (!issuer) {
    problems.push(
      `${file}: authorizationServer.resourceIssuer: "${as.resourceIssuer}" is not one of the configured issuers [${config.issuers.map((i) => i.name).join(', ')}]`,
    )
  } else if (!issuer.facade) {
    problems.push(`${file}: authorizationServer.resourceIssuer: issuer "${as.resourceIssuer}" needs a facade section, or its tokens would be accepted unbound`)
  }
  partners.entries.forEach((partner, index) => {
    if (partner.legacy === 'shared' && !as.legacy.sharedClient) {
      problems.push(`${partners.file}: partners.${index}.legacy: "shared", but ${file} has no authorizationServer.legacy.sharedClient`)
    }
  })
  for (const [key, path] of Object.entries(as.endpoints)) {
    if (path.startsWith('/.well-known/')) problems.push(`${file}: authorizationServer.endpoints.${key}: must not be under /.well-known/`)
  }
  // FAPI 2.0 SP §5.2.3: browsers reach the authorization endpoint and the callback, and they present no client certificate.
  if (as.legacy.authorizationEndpoint && config.listener.tls.clientCertificate === 'require') {
    problems.push(
      `${file}: listener.tls.clientCertificate: "require" would refuse every browser at the authorization endpoint and the callback; use "request" (mTLS partners still authenticate with their certificate)`,
    )
  }
}

function crossCheck(file: string, config: GatewayConfig, routes: readonly SourcedRoute[], problems: string[]): void {
  const issuerNames = new Set(config.issuers.map((i) => i.name))
  const seen = new Map<string, string>()
  config.issuers.forEach((issuer, index) => {
    if (seen.has(issuer.name)) problems.push(`${file}: issuers.${index}.name: "${issuer.name}" is used twice`)
    seen.set(issuer.name, file)
  })
  const routeNames = new Map<string, string>()
  for (const route of routes) {
    const at = `${route.source}: routes[name=${route.name}]`
    if (routeNames.has(route.name)) problems.push(`${at}.name: also defined in ${routeNames.get(route.name)}`)
    routeNames.set(route.name, route.source)
    if (!(route.upstream in config.upstreams)) {
      problems.push(`${at}.upstream: "${route.upstream}" is not one of the configured upstreams [${Object.keys(config.upstreams).join(', ')}]`)
    }
    for (const name of route.issuers ?? []) {
      if (!issuerNames.has(name)) problems.push(`${at}.issuers: "${name}" is not one of the configured issuers [${[...issuerNames].join(', ')}]`)
    }
    if (route.binding === 'mtls' && route.clientCertificate === 'optional') {
      problems.push(`${at}.clientCertificate: cannot be optional when binding is mtls`)
    }
    if (route.binding !== 'dpop' && config.listener.tls.clientCertificate === 'off' && !config.listener.clientCertificateHeader) {
      problems.push(`${at}.binding: "${route.binding}" accepts certificate-bound tokens, but listener.tls.clientCertificate is off`)
    }
  }
  for (const route of routes) {
    if (route.revocation && !config.revocation)
      problems.push(`${route.source}: routes[name=${route.name}].revocation: set, but the configuration has no revocation section, so nothing is checked`)
  }
  if (config.replay.store === 'redis' && !config.replay.redis) problems.push(`${file}: replay.redis: required when replay.store is redis`)
  const workers = resolveWorkers(config.workers)
  if (workers > 1 && config.replay.store === 'memory') {
    problems.push(`${file}: replay.store: "memory" cannot be shared by ${workers} workers (workers: ${config.workers}); use replay.store: redis, or workers: 1`)
  }
}

function checkFiles(file: string, config: GatewayConfig, readFile: (p: string) => string, problems: string[]): void {
  const named: [string, string | undefined][] = [
    ['listener.tls.certFile', config.listener.tls.certFile],
    ['listener.tls.keyFile', config.listener.tls.keyFile],
    ['listener.tls.clientCaFile', config.listener.tls.clientCaFile],
    ['listener.tls.clientIntermediatesFile', config.listener.tls.clientIntermediatesFile],
    ...config.issuers.flatMap((issuer, i): [string, string | undefined][] => [
      [`issuers.${i}.caFile`, issuer.caFile],
      [`issuers.${i}.introspection.caFile`, issuer.introspection?.caFile],
      [
        `issuers.${i}.introspection.auth.privateKeyFile`,
        issuer.introspection?.auth.method === 'private_key_jwt' ? issuer.introspection.auth.privateKeyFile : undefined,
      ],
    ]),
    ...Object.entries(config.upstreams).flatMap(([name, u]): [string, string | undefined][] => [
      [`upstreams.${name}.caFile`, u.caFile],
      [`upstreams.${name}.certFile`, u.certFile],
      [`upstreams.${name}.keyFile`, u.keyFile],
    ]),
    ['revocation.denyListFile', config.revocation?.denyListFile],
    ['authorizationServer.legacy.caFile', config.authorizationServer?.legacy.caFile],
    ['authorizationServer.partnerJwksCaFile', config.authorizationServer?.partnerJwksCaFile],
    ['authorizationServer.legacy.certFile', config.authorizationServer?.legacy.certFile],
    ['authorizationServer.legacy.keyFile', config.authorizationServer?.legacy.keyFile],
    ...(config.authorizationServer?.keys ?? []).map((key, i): [string, string | undefined] => [
      `authorizationServer.keys.${i}.privateKeyFile`,
      key.privateKeyFile,
    ]),
    // CRL files are not required at start-up: one CA's missing CRL must not stop the others (it is retried).
    ...(config.revocation?.cas ?? []).map((ca, i): [string, string | undefined] => [`revocation.cas.${i}.caFile`, ca.caFile]),
  ]
  for (const [key, path] of named) {
    if (path === undefined) continue
    try {
      readFile(path)
    } catch (error) {
      problems.push(`${file}: ${key}: file "${path}" cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
    }
  }
  if (config.listener.tls.clientCertificate !== 'off' && !config.listener.tls.clientCaFile) {
    problems.push(`${file}: listener.tls.clientCaFile: required unless listener.tls.clientCertificate is off`)
  }
}

/** 'auto' is one worker per CPU core the process may use. */
export function resolveWorkers(workers: GatewayConfig['workers']): number {
  return workers === 'auto' ? availableParallelism() : workers
}

export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const path = resolve(file)
  const base = dirname(path)
  const problems: string[] = []
  const raw = readYaml(path, problems)
  if (raw === undefined) throw new ConfigError(problems)
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError([`${path}: (top level): must be a mapping`])
  const overrides = applyEnvOverrides(raw as Record<string, unknown>, env)
  const parsed = gatewayConfigSchema.safeParse(raw)
  if (!parsed.success) {
    problems.push(...formatIssues(path, parsed.error.issues, raw, gatewayConfigSchema, overrides))
    // The policy files are still read, so that one run reports every problem.
    const dir = (raw as { policies?: { dir?: unknown } }).policies?.dir
    loadRoutes(resolve(base, typeof dir === 'string' ? dir : 'policies'), problems)
    throw new ConfigError(problems)
  }
  const config = parsed.data
  const readFile = (p: string) => readFileSync(resolve(base, p), 'utf8')
  checkFiles(path, config, readFile, problems)
  const routes = loadRoutes(resolve(base, config.policies.dir), problems)
  crossCheck(path, config, routes, problems)
  let partners: LoadedConfig['partners']
  if (config.authorizationServer) {
    const partnersFile = resolve(base, config.authorizationServer.partnersFile)
    partners = { file: partnersFile, entries: loadPartners(partnersFile, problems) }
    crossCheckAuthorizationServer(path, config, partners, problems)
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return deepFreeze({ file: path, config, routes, partners, readFile, overrides })
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const child of Object.values(value)) deepFreeze(child)
  }
  return value
}
