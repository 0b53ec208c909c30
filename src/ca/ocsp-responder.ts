// `ca ocsp-responder`: the CA's OCSP responder on its own HTTP listener (RFC 6960 App. A.1:
// POST application/ocsp-request, or GET {url}/{url-encoded base64 of the request}).
// The index is re-read whenever it changes, so a `ca revoke` is answered at once.
import { X509Certificate as NodeX509 } from 'node:crypto'
import { existsSync, readFileSync, statSync, type Stats } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { CaError } from './ca-error.ts'
import {
  answerOcspRequest,
  createIssuerMatcher,
  internalErrorAnswer,
  malformedRequestAnswer,
  type CertificateStatus,
  type OcspAnswer,
  type OcspOutcome,
  type OcspSigner,
} from './ocsp.ts'
import { loadCaSigningKey, loadSigningKey, openCaStore, readIndex, type CaStore } from './store.ts'

const MAX_REQUEST_BYTES = 16 * 1024
const DEFAULT_NEXT_UPDATE_SECONDS = 600
const ID_KP_OCSP_SIGNING = '1.3.6.1.5.5.7.3.9'

export type SignerChoice = 'auto' | 'ca' | 'responder'

export interface OcspResponderOptions {
  readonly dir: string
  readonly port: number
  readonly host?: string
  /** 'auto' (default): the delegated responder certificate when the store has one, else the CA key. */
  readonly signer?: SignerChoice
  /** nextUpdate = thisUpdate + this; how long a client may cache a status (default 600). */
  readonly nextUpdateSeconds?: number
  readonly clock?: () => number
  readonly log?: (entry: OcspLogEntry) => void
}

export interface OcspLogEntry {
  readonly event: 'ocsp.request' | 'ocsp.error'
  readonly method?: string
  readonly outcome?: OcspOutcome
  readonly detail?: string
}

export interface RunningOcspResponder {
  readonly url: string
  readonly port: number
  readonly signer: 'ca' | 'responder'
  close(): Promise<void>
}

function statKey(stats: Stats): string {
  return `${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`
}

/** Re-reads a file-derived value whenever the file's inode, size or times change. */
function reloading<T>(path: string, load: () => T | Promise<T>): () => Promise<T> {
  let seen: string | undefined
  let value: T | undefined
  return async () => {
    let stats: Stats
    try {
      stats = statSync(path)
    } catch (error) {
      throw new CaError(`${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? String(error)})`)
    }
    const key = statKey(stats)
    if (key !== seen || value === undefined) {
      value = await load()
      seen = key
    }
    return value
  }
}

function statusTable(store: CaStore): Map<string, CertificateStatus> {
  const table = new Map<string, CertificateStatus>()
  for (const record of readIndex(store).certificates) {
    table.set(
      record.serial,
      record.status === 'revoked'
        ? { status: 'revoked', revokedAt: new Date(record.revokedAt ?? record.notBefore), reason: record.reason }
        : { status: 'good' },
    )
  }
  return table
}

interface LoadedSigner {
  readonly signer: OcspSigner
  /** The delegated responder certificate; undefined when the CA signs. */
  readonly delegatedCert: NodeX509 | undefined
}

async function loadDelegatedSigner(store: CaStore): Promise<LoadedSigner> {
  const certPath = store.path('responderCert')
  const cert = new NodeX509(readFileSync(certPath))
  if (!cert.checkIssued(store.nodeCert) || !cert.verify(store.nodeCert.publicKey)) throw new CaError(`${certPath}: not issued by this CA`)
  if (!(cert.keyUsage ?? []).includes(ID_KP_OCSP_SIGNING)) throw new CaError(`${certPath}: lacks the id-kp-OCSPSigning extended key usage`)
  return { signer: { signingKey: await loadSigningKey(store.path('responderKey'), cert), certDer: cert.raw, delegated: true }, delegatedCert: cert }
}

/** A delegated certificate that expired or was revoked since it was loaded must not sign. */
function checkDelegatedCert(certPath: string, cert: NodeX509, table: Map<string, CertificateStatus>, now: number): void {
  if (now < cert.validFromDate.getTime() || now > cert.validToDate.getTime())
    throw new CaError(`${certPath}: not valid now (valid ${cert.validFrom} to ${cert.validTo}); run \`ca responder-cert\``)
  const serial = cert.serialNumber.toLowerCase().replace(/^0+(?=.)/, '')
  if (table.get(serial)?.status === 'revoked') throw new CaError(`${certPath}: the responder certificate is revoked; run \`ca responder-cert\``)
}

