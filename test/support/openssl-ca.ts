// A certificate authority run with the real OpenSSL command line: `openssl req`/`openssl ca`
// with an index.txt database, `openssl ca -revoke`, `openssl ca -gencrl` and the
// `openssl ocsp` responder process. For interoperability tests of the revocation checker.
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface OpensslIssued {
  readonly name: string
  readonly certFile: string
  readonly keyFile: string
  readonly certPem: string
  readonly keyPem: string
  /** Upper-case hex as in index.txt. */
  readonly serial: string
}

export interface OpensslOcspResponder {
  readonly url: string
  readonly port: number
  stop(): Promise<void>
}

export interface OpensslCa {
  readonly dir: string
  readonly certFile: string
  readonly certPem: string
  issue(name: string, options?: { ocspUrl?: string; crlUrl?: string; days?: number }): Promise<OpensslIssued>
  revoke(cert: OpensslIssued, reason?: string): Promise<void>
  /** Writes a CRL (PEM) to `file` (default ca.crl.pem in the CA folder) and returns the path. */
  gencrl(options?: { file?: string; hours?: number }): Promise<string>
  /**
   * Starts `openssl ocsp` on the planned port (or one the system picks), signing with a delegated
   * responder certificate. openssl re-reads index.txt only after answering the next request, so
   * restart the responder after issuing or revoking.
   */
  startOcspResponder(options?: { nextUpdateMinutes?: number }): Promise<OpensslOcspResponder>
  /** http://127.0.0.1:<plannedOcspPort>/, for AIA extensions written before the responder runs. */
  readonly ocspUrl: string
}

function config(dir: string): string {
  return `
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = ${dir}
database = ${dir}/index.txt
new_certs_dir = ${dir}/newcerts
serial = ${dir}/serial
crlnumber = ${dir}/crlnumber
certificate = ${dir}/ca.crt
private_key = ${dir}/ca.key
default_md = sha256
default_days = 30
default_crl_days = 1
policy = policy_any
unique_subject = no
copy_extensions = none
[ policy_any ]
commonName = supplied
[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = unused
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ ocsp_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`
}

function clientExtensions(section: string, ocspUrl: string | undefined, crlUrl: string | undefined): string {
  return `
[ ${section} ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
${ocspUrl ? `authorityInfoAccess = OCSP;URI:${ocspUrl}` : ''}
${crlUrl ? `crlDistributionPoints = URI:${crlUrl}` : ''}
`
}

async function newKey(keyFile: string, csrFile: string, subject: string, configFile: string): Promise<void> {
  await run('openssl', [
    'req',
    '-new',
    '-config',
    configFile,
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    csrFile,
    '-subj',
    subject,
  ])
}

export async function createOpensslCa(dir: string, options: { name: string; plannedOcspPort?: number }): Promise<OpensslCa> {
  mkdirSync(join(dir, 'newcerts'), { recursive: true })
  writeFileSync(join(dir, 'index.txt'), '')
  writeFileSync(join(dir, 'serial'), '1000\n')
  writeFileSync(join(dir, 'crlnumber'), '01\n')
  const configFile = join(dir, 'ca.cnf')
  writeFileSync(configFile, config(dir))
  const certFile = join(dir, 'ca.crt')
  await run('openssl', [
    'req',
    '-x509',
    '-config',
    configFile,
    '-extensions',
    'v3_ca',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    join(dir, 'ca.key'),
    '-out',
    certFile,
    '-subj',
    `/CN=${options.name}/O=OpenSSL Interop`,
    '-days',
    '30',
  ])

  // The delegated OCSP responder certificate (RFC 6960 §4.2.2.2).
  await newKey(join(dir, 'ocsp.key'), join(dir, 'ocsp.csr'), `/CN=${options.name} OCSP Responder`, configFile)
  await run('openssl', [
    'ca',
    '-batch',
    '-config',
    configFile,
    '-extensions',
    'ocsp_ext',
    '-notext',
    '-in',
    join(dir, 'ocsp.csr'),
    '-out',
    join(dir, 'ocsp.crt'),
  ])

  let issued = 0
  return {
    dir,
    certFile,
    certPem: readFileSync(certFile, 'utf8'),
    ocspUrl: `http://127.0.0.1:${options.plannedOcspPort ?? 0}/`,
    async issue(name, issueOptions = {}) {
      const section = `client_ext_${++issued}`
      const extFile = join(dir, `${section}.cnf`)
      writeFileSync(extFile, clientExtensions(section, issueOptions.ocspUrl, issueOptions.crlUrl))
      const keyFile = join(dir, `${name}.key`)
      const certFile = join(dir, `${name}.crt`)
      await newKey(keyFile, join(dir, `${name}.csr`), `/CN=${name}`, configFile)
      await run('openssl', [
        'ca',
        '-batch',
        '-config',
        configFile,
        '-extfile',
        extFile,
        '-extensions',
        section,
        '-notext',
        '-days',
        String(issueOptions.days ?? 30),
        '-in',
        join(dir, `${name}.csr`),
        '-out',
        certFile,
      ])
      const serial = (await run('openssl', ['x509', '-in', certFile, '-noout', '-serial'])).stdout.trim().replace(/^serial=/, '')
      return { name, certFile, keyFile, certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8'), serial }
    },
    async revoke(cert, reason = 'keyCompromise') {
      await run('openssl', ['ca', '-config', configFile, '-revoke', cert.certFile, '-crl_reason', reason])
    },
    async gencrl(crlOptions = {}) {
      const file = crlOptions.file ?? join(dir, 'ca.crl.pem')
      await run('openssl', ['ca', '-config', configFile, '-gencrl', '-out', file, ...(crlOptions.hours ? ['-crlhours', String(crlOptions.hours)] : [])])
      return file
    },
    async startOcspResponder(responderOptions = {}) {
      const port = options.plannedOcspPort ?? 0
      const child = spawn(
        'openssl',
        [
          'ocsp',
          '-index',
          join(dir, 'index.txt'),
          '-port',
          String(port),
          '-CA',
          certFile,
          '-rsigner',
          join(dir, 'ocsp.crt'),
          '-rkey',
          join(dir, 'ocsp.key'),
          '-rmd',
          'sha256',
          '-nmin',
          String(responderOptions.nextUpdateMinutes ?? 5),
          '-ignore_err',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      )
      let output = ''
      const bound = await new Promise<number>((resolve, reject) => {
        const onData = (chunk: Buffer) => {
          output += chunk.toString()
          const match = /ACCEPT .*:(\d+) PID=/.exec(output)
          if (match) resolve(Number(match[1]))
        }
        child.stdout!.on('data', onData)
        child.stderr!.on('data', onData)
        child.once('exit', (code) => reject(new Error(`openssl ocsp exited with ${code}: ${output}`)))
      })
      return {
        port: bound,
        url: `http://127.0.0.1:${bound}/`,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) {
            child.kill('SIGTERM')
            await once(child, 'exit')
          }
        },
      }
    },
  }
}
