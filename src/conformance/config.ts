// The runner's YAML file, validated with zod, and the settings it resolves to (files read,
// defaults filled in). Problems are reported as `file: key: what is wrong`, every one at once.
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { X509Certificate } from 'node:crypto'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import type { TlsIdentity } from './http.ts'
import { SECTION_ORDER, type Mode, type SectionId } from './model.ts'
import type { ProofAlgorithm } from './proofs.ts'
import type { ClientAuthentication } from './token-endpoint.ts'
import type { LoginFormDescription } from './user-agent.ts'

export class ConformanceConfigError extends Error {
  readonly problems: readonly string[]
  constructor(problems: readonly string[]) {
    super(`invalid conformance configuration:\n  ${problems.join('\n  ')}`)
    this.name = 'ConformanceConfigError'
    this.problems = problems
  }
}

const algorithm = z.enum(['ES256', 'PS256', 'EdDSA'])
const httpsUrl = z.string().refine((value) => {
  try {
    return new URL(value).protocol === 'https:'
  } catch {
    return false
  }
}, 'must be an absolute https URL')

const certificateFiles = z.strictObject({
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
})

const clientAuth = z.discriminatedUnion('method', [
  z.strictObject({ method: z.literal('private_key_jwt'), keyFile: z.string().min(1), alg: algorithm.default('ES256'), kid: z.string().min(1).optional() }),
  z.strictObject({ method: z.literal('tls_client_auth') }),
])

const client = z
  .strictObject({
    clientId: z.string().min(1).optional(),
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
    auth: clientAuth.optional(),
    dpopAlgorithm: algorithm.default('ES256'),
  })
  .refine((c) => (c.certFile === undefined) === (c.keyFile === undefined), { message: 'certFile and keyFile go together', path: ['keyFile'] })

export const runnerConfigSchema = z
  .strictObject({
    mode: z.enum(['dpop', 'mtls']),
    target: z.strictObject({
      url: httpsUrl,
      method: z
        .string()
        .regex(/^[A-Z]+$/, 'must be an upper-case HTTP method')
        .default('GET'),
      body: z.string().optional(),
      mediaType: z.string().min(1).optional(),
      caFile: z.string().min(1).optional(),
      servername: z.string().min(1).optional(),
    }),
    tlsProbe: z
      .strictObject({
        host: z.string().min(1).optional(),
        port: z.number().int().min(1).max(65535).optional(),
      })
      .prefault({}),
    clients: z.strictObject({
      primary: client,
      second: client.optional(),
    }),
    certificates: z
      .strictObject({
        untrusted: certificateFiles.optional(),
        expired: certificateFiles.optional(),
        revoked: certificateFiles.optional(),
      })
      .prefault({}),
    tokens: z.discriminatedUnion('source', [
      z.strictObject({
        source: z.literal('tokenEndpoint'),
        endpoint: httpsUrl,
        issuer: z.string().min(1),
        scope: z.string().min(1).optional(),
        caFile: z.string().min(1).optional(),
      }),
      z.strictObject({ source: z.literal('devIssuer') }),
    ]),
    authorizationServer: z
      .strictObject({
        issuer: httpsUrl,
        tokenEndpoint: httpsUrl.optional(),
        scope: z.string().min(1).optional(),
        caFile: z.string().min(1).optional(),
        frontChannel: z
          .strictObject({
            redirectUri: httpsUrl,
            scope: z.string().min(1).optional(),
            login: z.strictObject({
              forms: z
                .array(
                  z.strictObject({
                    page: z.string().min(1).optional(),
                    form: z.string().min(1).optional(),
                    fields: z.record(z.string().min(1), z.string()).default({}),
                  }),
                )
                .min(1),
            }),
            requestObject: z.boolean().default(false),
          })
          .optional(),
      })
      .optional(),
    sections: z
      .array(z.enum(SECTION_ORDER as [SectionId, ...SectionId[]]))
      .min(1)
      .optional(),
    requestTimeoutMs: z.number().int().min(100).max(120_000).default(10_000),
    skip: z.array(z.string().min(1)).default([]),
  })
  .superRefine((config, context) => {
    const problem = (path: (string | number)[], message: string) => context.addIssue({ code: 'custom', path, message })
    if (config.mode === 'mtls' && config.clients.primary.certFile === undefined) problem(['clients', 'primary', 'certFile'], 'required in mtls mode')
    if (config.sections?.includes('authorization-server') && config.authorizationServer === undefined)
      problem(['sections'], 'authorization-server needs the authorizationServer key')
    if (config.sections?.includes('authorization-code') && config.authorizationServer?.frontChannel === undefined)
      problem(['sections'], 'authorization-code needs the authorizationServer.frontChannel key')
    for (const [index, form] of (config.authorizationServer?.frontChannel?.login.forms ?? []).entries()) {
      for (const key of ['page', 'form'] as const) {
        try {
          if (form[key] !== undefined) new RegExp(form[key])
        } catch {
          problem(['authorizationServer', 'frontChannel', 'login', 'forms', index, key], 'not a valid regular expression')
        }
      }
    }
    if (config.target.body !== undefined && config.target.method === 'GET') problem(['target', 'body'], 'a GET request has no body')
    if (config.tokens.source === 'tokenEndpoint' || config.authorizationServer !== undefined) {
      const needs = config.tokens.source === 'tokenEndpoint' ? 'tokens.source tokenEndpoint' : 'authorizationServer'
      for (const role of ['primary', 'second'] as const) {
        const c = config.clients[role]
        if (!c) continue
        if (c.clientId === undefined) problem(['clients', role, 'clientId'], `required with ${needs}`)
        if (c.auth === undefined) problem(['clients', role, 'auth'], `required with ${needs}`)
        if (c.auth?.method === 'tls_client_auth' && c.certFile === undefined) problem(['clients', role, 'certFile'], 'required for tls_client_auth')
      }
    }
  })

