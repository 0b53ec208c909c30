// `ca responder-cert`: a delegated OCSP responder certificate (RFC 6960 §4.2.2.2), so the
// OCSP listener can sign without the CA key. Replaces the previous one (rotation).
import { join } from 'node:path'
import { mkdirSync } from 'node:fs'
import { DAY_MS } from './build-certificate.ts'
import { PRIVATE_FILE_MODE, writeFileAtomic } from './files.ts'
import { checkValidityDays, signForStore } from './issue.ts'
import { generateKeyPair, privateKeyPem, type KeyType } from './keys.ts'
import { openCaStore, STORE_FILES } from './store.ts'
import { x509 } from './x509.ts'

const DEFAULT_RESPONDER_VALIDITY_DAYS = 90

export interface ResponderCertOptions {
  readonly dir: string
  /** Default 90 days, or less when the CA expires sooner. */
  readonly validityDays?: number
  readonly keyType?: KeyType
  readonly now: number
}

export interface ResponderCert {
  readonly serial: string
  readonly certFile: string
  readonly keyFile: string
  readonly notAfter: Date
}

export async function createResponderCert(options: ResponderCertOptions): Promise<ResponderCert> {
  const store = openCaStore(options.dir)
  const remainingDays = Math.floor((store.nodeCert.validToDate.getTime() - options.now) / DAY_MS)
  const validityDays =
    options.validityDays === undefined
      ? Math.max(1, Math.min(DEFAULT_RESPONDER_VALIDITY_DAYS, remainingDays))
      : checkValidityDays(options.validityDays, '--validity-days')
  const caCommonName = store.cert.subjectName.getField('CN')[0] ?? 'CA'
  const subject = new x509.Name([{ CN: [`${caCommonName} OCSP Responder`] }])
  const keys = await generateKeyPair(options.keyType ?? store.settings.keyType)
  const signed = await signForStore(store, {
    subject,
    publicKey: keys.publicKey,
    validityDays,
    profile: { kind: 'ocsp-responder' },
    kind: 'ocsp-responder',
    now: options.now,
    source: 'responder key',
  })
  mkdirSync(join(store.dir, STORE_FILES.responderDir), { recursive: true, mode: 0o700 })
  // Key first, certificate last: the responder reloads when the certificate changes.
  writeFileAtomic(store.path('responderKey'), privateKeyPem(keys.privateKey), PRIVATE_FILE_MODE)
  writeFileAtomic(store.path('responderCert'), signed.certPem)
  return { serial: signed.serial, certFile: store.path('responderCert'), keyFile: store.path('responderKey'), notAfter: signed.notAfter }
}
