// The partner registry: who may call the façade, how each authenticates to the gateway, and the
// legacy client the gateway uses for it. Built from the partner file at start-up and on every
// reload; the legacy secrets are read then, so a missing one is a start-up error, not a 500 later.
import { readFileSync } from 'node:fs'
import { resolve, dirname } from 'node:path'
import { ConfigError, type LoadedConfig } from '../config/load.ts'
import type { LegacyClientConfig, PartnerConfig } from '../config/schema.ts'

export interface LegacyCredentials {
  readonly clientId: string
  readonly authentication: 'client_secret_basic' | 'client_secret_post'
  readonly secret: string
}

export interface Partner {
  readonly clientId: string
  readonly config: PartnerConfig
  readonly grantTypes: ReadonlySet<string>
  readonly scopes: ReadonlySet<string>
  /** The legacy client the gateway uses on this partner's behalf; partners never see its secret. */
  readonly legacy: LegacyCredentials
}

export interface PartnerRegistry {
  get(clientId: string): Partner | undefined
  /** Who holds a legacy client id, for revoking at the legacy server with the client a token was issued to. */
  legacyCredentials(legacyClientId: string): LegacyCredentials | undefined
  readonly size: number
}

function readSecret(client: LegacyClientConfig, where: string, base: string, env: NodeJS.ProcessEnv, problems: string[]): string {
  if (client.secretEnv !== undefined) {
    const value = env[client.secretEnv]
    if (!value) problems.push(`${where}.secretEnv: environment variable ${client.secretEnv} is not set`)
    return value ?? ''
  }
  const path = resolve(base, client.secretFile!)
  try {
    const value = readFileSync(path, 'utf8').trim()
    if (value === '') problems.push(`${where}.secretFile: file "${client.secretFile}" is empty`)
    return value
  } catch (error) {
    problems.push(`${where}.secretFile: file "${client.secretFile}" cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
    return ''
  }
}

function credentials(client: LegacyClientConfig, where: string, base: string, env: NodeJS.ProcessEnv, problems: string[]): LegacyCredentials {
  return { clientId: client.clientId, authentication: client.authentication, secret: readSecret(client, where, base, env, problems) }
}

export function createPartnerRegistry(loaded: LoadedConfig, env: NodeJS.ProcessEnv): PartnerRegistry {
  const as = loaded.config.authorizationServer
  const partnerFile = loaded.partners
  if (!as || !partnerFile) throw new ConfigError([`${loaded.file}: authorizationServer: not configured`])
  const problems: string[] = []
  const configBase = dirname(loaded.file)
  const shared =
    as.legacy.sharedClient && credentials(as.legacy.sharedClient, `${loaded.file}: authorizationServer.legacy.sharedClient`, configBase, env, problems)
  const partners = new Map<string, Partner>()
  const byLegacyClient = new Map<string, LegacyCredentials>()
  if (shared) byLegacyClient.set(shared.clientId, shared)
  partnerFile.entries.forEach((config, index) => {
    const legacy =
      config.legacy === 'shared'
        ? shared!
        : credentials(config.legacy, `${partnerFile.file}: partners.${index}.legacy`, dirname(partnerFile.file), env, problems)
    partners.set(config.clientId, {
      clientId: config.clientId,
      config,
      grantTypes: new Set(config.grantTypes),
      scopes: new Set(config.scopes),
      legacy,
    })
    byLegacyClient.set(legacy.clientId, legacy)
  })
  if (problems.length > 0) throw new ConfigError(problems)
  return {
    get: (clientId) => partners.get(clientId),
    legacyCredentials: (legacyClientId) => byLegacyClient.get(legacyClientId),
    size: partners.size,
  }
}
