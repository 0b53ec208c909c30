// `ca issue`: a partner (TLS client) certificate from a CSR or from a key pair generated
// here, recorded in the store's index.
import type { KeyObject } from 'node:crypto'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { resolve } from 'node:path'
import { BACKDATE_MS, DAY_MS, buildCertificate, parseSubject, wholeSeconds, type CertificateProfile } from './build-certificate.ts'
import { CaError } from './ca-error.ts'
import { PRIVATE_FILE_MODE, writeFileAtomic, writeNewFile } from './files.ts'
import { generateKeyPair, keySha256, keyStrengthProblem, privateKeyPem, publicKeyFromSpki, spkiDer, type KeyType } from './keys.ts'
import { caKeyIdentifier, issuedCertPath, loadCaSigningKey, newSerial, openCaStore, updateIndex, type CaStore, type IssuedRecord } from './store.ts'
import { x509 } from './x509.ts'

const MAX_VALIDITY_DAYS = 36500

export interface IssueCertificateOptions {
  readonly dir: string
  /** PEM or DER PKCS#10 request; its extensions are ignored, the profile is the CA's. */
  readonly csrFile?: string
  /** Overrides the CSR's subject; required without a CSR. */
  readonly subject?: string
  /** Without a CSR: where the generated private key goes (created with mode 0600, never overwritten). */
  readonly outKeyFile?: string
  readonly outFile?: string
  readonly validityDays?: number
  /** Without a CSR: the key to generate (default ec-p256). */
  readonly keyType?: KeyType
  readonly now: number
}

export interface IssuedCertificate {
  readonly serial: string
  readonly subject: string
  readonly certPem: string
  readonly notBefore: Date
  readonly notAfter: Date
  /** The generated private key (PKCS#8 PEM), when no CSR was given. */
  readonly keyPem: string | undefined
}

export function checkValidityDays(days: number, source: string): number {
  if (!Number.isInteger(days) || days <= 0 || days > MAX_VALIDITY_DAYS)
    throw new CaError(`${source}: must be a whole number of days between 1 and ${MAX_VALIDITY_DAYS}, not ${days}`)
  return days
}

export interface SignRequest {
  readonly subject: x509.Name
  readonly publicKey: KeyObject
  readonly validityDays: number
  readonly profile: CertificateProfile
  readonly kind: IssuedRecord['kind']
  readonly now: number
  /** Names the input in error messages. */
  readonly source: string
}

export interface SignedCertificate {
  readonly serial: string
  readonly certPem: string
  readonly notBefore: Date
  readonly notAfter: Date
}

/** Signs a certificate with the store's CA key and records it in the index. */
export async function signForStore(store: CaStore, request: SignRequest): Promise<SignedCertificate> {
  const problem = keyStrengthProblem(request.publicKey)
  if (problem) throw new CaError(`${request.source}: ${problem}`)
  checkValidityDays(request.validityDays, '--validity-days')
  const caNotAfter = store.nodeCert.validToDate
  if (request.now > caNotAfter.getTime()) throw new CaError(`${store.path('cert')}: the CA expired on ${caNotAfter.toISOString()}`)
  const notBefore = wholeSeconds(request.now - BACKDATE_MS)
  const notAfter = wholeSeconds(request.now + request.validityDays * DAY_MS)
  if (notAfter > caNotAfter) {
    const maxDays = Math.floor((caNotAfter.getTime() - request.now) / DAY_MS)
    throw new CaError(`--validity-days: ${request.validityDays} days would outlive the CA (valid until ${caNotAfter.toISOString()}); use at most ${maxDays}`)
  }
  const signingKey = await loadCaSigningKey(store)
  const keyHash = keySha256(request.publicKey)
  if (keyHash === keySha256(signingKey.publicKey)) throw new CaError(`${request.source}: the key is the CA's own key`)
  const issuer = {
    name: store.cert.subjectName,
    signingKey,
    keyIdentifier: await caKeyIdentifier(store),
    ocspUrl: store.settings.ocspUrl,
    crlUrl: store.settings.crlUrl,
  }
  return updateIndex(store, async (index) => {
    const compromised = index.certificates.find((record) => record.keySha256 === keyHash && record.status === 'revoked' && record.reason === 'keyCompromise')
    if (compromised)
      throw new CaError(
        `${request.source}: this key was reported compromised (certificate ${compromised.serial} revoked for keyCompromise); generate a new key`,
      )
    let serial = newSerial()
    while (index.certificates.some((record) => record.serial === serial)) serial = newSerial()
    const cert = await buildCertificate({
      serial,
      subject: request.subject,
      publicKeySpki: spkiDer(request.publicKey),
      notBefore,
      notAfter,
      profile: request.profile,
      issuer,
    })
    const certPem = cert.toString('pem') + '\n'
    writeFileAtomic(issuedCertPath(store, serial), certPem)
    index.certificates.push({
      serial,
      subject: request.subject.toString(),
      kind: request.kind,
      notBefore: notBefore.toISOString(),
      notAfter: notAfter.toISOString(),
      keySha256: keyHash,
      status: 'good',
    })
    return { serial, certPem, notBefore, notAfter }
  })
}

