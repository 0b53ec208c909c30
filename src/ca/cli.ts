// `fapi-gateway ca <command>`: the partner CA's command line. Every command is also an
// exported function (init.ts, issue.ts, ...); this file only parses flags and prints.
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { CaError } from './ca-error.ts'
import { publishCrl } from './crl.ts'
import { initCa } from './init.ts'
import { issueCertificate } from './issue.ts'
import { parseKeyType } from './keys.ts'
import { formatListing, listCertificates } from './list.ts'
import { startOcspResponder, type SignerChoice } from './ocsp-responder.ts'
import { createResponderCert } from './responder-cert.ts'
import { revokeCertificate } from './revoke.ts'
import { parseRevocationReason, REVOCATION_REASONS } from './store.ts'

export const CA_USAGE = `usage: fapi-gateway ca <command> [flags]

  init --dir D --subject "CN=..." [--key-type ec-p256|ec-p384|rsa-2048|rsa-3072] [--validity-days N]
       [--ocsp-url URL] [--crl-url URL] [--issued-validity-days N] [--path-length N] [--responder-cert]
                                  create a root CA in the new directory D
  init --dir D --parent P --subject "CN=..." [same flags]
                                  create an intermediate CA issued by the CA in P
  issue --dir D --csr FILE --out CERT [--subject "CN=..."] [--validity-days N]
  issue --dir D --subject "CN=..." --out-key KEY --out CERT [--key-type T] [--validity-days N]
                                  issue a partner (TLS client) certificate
  list --dir D [--json]           issued certificates, expiry and status
  revoke --dir D --serial S [--reason ${Object.keys(REVOCATION_REASONS).join('|')}]
  crl --dir D --out FILE [--next-update-hours N] [--format pem|der]
                                  publish a signed CRL (also kept as D/crl.pem)
  responder-cert --dir D [--validity-days N] [--key-type T]
                                  (re)create the delegated OCSP responder certificate
  ocsp-responder --dir D --port N [--host 127.0.0.1] [--signer auto|ca|responder] [--next-update-seconds N]
                                  answer OCSP requests (RFC 6960) until SIGTERM/SIGINT`

export interface CaCliIo {
  readonly out: (line: string) => void
  readonly err: (line: string) => void
  readonly now: () => number
  /** Resolves when a long-running command (ocsp-responder) should stop. */
  readonly untilStopped: () => Promise<void>
}

const defaultIo: CaCliIo = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
  now: () => Date.now(),
  untilStopped: () =>
    new Promise((resolve) => {
      process.once('SIGTERM', () => resolve())
      process.once('SIGINT', () => resolve())
    }),
}

type Options = NonNullable<ParseArgsConfig['options']>
const dir = { dir: { type: 'string' } } satisfies Options
const COMMAND_OPTIONS = {
  init: {
    ...dir,
    subject: { type: 'string' },
    'key-type': { type: 'string' },
    'validity-days': { type: 'string' },
    'ocsp-url': { type: 'string' },
    'crl-url': { type: 'string' },
    parent: { type: 'string' },
    'issued-validity-days': { type: 'string' },
    'path-length': { type: 'string' },
    'responder-cert': { type: 'boolean' },
  },
  issue: {
    ...dir,
    csr: { type: 'string' },
    subject: { type: 'string' },
    'out-key': { type: 'string' },
    out: { type: 'string' },
    'validity-days': { type: 'string' },
    'key-type': { type: 'string' },
  },
  list: { ...dir, json: { type: 'boolean' } },
  revoke: { ...dir, serial: { type: 'string' }, reason: { type: 'string' } },
  crl: { ...dir, out: { type: 'string' }, 'next-update-hours': { type: 'string' }, format: { type: 'string' } },
  'responder-cert': { ...dir, 'validity-days': { type: 'string' }, 'key-type': { type: 'string' } },
  'ocsp-responder': { ...dir, port: { type: 'string' }, host: { type: 'string' }, signer: { type: 'string' }, 'next-update-seconds': { type: 'string' } },
} satisfies Record<string, Options>
type Command = keyof typeof COMMAND_OPTIONS

class UsageError extends Error {}

function required(values: Record<string, unknown>, name: string): string {
  const value = values[name]
  if (typeof value !== 'string' || value === '') throw new UsageError(`--${name} is required`)
  return value
}

function optionalString(values: Record<string, unknown>, name: string): string | undefined {
  const value = values[name]
  return typeof value === 'string' ? value : undefined
}

function wholeNumber(values: Record<string, unknown>, name: string): number | undefined {
  const value = optionalString(values, name)
  if (value === undefined) return undefined
  if (!/^\d+$/.test(value)) throw new CaError(`--${name}: "${value}" is not a whole number`)
  return Number(value)
}

function positiveNumber(values: Record<string, unknown>, name: string): number | undefined {
  const value = optionalString(values, name)
  if (value === undefined) return undefined
  const number = Number(value)
  if (value.trim() === '' || !Number.isFinite(number) || number <= 0) throw new CaError(`--${name}: "${value}" is not a positive number`)
  return number
}

function oneOf<T extends string>(values: Record<string, unknown>, name: string, allowed: readonly T[]): T | undefined {
  const value = optionalString(values, name)
  if (value === undefined) return undefined
  if (!(allowed as readonly string[]).includes(value)) throw new CaError(`--${name}: "${value}" is not one of ${allowed.join(', ')}`)
  return value as T
}