export type RunnerConfigFile = z.infer<typeof runnerConfigSchema>

export interface ClientSettings {
  readonly clientId: string | undefined
  readonly identity: TlsIdentity | undefined
  readonly auth: ClientAuthentication | undefined
  readonly dpopAlgorithm: ProofAlgorithm
}

export type TokenSettings =
  | {
      readonly source: 'tokenEndpoint'
      readonly endpoint: string
      readonly issuer: string
      readonly scope: string | undefined
      readonly caPem: string | undefined
    }
  | { readonly source: 'devIssuer' }

/** The token endpoint of the authorization server to assess (FAPI requirements §3); its metadata is read from the issuer. */
export interface AuthorizationServerSettings {
  /** The issuer identifier: the only `aud` of client assertions (FAPI 2.0 SP 5.3.2.1-8). */
  readonly issuer: string
  /** When undefined, `token_endpoint` of the RFC 8414 metadata. */
  readonly tokenEndpoint: string | undefined
  readonly scope: string | undefined
  readonly caPem: string | undefined
  /** When given, the authorization-code front channel is assessed too (section authorization-code). */
  readonly frontChannel?: FrontChannelSettings
}

/** How the runner plays the partner and the customer in the authorization-code flow. */
export interface FrontChannelSettings {
  /** A redirect URI registered for the primary client (never requested: the browser stops there). */
  readonly redirectUri: string
  /** The scope of the authorization requests; authorizationServer.scope when undefined. */
  readonly scope: string | undefined
  /** The deployment's login and consent forms, as the scripted browser fills them in. */
  readonly forms: readonly LoginFormDescription[]
  /** The deployment requires signed request objects (FAPI 2.0 Message Signing; A15). */
  readonly requestObject: boolean
}

/** Everything a run needs, files already read. Tests build it directly. */
export interface RunnerSettings {
  readonly mode: Mode
  readonly target: {
    readonly url: string
    readonly method: string
    readonly body: string | undefined
    readonly mediaType: string | undefined
    readonly caPem: string | undefined
    readonly servername: string | undefined
  }
  readonly tlsProbe: { readonly host: string; readonly port: number }
  readonly clients: { readonly primary: ClientSettings; readonly second: ClientSettings | undefined }
  readonly certificates: { readonly untrusted?: TlsIdentity; readonly expired?: TlsIdentity; readonly revoked?: TlsIdentity }
  readonly tokens: TokenSettings
  /** When given, the authorization-server checks run too. */
  readonly authorizationServer?: AuthorizationServerSettings
  /** Only the checks of these sections run; all when undefined. */
  readonly sections?: readonly SectionId[]
  readonly requestTimeoutMs: number
  /** Check ids not to run (reported as skipped). */
  readonly skip: readonly string[]
}

export function identityLabel(certPem: string): string {
  try {
    const cert = new X509Certificate(certPem)
    return cert.subject.split('\n').join(', ')
  } catch {
    return 'unparsable certificate'
  }
}

export function defaultProbe(url: string): { host: string; port: number } {
  const parsed = new URL(url)
  return { host: parsed.hostname.replace(/^\[|\]$/g, ''), port: parsed.port === '' ? 443 : Number(parsed.port) }
}