export async function startOcspResponder(options: OcspResponderOptions): Promise<RunningOcspResponder> {
  const store = openCaStore(options.dir)
  const clock = options.clock ?? Date.now
  const log = options.log ?? (() => {})
  const validitySeconds = options.nextUpdateSeconds ?? DEFAULT_NEXT_UPDATE_SECONDS
  if (!(Number.isInteger(validitySeconds) && validitySeconds > 0 && validitySeconds <= 7 * 24 * 3600)) {
    throw new CaError(`--next-update-seconds: must be a whole number of seconds between 1 and ${7 * 24 * 3600}, not ${validitySeconds}`)
  }
  const choice = options.signer ?? 'auto'
  const signerKind = choice === 'auto' ? (existsSync(store.path('responderCert')) ? 'responder' : 'ca') : choice
  const statuses = reloading(store.path('index'), () => statusTable(store))
  const matchesIssuer = createIssuerMatcher(store.nodeCert.raw)
  const signer =
    signerKind === 'ca'
      ? await loadCaSigningKey(store).then((signingKey): (() => Promise<LoadedSigner>) => {
          const loaded = { signer: { signingKey, certDer: store.nodeCert.raw, delegated: false }, delegatedCert: undefined }
          return async () => loaded
        })
      : reloading(store.path('responderCert'), () => loadDelegatedSigner(store))

  async function currentSigner(table: Map<string, CertificateStatus>): Promise<OcspSigner> {
    const loaded = await signer()
    if (loaded.delegatedCert) checkDelegatedCert(store.path('responderCert'), loaded.delegatedCert, table, clock())
    return loaded.signer
  }
  // Refuse to start rather than fail every request when the signer is unusable.
  await currentSigner(await statuses())

  async function answer(requestDer: Uint8Array): Promise<OcspAnswer> {
    try {
      const table = await statuses()
      const signedBy = await currentSigner(table)
      return answerOcspRequest(requestDer, {
        matchesIssuer,
        lookup: (serial) => table.get(serial) ?? { status: 'unknown' },
        signer: signedBy,
        now: clock(),
        validitySeconds,
      })
    } catch (error) {
      // Never answer from a state that could not be read: a revocation might be missing from it.
      return internalErrorAnswer(error instanceof Error ? error.message : String(error))
    }
  }

  const basePath = ocspBasePath(store.settings.ocspUrl)
  const server = createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, (req, res) => {
    handle(req, res).catch((error: unknown) => {
      log({ event: 'ocsp.error', detail: error instanceof Error ? error.message : String(error) })
      if (!res.headersSent) res.writeHead(500).end()
      else res.destroy()
    })
  })

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let requestDer: Uint8Array | undefined
    if (req.method === 'POST') {
      requestDer = await readBody(req)
      if (requestDer === undefined) {
        res.writeHead(413, { connection: 'close' }).end()
        return
      }
    } else if (req.method === 'GET') {
      requestDer = decodeGetPath(req.url ?? '/', basePath)
    } else {
      res.writeHead(405, { allow: 'GET, POST' }).end()
      return
    }
    const result = requestDer === undefined ? malformedRequestAnswer('GET path is not a base64 OCSP request') : await answer(requestDer)
    log({ event: 'ocsp.request', method: req.method, outcome: result.outcome })
    const headers: Record<string, string | number> = { 'content-type': 'application/ocsp-response', 'content-length': result.der.length }
    // RFC 5019 §6.2: GET answers without a nonce may be cached until nextUpdate.
    if (req.method === 'GET' && result.outcome.responseStatus === 'successful' && !result.nonce && result.nextUpdate) {
      headers['cache-control'] = `max-age=${Math.max(0, Math.floor((result.nextUpdate.getTime() - clock()) / 1000))}, public, no-transform, must-revalidate`
    } else {
      headers['cache-control'] = 'no-store'
    }
    res.writeHead(200, headers).end(result.der)
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host ?? '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  }).catch((error: unknown) => {
    throw new CaError(`--port ${options.port}: cannot listen (${(error as NodeJS.ErrnoException).code ?? String(error)})`)
  })
  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    signer: signerKind,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

function ocspBasePath(ocspUrl: string | undefined): string {
  if (!ocspUrl) return '/'
  const path = new URL(ocspUrl).pathname
  return path.endsWith('/') ? path : `${path}/`
}

/** RFC 6960 App. A.1.1: GET {url}/{url-encoding of base-64 encoding of the DER OCSPRequest}. */
export function decodeGetPath(url: string, basePath: string): Uint8Array | undefined {
  const path = url.split('?')[0]!
  const encoded = path.startsWith(basePath) ? path.slice(basePath.length) : path.slice(1)
  let base64: string
  try {
    base64 = decodeURIComponent(encoded)
  } catch {
    return undefined
  }
  if (base64 === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) return undefined
  return Buffer.from(base64, 'base64')
}

async function readBody(req: IncomingMessage): Promise<Uint8Array | undefined> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > MAX_REQUEST_BYTES) return undefined
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_REQUEST_BYTES) return undefined
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}
