// A development PKI made with @peculiar/x509: root and intermediate CA, a server
// certificate for localhost, and partner client certificates, good and bad.
// Used by `npm run certs`, the demo and the tests. Never for production.
import { webcrypto, X509Certificate as NodeX509, createPrivateKey, type KeyObject } from 'node:crypto'
import { mkdirSync, writeFileSync, chmodSync, existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'

x509.cryptoProvider.set(webcrypto as never)

const ecdsa = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const
const DAY = 24 * 60 * 60 * 1000

export interface Issued {
  readonly certPem: string
  readonly keyPem: string
  readonly cert: NodeX509
  readonly key: KeyObject
}

export interface DevPki {
  readonly root: Issued
  readonly intermediate: Issued
  readonly server: Issued
  /** Signed by the intermediate, clientAuth EKU. */
  readonly partnerA: Issued
  readonly partnerB: Issued
  readonly expired: Issued
  readonly weakRsa: Issued
  readonly serverAuthOnly: Issued
  /** A client certificate from a CA the gateway does not trust. */
  readonly untrusted: Issued
  readonly untrustedRoot: Issued
}

type CertKeyAlgorithm = { name: 'ECDSA' } | { name: 'RSASSA-PKCS1-v1_5'; modulusLength: number }

async function generateKeys(algorithm: CertKeyAlgorithm): Promise<webcrypto.CryptoKeyPair> {
  const params =
    algorithm.name === 'ECDSA'
      ? ecdsa
      : { name: 'RSASSA-PKCS1-v1_5', modulusLength: algorithm.modulusLength, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }
  return (await webcrypto.subtle.generateKey(params, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
}

async function toIssued(cert: x509.X509Certificate, keys: webcrypto.CryptoKeyPair): Promise<Issued> {
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)
  const keyPem = x509.PemConverter.encode(pkcs8, 'PRIVATE KEY')
  const certPem = cert.toString('pem')
  return { certPem, keyPem, cert: new NodeX509(certPem), key: createPrivateKey(keyPem) }
}

interface IssueOptions {
  readonly subject: string
  readonly issuer: { cert: x509.X509Certificate; keys: webcrypto.CryptoKeyPair } | undefined
  readonly ca?: boolean
  readonly eku?: string[]
  readonly san?: x509.JsonGeneralName[]
  readonly notBefore?: Date
  readonly notAfter?: Date
  readonly keyAlgorithm?: CertKeyAlgorithm
}

async function issue(options: IssueOptions): Promise<{ cert: x509.X509Certificate; keys: webcrypto.CryptoKeyPair }> {
  const keys = await generateKeys(options.keyAlgorithm ?? { name: 'ECDSA' })
  const now = Date.now()
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(options.ca ?? false, undefined, true),
    new x509.KeyUsagesExtension(
      options.ca ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign : x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
      true,
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ]
  if (options.eku) extensions.push(new x509.ExtendedKeyUsageExtension(options.eku, false))
  if (options.san) extensions.push(new x509.SubjectAlternativeNameExtension(options.san, false))
  const signer = options.issuer ?? { cert: undefined, keys }
  if (signer.cert) extensions.push(await x509.AuthorityKeyIdentifierExtension.create(signer.cert.publicKey))
  const signingAlgorithm = signer.keys.privateKey.algorithm.name === 'ECDSA' ? ecdsa : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
      .toString('hex')
      .replace(/^[89a-f]/, '1'),
    subject: options.subject,
    issuer: signer.cert ? signer.cert.subject : options.subject,
    notBefore: options.notBefore ?? new Date(now - DAY),
    notAfter: options.notAfter ?? new Date(now + 365 * DAY),
    publicKey: keys.publicKey,
    signingKey: signer.keys.privateKey,
    signingAlgorithm,
    extensions,
  })
  return { cert, keys }
}

const clientAuth = [x509.ExtendedKeyUsage.clientAuth]