async function run(command: Command, values: Record<string, unknown>, io: CaCliIo): Promise<number> {
  const keyTypeFlag = optionalString(values, 'key-type')
  const keyType = keyTypeFlag === undefined ? undefined : parseKeyType(keyTypeFlag, '--key-type')
  switch (command) {
    case 'init': {
      const result = await initCa({
        dir: required(values, 'dir'),
        subject: required(values, 'subject'),
        keyType,
        validityDays: wholeNumber(values, 'validity-days'),
        ocspUrl: optionalString(values, 'ocsp-url'),
        crlUrl: optionalString(values, 'crl-url'),
        parentDir: optionalString(values, 'parent'),
        issuedValidityDays: wholeNumber(values, 'issued-validity-days'),
        pathLength: wholeNumber(values, 'path-length'),
        responderCert: values['responder-cert'] === true,
        now: io.now(),
      })
      io.out(
        `${result.parentDir ? 'intermediate' : 'root'} CA "${result.subject}" created in ${result.dir} (serial ${result.serial}, valid until ${result.notAfter.toISOString()})`,
      )
      return 0
    }
    case 'issue': {
      const out = required(values, 'out')
      const csr = optionalString(values, 'csr')
      const outKey = optionalString(values, 'out-key')
      if (csr === undefined && outKey === undefined) throw new UsageError('give --csr FILE, or --subject and --out-key to generate a key pair')
      const issued = await issueCertificate({
        dir: required(values, 'dir'),
        csrFile: csr,
        subject: optionalString(values, 'subject'),
        outKeyFile: outKey,
        outFile: out,
        validityDays: wholeNumber(values, 'validity-days'),
        keyType,
        now: io.now(),
      })
      io.out(`issued serial ${issued.serial} to "${issued.subject}", valid until ${issued.notAfter.toISOString()}: ${out}${outKey ? ` (key ${outKey})` : ''}`)
      return 0
    }
    case 'list': {
      const rows = listCertificates({ dir: required(values, 'dir'), now: io.now() })
      io.out(values.json === true ? JSON.stringify(rows, null, 2) : formatListing(rows))
      return 0
    }
    case 'revoke': {
      const reason = optionalString(values, 'reason')
      const record = await revokeCertificate({
        dir: required(values, 'dir'),
        serial: required(values, 'serial'),
        reason: reason === undefined ? undefined : parseRevocationReason(reason, '--reason'),
        now: io.now(),
      })
      io.out(`revoked serial ${record.serial} ("${record.subject}") at ${record.revokedAt} (${record.reason}); publish a new CRL with \`ca crl\``)
      return 0
    }
    case 'crl': {
      const out = required(values, 'out')
      const crl = await publishCrl({
        dir: required(values, 'dir'),
        outFile: out,
        format: oneOf(values, 'format', ['pem', 'der'] as const),
        nextUpdateHours: positiveNumber(values, 'next-update-hours'),
        now: io.now(),
      })
      io.out(`CRL number ${crl.crlNumber} with ${crl.revokedCount} revoked certificate(s), next update ${crl.nextUpdate.toISOString()}: ${out}`)
      return 0
    }
    case 'responder-cert': {
      const created = await createResponderCert({ dir: required(values, 'dir'), validityDays: wholeNumber(values, 'validity-days'), keyType, now: io.now() })
      io.out(`OCSP responder certificate serial ${created.serial}, valid until ${created.notAfter.toISOString()}: ${created.certFile} (key ${created.keyFile})`)
      return 0
    }
    case 'ocsp-responder': {
      const port = wholeNumber(values, 'port')
      if (port === undefined) throw new UsageError('--port is required (0 picks a free port)')
      if (port > 65535) throw new CaError(`--port: ${port} is not a TCP port`)
      const responder = await startOcspResponder({
        dir: required(values, 'dir'),
        port,
        host: optionalString(values, 'host'),
        signer: oneOf<SignerChoice>(values, 'signer', ['auto', 'ca', 'responder']),
        nextUpdateSeconds: wholeNumber(values, 'next-update-seconds'),
        log: (entry) => io.out(JSON.stringify({ time: new Date(io.now()).toISOString(), ...entry })),
      })
      io.out(`OCSP responder listening on ${responder.url} (signed by the ${responder.signer === 'ca' ? 'CA key' : 'delegated responder certificate'})`)
      await io.untilStopped()
      await responder.close()
      return 0
    }
    default:
      throw new UsageError(`unknown command`)
  }
}

/** Runs `ca <command> ...`; returns the exit status (0 ok, 1 refused or failed, 2 usage). */
export async function runCaCli(argv: readonly string[], io: CaCliIo = defaultIo): Promise<number> {
  const [command, ...rest] = argv
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    io.out(CA_USAGE)
    return command === undefined ? 2 : 0
  }
  if (!Object.hasOwn(COMMAND_OPTIONS, command)) {
    io.err(`fapi-gateway ca: unknown command "${command}"\n${CA_USAGE}`)
    return 2
  }
  try {
    const { values, positionals } = parseArgs({ args: [...rest], options: COMMAND_OPTIONS[command as Command], strict: true, allowPositionals: true })
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`)
    return await run(command as Command, values, io)
  } catch (error) {
    if (error instanceof UsageError || (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`fapi-gateway ca ${command}: ${(error as Error).message}\n${CA_USAGE}`)
      return 2
    }
    if (error instanceof CaError) {
      io.err(`fapi-gateway ca ${command}: ${error.message}`)
      return 1
    }
    throw error
  }
}
