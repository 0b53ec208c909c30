// The operator's deny list: certificates refused as revoked whatever their CA says, for a
// partner whose CA is slow to revoke. A YAML file, polled for changes (stat polling is the
// robust choice: fs.watch misses atomic renames, ConfigMap symlink swaps and network file
// systems). A file that fails to parse keeps the previous list and is reported once.
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import type { SecurityEvents } from '../observability/events.ts'
import type { Logger } from '../types.ts'
import { canonicalSerial, type CertificateFacts } from './certificate-facts.ts'
import type { RevocationMetrics } from './metrics.ts'

const MAX_FILE_BYTES = 10 * 1024 * 1024

const hexSerial = z.string().regex(/^[0-9A-Fa-f]{2}(:?[0-9A-Fa-f]{2})*$|^[0-9A-Fa-f]+$/, 'must be hexadecimal (colons allowed)')
const thumbprint = z
  .string()
  .refine((t) => normaliseThumbprint(t) !== undefined, 'must be a SHA-256 thumbprint: base64url (43 characters) or hex (64 digits, colons allowed)')

const denyListSchema = z.strictObject({
  serials: z.array(z.strictObject({ issuer: z.string().min(1), serial: hexSerial, comment: z.string().optional() })).default([]),
  thumbprints: z.array(z.union([thumbprint, z.strictObject({ thumbprint, comment: z.string().optional() })])).default([]),
})

export interface DenyListEntries {
  /** `${normalised issuer}|${canonical serial}` → comment. */
  readonly serials: ReadonlyMap<string, string>
  /** base64url SHA-256 → comment. */
  readonly thumbprints: ReadonlyMap<string, string>
}

export interface DenyList {
  /** Why the certificate is denied, or undefined when it is not on the list. */
  match(cert: CertificateFacts, thumbprint: string): string | undefined
  /** Reads the file now; false when it could not be used (the previous list stays). */
  reload(): Promise<boolean>
  readonly size: number
  close(): void
}

function normaliseIssuer(issuer: string): string {
  return issuer.trim().replace(/\s*,\s*/g, ',')
}

function normaliseThumbprint(value: string): string | undefined {
  const trimmed = value.trim()
  if (/^[A-Za-z0-9_-]{43}$/.test(trimmed)) return trimmed
  const hex = trimmed.replace(/:/g, '')
  if (/^[0-9A-Fa-f]{64}$/.test(hex)) return Buffer.from(hex, 'hex').toString('base64url')
  return undefined
}

export function parseDenyList(text: string): DenyListEntries {
  const raw: unknown = parseYaml(text) ?? {}
  const parsed = denyListSchema.safeParse(raw)
  if (!parsed.success) throw new Error(parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; '))
  return {
    serials: new Map(parsed.data.serials.map((e) => [`${normaliseIssuer(e.issuer)}|${canonicalSerial(e.serial)}`, e.comment ?? 'on the deny list'])),
    thumbprints: new Map(
      parsed.data.thumbprints.map((e) =>
        typeof e === 'string' ? [normaliseThumbprint(e)!, 'on the deny list'] : [normaliseThumbprint(e.thumbprint)!, e.comment ?? 'on the deny list'],
      ),
    ),
  }
}

export interface DenyListOptions {
  readonly file: string
  readonly pollMs: number
  readonly logger: Logger
  readonly events: Pick<SecurityEvents, 'emit'>
  readonly metrics: RevocationMetrics
}

function digest(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** Reads the file once (throws when it is unusable: the gateway must not start without it), then polls. */
export function createDenyList(options: DenyListOptions): DenyList {
  const { file, logger, events, metrics } = options
  const initial = readFileSync(file)
  if (initial.length > MAX_FILE_BYTES) throw new Error(`${file}: larger than ${MAX_FILE_BYTES} bytes`)
  let entries = parseDenyList(initial.toString('utf8'))
  let seen = digest(initial)
  let lastOk = true
  let reading: Promise<boolean> | undefined
  metrics.denyListReloads.inc({ outcome: 'loaded' })

  function refuse(problem: string): false {
    lastOk = false
    metrics.denyListReloads.inc({ outcome: 'failed' })
    logger.error({ file, problem }, 'deny list not reloaded; the previous list stays in force')
    events.emit({ event: 'config.refused', reason: 'revocation.deny_list', detail: `${file}: ${problem}` })
    return false
  }

  async function readNow(): Promise<boolean> {
    let bytes: Buffer
    try {
      bytes = await readFile(file)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error'
      if (seen === code) return lastOk
      seen = code
      return refuse(`cannot be read (${code})`)
    }
    const hash = digest(bytes)
    if (hash === seen) return lastOk
    seen = hash
    if (bytes.length > MAX_FILE_BYTES) return refuse(`larger than ${MAX_FILE_BYTES} bytes`)
    try {
      entries = parseDenyList(bytes.toString('utf8'))
    } catch (error) {
      return refuse((error as Error).message)
    }
    lastOk = true
    metrics.denyListReloads.inc({ outcome: 'loaded' })
    logger.info({ file, serials: entries.serials.size, thumbprints: entries.thumbprints.size }, 'deny list reloaded')
    events.emit({
      event: 'config.reloaded',
      reason: 'revocation.deny_list',
      detail: `${file}: ${entries.serials.size} serials, ${entries.thumbprints.size} thumbprints`,
    })
    return true
  }

  const timer = setInterval(() => void (reading ??= readNow().finally(() => (reading = undefined))), options.pollMs)
  timer.unref()

  return {
    match(cert, thumbprint) {
      return entries.thumbprints.get(thumbprint) ?? entries.serials.get(`${normaliseIssuer(cert.issuer)}|${cert.serial}`)
    },
    reload: async () => {
      await reading
      return readNow()
    },
    get size() {
      return entries.serials.size + entries.thumbprints.size
    },
    close: () => clearInterval(timer),
  }
}
