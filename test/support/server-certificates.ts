// Server certificates for rotation and stapling tests: a fresh one from the development PKI's
// intermediate (a rotation: same CA, new serial and key), and one from a partner CA store
// (src/ca) recorded in its index, so the built-in OCSP responder answers for it.
import { X509Certificate as NodeX509, createPrivateKey } from 'node:crypto'
import { generateKeyPair, keySha256, privateKeyPem, spkiDer, toSigningKey, type SigningKey } from '../../src/ca/keys.ts'
import { caKeyIdentifier, loadCaSigningKey, newSerial, openCaStore, updateIndex } from '../../src/ca/store.ts'
import { x509 } from '../../src/ca/x509.ts'
import type { DevPki, Issued } from '../../dev/pki.ts'

const DAY_MS = 24 * 60 * 60 * 1000

export interface ServerCertificateOptions {
  readonly notAfter?: Date
  readonly ocspUrl?: string
  readonly subject?: string
}

interface Signer {
  readonly name: string
  readonly signingKey: SigningKey
  readonly keyIdentifier: string
}

async function serverCertificate(signer: Signer, serial: string, options: ServerCertificateOptions): Promise<Issued> {
  const keys = await generateKeyPair('ec-p256')
  const publicKeySpki = spkiDer(keys.publicKey)
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
    new x509.SubjectAlternativeNameExtension(
      [
        { type: 'dns', value: 'localhost' },
        { type: 'ip', value: '127.0.0.1' },
      ],
      false,
    ),
    await x509.SubjectKeyIdentifierExtension.create(publicKeySpki),
    new x509.AuthorityKeyIdentifierExtension(signer.keyIdentifier, false),
  ]
  if (options.ocspUrl) extensions.push(new x509.AuthorityInfoAccessExtension({ ocsp: [options.ocspUrl] }, false))
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: options.subject ?? 'CN=localhost',
    issuer: signer.name,
    notBefore: new Date(Date.now() - DAY_MS),
    notAfter: options.notAfter ?? new Date(Date.now() + 90 * DAY_MS),
    publicKey: publicKeySpki,
    signingKey: signer.signingKey.cryptoKey,
    signingAlgorithm: signer.signingKey.signingAlgorithm,
    extensions,
  })
  const certPem = cert.toString('pem') + '\n'
  const keyPem = privateKeyPem(keys.privateKey)
  return { certPem, keyPem, cert: new NodeX509(certPem), key: createPrivateKey(keyPem) }
}

function keyIdentifierOf(cert: NodeX509): string {
  return new x509.X509Certificate(cert.raw).getExtension(x509.SubjectKeyIdentifierExtension)!.keyId
}

/** A new server certificate for localhost/127.0.0.1 from the development intermediate. */
export async function issueDevServerCertificate(pki: DevPki, options: ServerCertificateOptions = {}): Promise<Issued> {
  const signingKey = await toSigningKey(pki.intermediate.key, 'dev intermediate')
  return serverCertificate(
    { name: new x509.X509Certificate(pki.intermediate.cert.raw).subject, signingKey, keyIdentifier: keyIdentifierOf(pki.intermediate.cert) },
    newSerial(),
    options,
  )
}

/** A server certificate from the partner CA in `dir`, with its OCSP URL, recorded as good in the CA's index. */
export async function issueServerCertificateFromCaStore(dir: string, options: ServerCertificateOptions = {}): Promise<Issued & { readonly serial: string }> {
  const store = openCaStore(dir)
  const signingKey = await loadCaSigningKey(store)
  const serial = newSerial()
  const issued = await serverCertificate({ name: store.cert.subjectName.toString(), signingKey, keyIdentifier: await caKeyIdentifier(store) }, serial, {
    ocspUrl: store.settings.ocspUrl,
    ...options,
  })
  await updateIndex(store, (index) => {
    index.certificates.push({
      serial,
      subject: options.subject ?? 'CN=localhost',
      kind: 'partner',
      notBefore: issued.cert.validFromDate.toISOString(),
      notAfter: issued.cert.validToDate.toISOString(),
      keySha256: keySha256(issued.cert.publicKey),
      status: 'good',
    })
  })
  return { ...issued, serial }
}
