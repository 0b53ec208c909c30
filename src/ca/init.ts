// `ca init`: a new root CA, or an intermediate CA issued by an existing CA store.
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { BACKDATE_MS, DAY_MS, buildCertificate, parseSubject, wholeSeconds, type IssuerInfo } from './build-certificate.ts'
import { CaError } from './ca-error.ts'
import { PRIVATE_FILE_MODE, readTextFile, writeFileAtomic, writeNewFile } from './files.ts'
import { generateKeyPair, keySha256, privateKeyPem, spkiDer, toSigningKey, type KeyType } from './keys.ts'
import { createResponderCert } from './responder-cert.ts'
import { x509 } from './x509.ts'
import {
  caKeyIdentifier,
  emptyIndex,
  issuedCertPath,
  loadCaSigningKey,
  newSerial,
  openCaStore,
  storePath,
  STORE_FILES,
  updateIndex,
  validateSettings,
  writeIndex,
  type CaSettings,
} from './store.ts'

const DEFAULT_ROOT_VALIDITY_DAYS = 3650
const DEFAULT_INTERMEDIATE_VALIDITY_DAYS = 1825
const DEFAULT_ISSUED_VALIDITY_DAYS = 365

export interface InitCaOptions {
  readonly dir: string
  readonly subject: string
  readonly keyType?: KeyType
  readonly validityDays?: number
  readonly ocspUrl?: string
  readonly crlUrl?: string
  /** Store of the issuing CA: makes this an intermediate. */
  readonly parentDir?: string
  /** basicConstraints pathLenConstraint; default none for a root, 0 for an intermediate. */
  readonly pathLength?: number
  readonly issuedValidityDays?: number
  /** Also create a delegated OCSP responder certificate. */
  readonly responderCert?: boolean
  readonly now: number
}

export interface InitCaResult {
  readonly dir: string
  readonly serial: string
  readonly certPem: string
  readonly subject: string
  readonly notAfter: Date
  readonly parentDir: string | undefined
}

function assertEmptyTarget(dir: string): void {
  if (existsSync(join(dir, STORE_FILES.settings))) throw new CaError(`${dir}: already holds a CA (${STORE_FILES.settings} exists)`)
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new CaError(`${dir}: directory is not empty; give a new or empty directory`)
}

export async function initCa(options: InitCaOptions): Promise<InitCaResult> {
  const dir = resolve(options.dir)
  const keyType = options.keyType ?? 'ec-p256'
  const parent = options.parentDir === undefined ? undefined : openCaStore(options.parentDir)
  if (parent && parent.dir === dir) throw new CaError(`--parent: ${parent.dir} is the directory being created`)
  const validityDays = options.validityDays ?? (parent ? DEFAULT_INTERMEDIATE_VALIDITY_DAYS : DEFAULT_ROOT_VALIDITY_DAYS)
  const subject = parseSubject(options.subject, '--subject')
  const settings = validateSettings(
    {
      version: 1,
      subject: subject.toString(),
      keyType,
      ...(options.ocspUrl !== undefined && { ocspUrl: options.ocspUrl }),
      ...(options.crlUrl !== undefined && { crlUrl: options.crlUrl }),
      issuedValidityDays: options.issuedValidityDays ?? DEFAULT_ISSUED_VALIDITY_DAYS,
      ...(parent && { parentDir: parent.dir }),
      createdAt: new Date(options.now).toISOString(),
    } satisfies CaSettings,
    '--ocsp-url/--crl-url',
  )
  const notBefore = wholeSeconds(options.now - BACKDATE_MS)
  const notAfter = wholeSeconds(options.now + validityDays * DAY_MS)
  let pathLength = options.pathLength ?? (parent ? 0 : undefined)
  if (parent) {
    const parentPathLength = parent.cert.getExtension(x509.BasicConstraintsExtension)?.pathLength
    if (parentPathLength === 0) throw new CaError(`--parent: ${parent.path('cert')} has pathLenConstraint 0 and cannot issue another CA`)
    if (parentPathLength !== undefined && pathLength !== undefined && pathLength >= parentPathLength) pathLength = parentPathLength - 1
    if (notAfter > parent.nodeCert.validToDate) {
      throw new CaError(`--validity-days: ${validityDays} days would outlive the parent CA (valid until ${parent.nodeCert.validToDate.toISOString()})`)
    }
  }
  assertEmptyTarget(dir)

  const keys = await generateKeyPair(keyType)
  const ownKey = await toSigningKey(keys.privateKey, 'generated key')
  const serial = newSerial()
  const publicKeySpki = spkiDer(keys.publicKey)
  let issuer: IssuerInfo | undefined
  if (parent) {
    issuer = {
      name: parent.cert.subjectName,
      signingKey: await loadCaSigningKey(parent),
      keyIdentifier: await caKeyIdentifier(parent),
      ocspUrl: parent.settings.ocspUrl,
      crlUrl: parent.settings.crlUrl,
    }
  }
  const cert = await buildCertificate({
    serial,
    subject,
    publicKeySpki,
    notBefore,
    notAfter,
    profile: { kind: 'ca', pathLength },
    issuer,
    selfSigningKey: ownKey,
  })
  const certPem = cert.toString('pem') + '\n'

  const created = !existsSync(dir)
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    mkdirSync(storePath(dir, 'issued'), { mode: 0o755 })
    writeNewFile(storePath(dir, 'key'), privateKeyPem(keys.privateKey), PRIVATE_FILE_MODE)
    writeFileAtomic(storePath(dir, 'cert'), certPem)
    const parentChain = parent ? (existsSync(parent.path('chain')) ? readTextFile(parent.path('chain'), 'the parent chain') : parent.certPem) : ''
    writeFileAtomic(storePath(dir, 'chain'), certPem + parentChain)
    writeIndex({ path: (file) => storePath(dir, file) }, emptyIndex())
    if (parent) {
      await updateIndex(parent, (index) => {
        writeFileAtomic(issuedCertPath(parent, serial), certPem)
        index.certificates.push({
          serial,
          subject: subject.toString(),
          kind: 'ca',
          notBefore: notBefore.toISOString(),
          notAfter: notAfter.toISOString(),
          keySha256: keySha256(keys.publicKey),
          status: 'good',
        })
      })
    }
    // ca.json last: its presence marks a complete store.
    writeFileAtomic(storePath(dir, 'settings'), JSON.stringify(settings, null, 2) + '\n')
  } catch (error) {
    if (created) rmSync(dir, { recursive: true, force: true })
    throw error
  }
  // The CA is complete at this point; a failure here leaves it usable without a responder certificate.
  if (options.responderCert) await createResponderCert({ dir, now: options.now })
  return { dir, serial, certPem, subject: subject.toString(), notAfter, parentDir: parent?.dir }
}