function formatIssues(file: string, issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => `${file}: ${issue.path.map(String).join('.') || '(top level)'}: ${issue.message}`)
}

export function loadRunnerConfig(file: string): RunnerSettings {
  const path = resolve(file)
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new ConformanceConfigError([`${path}: cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`])
  }
  let raw: unknown
  try {
    raw = parseYaml(text)
  } catch (error) {
    throw new ConformanceConfigError([`${path}: not valid YAML: ${(error as Error).message.split('\n')[0]}`])
  }
  const parsed = runnerConfigSchema.safeParse(raw)
  if (!parsed.success) throw new ConformanceConfigError(formatIssues(path, parsed.error.issues))
  return resolveRunnerConfig(parsed.data, path)
}

/** Reads every file the configuration names (relative to it), collecting every problem. */
export function resolveRunnerConfig(config: RunnerConfigFile, path: string): RunnerSettings {
  const base = dirname(path)
  const problems: string[] = []
  const read = (key: string, file: string | undefined): string | undefined => {
    if (file === undefined) return undefined
    try {
      return readFileSync(resolve(base, file), 'utf8')
    } catch (error) {
      problems.push(`${path}: ${key}: file "${file}" cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
      return undefined
    }
  }
  const identity = (key: string, files: { certFile?: string | undefined; keyFile?: string | undefined }): TlsIdentity | undefined => {
    const certPem = read(`${key}.certFile`, files.certFile)
    const keyPem = read(`${key}.keyFile`, files.keyFile)
    return certPem !== undefined && keyPem !== undefined ? { label: identityLabel(certPem), certPem, keyPem } : undefined
  }
  const clientSettings = (role: 'primary' | 'second'): ClientSettings | undefined => {
    const c = config.clients[role]
    if (!c) return undefined
    const auth: ClientAuthentication | undefined =
      c.auth === undefined
        ? undefined
        : c.auth.method === 'tls_client_auth'
          ? { method: 'tls_client_auth' }
          : { method: 'private_key_jwt', signingKeyPem: read(`clients.${role}.auth.keyFile`, c.auth.keyFile) ?? '', alg: c.auth.alg, kid: c.auth.kid }
    return { clientId: c.clientId, identity: identity(`clients.${role}`, c), auth, dpopAlgorithm: c.dpopAlgorithm }
  }
  const certificate = (name: 'untrusted' | 'expired' | 'revoked') => {
    const files = config.certificates[name]
    return files ? identity(`certificates.${name}`, files) : undefined
  }
  const primary = clientSettings('primary')!
  const untrusted = certificate('untrusted')
  const expired = certificate('expired')
  const revoked = certificate('revoked')
  const settings: RunnerSettings = {
    mode: config.mode,
    target: {
      url: config.target.url,
      method: config.target.method,
      body: config.target.body,
      mediaType: config.target.body === undefined ? undefined : (config.target.mediaType ?? 'application/json'),
      caPem: read('target.caFile', config.target.caFile),
      servername: config.target.servername,
    },
    tlsProbe: { ...defaultProbe(config.target.url), ...config.tlsProbe },
    clients: { primary, second: clientSettings('second') },
    certificates: {
      ...(untrusted && { untrusted }),
      ...(expired && { expired }),
      ...(revoked && { revoked }),
    },
    tokens:
      config.tokens.source === 'devIssuer'
        ? { source: 'devIssuer' }
        : {
            source: 'tokenEndpoint',
            endpoint: config.tokens.endpoint,
            issuer: config.tokens.issuer,
            scope: config.tokens.scope,
            caPem: read('tokens.caFile', config.tokens.caFile),
          },
    ...(config.authorizationServer && {
      authorizationServer: {
        issuer: config.authorizationServer.issuer,
        tokenEndpoint: config.authorizationServer.tokenEndpoint,
        scope: config.authorizationServer.scope,
        caPem: read('authorizationServer.caFile', config.authorizationServer.caFile),
        ...(config.authorizationServer.frontChannel && {
          frontChannel: {
            redirectUri: config.authorizationServer.frontChannel.redirectUri,
            scope: config.authorizationServer.frontChannel.scope,
            forms: config.authorizationServer.frontChannel.login.forms.map((form) => ({ page: form.page, form: form.form, fields: form.fields })),
            requestObject: config.authorizationServer.frontChannel.requestObject,
          },
        }),
      },
    }),
    ...(config.sections && { sections: config.sections }),
    requestTimeoutMs: config.requestTimeoutMs,
    skip: config.skip,
  }
  if (problems.length > 0) throw new ConformanceConfigError(problems)
  return settings
}