export async function createDevPki(): Promise<DevPki> {
  const root = await issue({
    subject: 'CN=fapi-gateway Dev Root CA, O=fapi-gateway dev',
    issuer: undefined,
    ca: true,
    notAfter: new Date(Date.now() + 3650 * DAY),
  })
  const intermediate = await issue({ subject: 'CN=fapi-gateway Dev Partner CA, O=fapi-gateway dev', issuer: root, ca: true })
  const server = await issue({
    subject: 'CN=localhost',
    issuer: intermediate,
    eku: [x509.ExtendedKeyUsage.serverAuth],
    san: [
      { type: 'dns', value: 'localhost' },
      { type: 'ip', value: '127.0.0.1' },
    ],
  })
  const client = (cn: string, extra: Partial<IssueOptions> = {}) => issue({ subject: `CN=${cn}, O=Partner`, issuer: intermediate, eku: clientAuth, ...extra })
  const partnerA = await client('partner-a')
  const partnerB = await client('partner-b')
  const expired = await client('partner-expired', { notBefore: new Date(Date.now() - 30 * DAY), notAfter: new Date(Date.now() - DAY) })
  const weakRsa = await client('partner-weak-rsa', { keyAlgorithm: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024 } })
  const serverAuthOnly = await client('partner-server-auth-only', { eku: [x509.ExtendedKeyUsage.serverAuth] })
  const untrustedRoot = await issue({ subject: 'CN=Untrusted Root CA', issuer: undefined, ca: true })
  const untrusted = await issue({ subject: 'CN=partner-a, O=Partner', issuer: untrustedRoot, eku: clientAuth })

  return {
    root: await toIssued(root.cert, root.keys),
    intermediate: await toIssued(intermediate.cert, intermediate.keys),
    server: await toIssued(server.cert, server.keys),
    partnerA: await toIssued(partnerA.cert, partnerA.keys),
    partnerB: await toIssued(partnerB.cert, partnerB.keys),
    expired: await toIssued(expired.cert, expired.keys),
    weakRsa: await toIssued(weakRsa.cert, weakRsa.keys),
    serverAuthOnly: await toIssued(serverAuthOnly.cert, serverAuthOnly.keys),
    untrusted: await toIssued(untrusted.cert, untrusted.keys),
    untrustedRoot: await toIssued(untrustedRoot.cert, untrustedRoot.keys),
  }
}

/** Chain a client presents: its own certificate followed by the intermediate. */
export function chainPem(leaf: Issued, ...issuers: Issued[]): string {
  return [leaf, ...issuers].map((c) => c.certPem.trimEnd() + '\n').join('')
}

const PKI_NAMES = ['root', 'intermediate', 'server', 'partnerA', 'partnerB', 'expired', 'weakRsa', 'serverAuthOnly', 'untrusted', 'untrustedRoot'] as const

/** The PKI writeDevPki left in dir, or undefined when a file is missing (so that a configuration using it keeps working). */
export function readDevPki(dir: string): DevPki | undefined {
  const files = PKI_NAMES.flatMap((name) => [join(dir, `${name}.crt`), join(dir, `${name}.key`)])
  if (!files.every((file) => existsSync(file))) return undefined
  const read = (name: string): Issued => {
    const certPem = readFileSync(join(dir, `${name}.crt`), 'utf8')
    const keyPem = readFileSync(join(dir, `${name}.key`), 'utf8')
    return { certPem, keyPem, cert: new NodeX509(certPem), key: createPrivateKey(keyPem) }
  }
  return Object.fromEntries(PKI_NAMES.map((name) => [name, read(name)])) as unknown as DevPki
}

/** Writes the PKI as PEM files; private keys are readable by the owner only. */
export function writeDevPki(pki: DevPki, dir: string): void {
  mkdirSync(dir, { recursive: true })
  for (const [name, issued] of Object.entries(pki) as [string, Issued][]) {
    writeFileSync(join(dir, `${name}.crt`), issued.certPem)
    const keyPath = join(dir, `${name}.key`)
    writeFileSync(keyPath, issued.keyPem, { mode: 0o600 })
    chmodSync(keyPath, 0o600)
  }
  writeFileSync(join(dir, 'server-chain.crt'), chainPem(pki.server, pki.intermediate))
  writeFileSync(join(dir, 'client-ca.crt'), pki.root.certPem)
  writeFileSync(join(dir, 'client-intermediates.crt'), pki.intermediate.certPem)
}
