// The file-based CA store (format documented in docs/partner-ca.md):
//   ca.json     settings, written once by `ca init`
//   ca.crt      the CA certificate; chain.crt: it and its issuers up to the root
//   ca.key      PKCS#8 private key, mode 0600 (refused when group or others can access it)
//   index.json  every certificate this CA issued, its status and the last CRL number
//   issued/<serial>.crt, ocsp/responder.{crt,key}, crl.pem (the last CRL published)
import { X509Certificate as NodeX509, randomBytes } from 'node:crypto'
import { existsSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { z } from 'zod'
import { CaError } from './ca-error.ts'
import { readTextFile, withStoreLock, writeFileAtomic } from './files.ts'
import { KEY_TYPES, readPrivateKeyFile, toSigningKey, type SigningKey } from './keys.ts'
import { x509 } from './x509.ts'

export const STORE_FILES = {
  settings: 'ca.json',
  cert: 'ca.crt',
  key: 'ca.key',
  chain: 'chain.crt',
  index: 'index.json',
  issued: 'issued',
  responderDir: 'ocsp',
  responderCert: 'ocsp/responder.crt',
  responderKey: 'ocsp/responder.key',
  crl: 'crl.pem',
} as const

/** RFC 5280 §5.3.1 reason codes an operator may give (certificateHold and removeFromCRL are not supported). */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  privilegeWithdrawn: 9,
} as const
export type RevocationReason = keyof typeof REVOCATION_REASONS
const REASON_NAMES = Object.keys(REVOCATION_REASONS) as [RevocationReason, ...RevocationReason[]]

export function parseRevocationReason(value: string, source: string): RevocationReason {
  if (Object.hasOwn(REVOCATION_REASONS, value)) return value as RevocationReason
  throw new CaError(`${source}: unknown revocation reason "${value}" (use one of ${REASON_NAMES.join(', ')})`)
}

const httpUrl = z.string().refine((value) => {
  try {
    const url = new URL(value)
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== ''
  } catch {
    return false
  }
}, 'must be an http:// or https:// URL')

const settingsSchema = z.strictObject({
  version: z.literal(1),
  subject: z.string().min(1),
  keyType: z.enum(KEY_TYPES),
  ocspUrl: httpUrl.optional(),
  crlUrl: httpUrl.optional(),
  /** Default validity of the certificates this CA issues. */
  issuedValidityDays: z.number().int().positive().max(36500),
  /** The issuing CA's store, for an intermediate. */
  parentDir: z.string().optional(),
  createdAt: z.iso.datetime(),
})
export type CaSettings = z.infer<typeof settingsSchema>

export const CERTIFICATE_KINDS = ['partner', 'ca', 'ocsp-responder'] as const

const recordSchema = z.strictObject({
  serial: z.string().regex(/^[0-9a-f]+$/),
  subject: z.string(),
  kind: z.enum(CERTIFICATE_KINDS),
  notBefore: z.iso.datetime(),
  notAfter: z.iso.datetime(),
  /** SHA-256 of the certified SubjectPublicKeyInfo, hex. */
  keySha256: z.string().regex(/^[0-9a-f]{64}$/),
  status: z.enum(['good', 'revoked']),
  revokedAt: z.iso.datetime().optional(),
  reason: z.enum(REASON_NAMES).optional(),
})
export type IssuedRecord = z.infer<typeof recordSchema>

const indexSchema = z.strictObject({
  version: z.literal(1),
  /** Number of the last CRL published (RFC 5280 §5.2.3); the next one gets crlNumber + 1. */
  crlNumber: z.number().int().nonnegative(),
  certificates: z.array(recordSchema),
})
export type CaIndex = z.infer<typeof indexSchema>

export function emptyIndex(): CaIndex {
  return { version: 1, crlNumber: 0, certificates: [] }
}

export interface CaStore {
  readonly dir: string
  readonly settings: CaSettings
  readonly certPem: string
  readonly cert: x509.X509Certificate
  readonly nodeCert: NodeX509
  path(file: keyof typeof STORE_FILES): string
}

export function storePath(dir: string, file: keyof typeof STORE_FILES): string {
  return join(dir, STORE_FILES[file])
}

function zodProblems(file: string, error: z.ZodError): string {
  return error.issues.map((issue) => `${file}: ${issue.path.join('.') || '(root)'}: ${issue.message}`).join('\n')
}

