// Builds the revocation checker from the `revocation` section of the configuration.
import { dirname, resolve } from 'node:path'
import type { Registry } from 'prom-client'
import { parsePemCertificates } from '../x509.ts'
import { ConfigError, type LoadedConfig } from '../config/load.ts'
import type { ConfigWarning } from '../config/warnings.ts'
import type { RevocationConfig } from '../config/schema.ts'
import type { SecurityEvents } from '../observability/events.ts'
import type { Clock, Logger } from '../types.ts'
import { printableName, readCertificateFacts, type CertificateFacts } from './certificate-facts.ts'
import { createRevocationChecker, type CaRevocation, type ConfiguredCa, type RunningRevocationChecker } from './checker.ts'
import { crlSignerProblem } from './crl.ts'
import type { CrlLocation } from './crl-store.ts'
import { createDenyList } from './deny-list.ts'
import { createRevocationHttp } from './http-fetch.ts'
import { createRevocationMetrics, type RevocationMetrics } from './metrics.ts'

export interface RevocationFromConfigDeps {
  readonly now: Clock
  readonly logger: Logger
  readonly events: Pick<SecurityEvents, 'emit'>
  readonly registry: Registry
  /** Metrics already registered on the registry (a configuration reload builds a second checker). */
  readonly metrics?: RevocationMetrics
}

type Defaults = RevocationConfig['default']
type CaEntry = RevocationConfig['cas'][number]

function normaliseName(name: string): string {
  return name.trim().replace(/\s*,\s*/g, ',')
}

function caRevocation(name: string, config: RevocationConfig, entry: CaEntry | undefined, locations: CrlLocation[]): CaRevocation {
  const defaults: Defaults = config.default
  const ocsp = { ...defaults.ocsp, ...definedOnly(entry?.ocsp ?? {}) }
  const crl = { ...defaults.crl, ...definedOnly(entry?.crl ?? {}) }
  return {
    name,
    policy: {
      sources: entry?.sources ?? defaults.sources,
      checkIntermediates: entry?.checkIntermediates ?? defaults.checkIntermediates,
      onUnavailable: entry?.onUnavailable ?? defaults.onUnavailable,
      maxStalenessSeconds: entry?.maxStalenessSeconds ?? defaults.maxStalenessSeconds,
    },
    ocsp: {
      url: entry?.ocsp?.url,
      nonce: ocsp.nonce,
      hashAlgorithm: ocsp.hashAlgorithm,
      timeoutMs: ocsp.timeoutMs,
      maxBytes: 1024 * 1024,
      maxCacheMs: ocsp.maxCacheSeconds * 1000,
      defaultValidityMs: ocsp.defaultValiditySeconds * 1000,
    },
    crl: {
      timeoutMs: crl.timeoutMs,
      maxBytes: crl.maxBytes,
      refreshIntervalMs: crl.refreshIntervalSeconds * 1000,
      refreshBeforeExpiryMs: crl.refreshBeforeExpirySeconds * 1000,
      clockSkewMs: config.clockSkewSeconds * 1000,
    },
    crlLocations: locations,
  }
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
}