/** Parses a PEM or DER CSR and checks its self-signature (RFC 2986 §3) and key strength. */
export async function readCertificateRequest(file: string): Promise<{ subject: x509.Name; publicKey: KeyObject }> {
  let raw: Buffer
  try {
    raw = readFileSync(file)
  } catch (error) {
    throw new CaError(`--csr ${file}: cannot read (${(error as NodeJS.ErrnoException).code ?? String(error)})`)
  }
  let csr: x509.Pkcs10CertificateRequest
  try {
    const text = raw.toString('latin1')
    csr = new x509.Pkcs10CertificateRequest(text.includes('-----BEGIN') ? text : raw)
  } catch (error) {
    throw new CaError(`--csr ${file}: not a PKCS#10 certificate request (${error instanceof Error ? error.message : String(error)})`)
  }
  let signatureValid: boolean
  try {
    signatureValid = await csr.verify()
  } catch (error) {
    throw new CaError(`--csr ${file}: the request's signature cannot be checked (${error instanceof Error ? error.message : String(error)})`)
  }
  if (!signatureValid) throw new CaError(`--csr ${file}: the request's signature is invalid (not signed by the key it carries)`)
  const publicKey = publicKeyFromSpki(new Uint8Array(csr.publicKey.rawData))
  const problem = keyStrengthProblem(publicKey)
  if (problem) throw new CaError(`--csr ${file}: ${problem}`)
  return { subject: csr.subjectName, publicKey }
}

export async function issueCertificate(options: IssueCertificateOptions): Promise<IssuedCertificate> {
  const store = openCaStore(options.dir)
  const validityDays = options.validityDays ?? store.settings.issuedValidityDays
  checkValidityDays(validityDays, '--validity-days')
  let subject: x509.Name
  let publicKey: KeyObject
  let keyPem: string | undefined
  let keyFile: string | undefined
  if (options.csrFile !== undefined) {
    if (options.outKeyFile !== undefined || options.keyType !== undefined)
      throw new CaError("--out-key and --key-type apply only without --csr (the key is the requester's)")
    const request = await readCertificateRequest(options.csrFile)
    subject = options.subject !== undefined ? parseSubject(options.subject, '--subject') : request.subject
    if (subject.toJSON().length === 0) throw new CaError(`--csr ${options.csrFile}: the request has an empty subject; give --subject`)
    publicKey = request.publicKey
  } else {
    if (options.subject === undefined) throw new CaError('--subject is required without --csr')
    subject = parseSubject(options.subject, '--subject')
    if (options.outKeyFile !== undefined) {
      keyFile = resolve(options.outKeyFile)
      if (existsSync(keyFile)) throw new CaError(`--out-key ${options.outKeyFile}: already exists; refusing to overwrite a key`)
    }
    const keys = await generateKeyPair(options.keyType ?? 'ec-p256')
    publicKey = keys.publicKey
    keyPem = privateKeyPem(keys.privateKey)
    if (keyFile) writeNewFile(keyFile, keyPem, PRIVATE_FILE_MODE)
  }
  let signed: SignedCertificate
  try {
    signed = await signForStore(store, {
      subject,
      publicKey,
      validityDays,
      profile: { kind: 'partner' },
      kind: 'partner',
      now: options.now,
      source: options.csrFile ? `--csr ${options.csrFile}` : 'generated key',
    })
  } catch (error) {
    if (keyFile) rmSync(keyFile, { force: true })
    throw error
  }
  if (options.outFile !== undefined) writeFileAtomic(resolve(options.outFile), signed.certPem)
  return { ...signed, subject: subject.toString(), keyPem }
}