function parseJsonFile<T>(path: string, schema: z.ZodType<T>, what: string): T {
  let raw: unknown
  try {
    raw = JSON.parse(readTextFile(path, what))
  } catch (error) {
    if (error instanceof CaError) throw error
    throw new CaError(`${path}: not valid JSON (${error instanceof Error ? error.message : String(error)})`)
  }
  const parsed = schema.safeParse(raw)
  if (!parsed.success) throw new CaError(zodProblems(path, parsed.error))
  return parsed.data
}

export function parseSettings(path: string): CaSettings {
  return parseJsonFile(path, settingsSchema, 'the CA settings')
}

export function validateSettings(settings: CaSettings, source: string): CaSettings {
  const parsed = settingsSchema.safeParse(settings)
  if (!parsed.success) throw new CaError(zodProblems(source, parsed.error))
  return parsed.data
}

export function openCaStore(dirInput: string): CaStore {
  const dir = resolve(dirInput)
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new CaError(`${dir}: no such CA directory (create one with \`ca init --dir ${dirInput}\`)`)
  const settingsPath = storePath(dir, 'settings')
  if (!existsSync(settingsPath)) throw new CaError(`${dir}: not a CA store (no ${STORE_FILES.settings}; create one with \`ca init\`)`)
  const settings = parseSettings(settingsPath)
  const certPath = storePath(dir, 'cert')
  const certPem = readTextFile(certPath, 'the CA certificate')
  let cert: x509.X509Certificate
  let nodeCert: NodeX509
  try {
    cert = new x509.X509Certificate(certPem)
    nodeCert = new NodeX509(certPem)
  } catch (error) {
    throw new CaError(`${certPath}: not a PEM certificate (${error instanceof Error ? error.message : String(error)})`)
  }
  if (!nodeCert.ca) throw new CaError(`${certPath}: not a CA certificate (basicConstraints CA:TRUE missing)`)
  return { dir, settings, certPem, cert, nodeCert, path: (file) => storePath(dir, file) }
}

export function readIndex(store: Pick<CaStore, 'path'>): CaIndex {
  return parseJsonFile(store.path('index'), indexSchema, 'the certificate index')
}

export function writeIndex(store: Pick<CaStore, 'path'>, index: CaIndex): void {
  writeFileAtomic(store.path('index'), JSON.stringify(index, null, 2) + '\n')
}

/** Read, change and write the index under the store lock; `change` mutates the index it is given. */
export function updateIndex<T>(store: CaStore, change: (index: CaIndex) => Promise<T> | T): Promise<T> {
  return withStoreLock(store.dir, async () => {
    const index = readIndex(store)
    const result = await change(index)
    writeIndex(store, indexSchema.parse(index))
    return result
  })
}

export function loadCaSigningKey(store: CaStore): Promise<SigningKey> {
  return loadSigningKey(store.path('key'), store.nodeCert)
}

/** A private key file, checked to belong to `cert`. */
export async function loadSigningKey(keyPath: string, cert: NodeX509): Promise<SigningKey> {
  const key = await toSigningKey(readPrivateKeyFile(keyPath), keyPath)
  if (!cert.checkPrivateKey(key.privateKey)) throw new CaError(`${keyPath}: this key does not belong to the certificate next to it`)
  return key
}

export function issuedCertPath(store: Pick<CaStore, 'dir'>, serial: string): string {
  return join(store.dir, STORE_FILES.issued, `${serial}.crt`)
}

/** 128 random bits with the top bit clear: positive, never a leading zero byte (RFC 5280 §4.1.2.2). */
export function newSerial(): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0]! & 0x3f) | 0x40
  return bytes.toString('hex')
}

/** Accepts `0A1B`, `0a:1b`, `0x0a1b`; returns lower-case hex without leading zeros. */
export function normaliseSerial(input: string, source: string): string {
  const hex = input.trim().replace(/^0x/i, '').replace(/:/g, '').toLowerCase()
  if (!/^[0-9a-f]+$/.test(hex)) throw new CaError(`${source}: "${input}" is not a hexadecimal serial number`)
  return hex.replace(/^0+(?=.)/, '')
}

/** The CA certificate's subject key identifier, hex (what issued certificates carry as AKI). */
export async function caKeyIdentifier(store: Pick<CaStore, 'cert'>): Promise<string> {
  const ski = store.cert.getExtension(x509.SubjectKeyIdentifierExtension)
  if (ski) return ski.keyId
  return Buffer.from(await store.cert.publicKey.getKeyIdentifier()).toString('hex')
}