function configuredCa(loaded: LoadedConfig, config: RevocationConfig, entry: CaEntry, index: number): ConfiguredCa {
  const base = dirname(loaded.file)
  const at = `${loaded.file}: revocation.cas.${index}`
  let knownIssuers: CertificateFacts[] = []
  if (entry.caFile) {
    try {
      knownIssuers = parsePemCertificates(loaded.readFile(entry.caFile)).map((cert) => readCertificateFacts(cert.raw))
    } catch (error) {
      throw new ConfigError([`${at}.caFile: ${(error as Error).message}`])
    }
    if (knownIssuers.length === 0) throw new ConfigError([`${at}.caFile: no certificate in ${entry.caFile}`])
  }
  const locations: CrlLocation[] = [
    ...(entry.crl?.files ?? []).map((file): CrlLocation => ({ kind: 'file', ref: resolve(base, file) })),
    ...(entry.crl?.urls ?? []).map((url): CrlLocation => ({ kind: 'url', ref: url })),
  ]
  const revocation = caRevocation(entry.name, config, entry, locations)
  if (revocation.policy.sources.includes('crl')) {
    for (const issuer of knownIssuers) {
      const problem = crlSignerProblem(issuer)
      if (problem) throw new ConfigError([`${at}.caFile: ${problem}, so it cannot sign CRLs`])
    }
  }
  const subject = entry.subject === undefined ? undefined : normaliseName(entry.subject)
  return {
    ...revocation,
    knownIssuers,
    matches: (issuer) =>
      subject !== undefined
        ? normaliseName(printableName(issuer.x509.subject)) === subject
        : knownIssuers.some((known) => known.keyId === issuer.keyId && known.subjectDer.equals(issuer.subjectDer)),
  }
}

/**
 * One line per trusted CA whose partners' certificates would be checked with no source the
 * configuration names: each of those certificates must then carry an OCSP or CRL URL itself, or
 * be refused with 503. Operators learn it here, at check-config and start-up, not from partners.
 */
export function revocationWarnings(loaded: LoadedConfig): ConfigWarning[] {
  const config = loaded.config.revocation
  const tls = loaded.config.listener.tls
  if (!config || !tls.clientCaFile) return []
  const cas = config.cas.map((entry, index) => configuredCa(loaded, config, entry, index))
  const fallback = caRevocation('default', config, undefined, [])
  const warnings: ConfigWarning[] = []
  const trusted: [string, string | undefined][] = [
    ['listener.tls.clientCaFile', tls.clientCaFile],
    ['listener.tls.clientIntermediatesFile', tls.clientIntermediatesFile],
  ]
  for (const [key, file] of trusted) {
    if (file === undefined) continue
    for (const cert of parsePemCertificates(loaded.readFile(file))) {
      const facts = readCertificateFacts(cert.raw)
      const ca = cas.find((candidate) => candidate.matches(facts)) ?? fallback
      const { sources } = ca.policy
      const named = (sources.includes('ocsp') && ca.ocsp.url !== undefined) || (sources.includes('crl') && ca.crlLocations.length > 0)
      if (sources.length === 0 || named) continue
      const entry = ca === fallback ? 'revocation.default' : `revocation.cas[name=${ca.name}]`
      warnings.push({
        key: entry,
        message:
          `certificates issued by the trusted CA "${printableName(cert.subject)}" (${key}) are checked with [${sources.join(', ')}], ` +
          `but no OCSP responder or CRL is configured for it: each one that names neither itself is refused with 503 GW_REVOCATION_UNAVAILABLE; ` +
          `give the CA a revocation.cas entry with ocsp.url or crl, or sources: [] to not check it`,
      })
    }
  }
  return warnings
}

export function createRevocationFromConfig(loaded: LoadedConfig, config: RevocationConfig, deps: RevocationFromConfigDeps): RunningRevocationChecker {
  const metrics = deps.metrics ?? createRevocationMetrics(deps.registry)
  const cas = config.cas.map((entry, index) => configuredCa(loaded, config, entry, index))
  const fallback = caRevocation('default', config, undefined, [])
  let denyList
  if (config.denyListFile) {
    const file = resolve(dirname(loaded.file), config.denyListFile)
    try {
      denyList = createDenyList({ file, pollMs: config.denyListPollSeconds * 1000, logger: deps.logger, events: deps.events, metrics })
    } catch (error) {
      throw new ConfigError([`${loaded.file}: revocation.denyListFile: ${(error as Error).message}`])
    }
  }
  return createRevocationChecker(
    { cas, fallback, cacheSize: config.cacheSize, clockSkewMs: config.clockSkewSeconds * 1000 },
    { now: deps.now, logger: deps.logger, events: deps.events, metrics, http: createRevocationHttp(), denyList },
  )
}
