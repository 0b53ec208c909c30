// The load generator, run as its own process: presents a client certificate, sends a fresh
// DPoP proof with every request, and for token requests a fresh client assertion (both pre-generated
// before the clock starts so that signing does not starve the target of CPU; each jti is used once),
// and records every latency.
// Proofs are signed with node:crypto here rather than jose, only because the generator must
// make hundreds of thousands of them quickly; the gateway verifies them like any other.
import { createHash, createPrivateKey, randomUUID, sign, type KeyObject } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { Agent, Pool, request } from 'undici'

export interface LoadJob {
  readonly url: string
  readonly path: string
  readonly caPem: string
  readonly identity?: { certPem: string; keyPem: string }
  readonly token?: string
  readonly scheme: 'DPoP' | 'Bearer' | 'none'
  readonly dpop?: { alg: 'ES256' | 'PS256'; privateJwk: Record<string, unknown>; publicJwk: Record<string, unknown>; htuBase: string }
  readonly connections: number
  readonly durationMs: number
  /** Open-model load at this many requests a second, latency measured from each request's scheduled time. */
  readonly fixedRate?: number
  /** A new TLS connection (full handshake, no session resumption) for every request. */
  readonly newConnectionPerRequest?: boolean
  readonly maxRequests: number
  /** Sign each proof when its request is sent (long soak runs) instead of all before the clock. */
  readonly signProofsWhenSent?: boolean
  /** POST instead of GET (a token request); the proofs' htm follows. */
  readonly method?: 'GET' | 'POST'
  /** Sent with every request as they are (content-type, a Basic authorization). */
  readonly headers?: Record<string, string>
  /** The same form body for every request. */
  readonly form?: Record<string, string>
  /** private_key_jwt: a fresh client assertion (its own jti) added to the form of every request, signed before the clock. */
  readonly clientAssertion?: { clientId: string; audience: string; kid: string; privateJwk: Record<string, unknown> }
}

export interface LoadResult {
  readonly requests: number
  readonly errors: number
  readonly statuses: Record<string, number>
  readonly seconds: number
  readonly rps: number
  readonly p50ms: number
  readonly p99ms: number
}

function b64(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

function proofSigner(job: LoadJob): () => string {
  const dpop = job.dpop!
  const key: KeyObject = createPrivateKey({ key: dpop.privateJwk as never, format: 'jwk' })
  const header = b64({ typ: 'dpop+jwt', alg: dpop.alg, jwk: dpop.publicJwk })
  // A token request's proof has no ath: there is no access token yet.
  const ath = job.token === undefined ? undefined : createHash('sha256').update(job.token).digest('base64url')
  const htu = dpop.htuBase + job.path
  const htm = job.method ?? 'GET'
  return () => {
    const input = `${header}.${b64({ htm, htu, iat: Math.floor(Date.now() / 1000), jti: randomUUID(), ...(ath && { ath }) })}`
    return `${input}.${signJws(dpop.alg, key, input)}`
  }
}

function signJws(alg: 'ES256' | 'PS256', key: KeyObject, input: string): string {
  const signature =
    alg === 'ES256'
      ? sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
      : sign('sha256', Buffer.from(input), { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 })
  return signature.toString('base64url')
}

/** The form of one request: the job's fields and, for private_key_jwt, a client assertion used once (RFC 7523). */
function formBuilder(job: LoadJob): (() => string) | undefined {
  if (!job.form && !job.clientAssertion) return undefined
  const fields = new URLSearchParams(job.form).toString()
  const assertion = job.clientAssertion
  if (!assertion) return () => fields
  const key = createPrivateKey({ key: assertion.privateJwk as never, format: 'jwk' })
  const header = b64({ alg: 'ES256', kid: assertion.kid })
  return () => {
    const now = Math.floor(Date.now() / 1000)
    const input = `${header}.${b64({ iss: assertion.clientId, sub: assertion.clientId, aud: assertion.audience, jti: randomUUID(), iat: now, exp: now + 120 })}`
    const jwt = `${input}.${signJws('ES256', key, input)}`
    return `${fields}&client_assertion_type=${encodeURIComponent('urn:ietf:params:oauth:client-assertion-type:jwt-bearer')}&client_assertion=${jwt}`
  }
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

export async function runLoad(job: LoadJob): Promise<LoadResult> {
  const signProof = job.dpop ? proofSigner(job) : undefined
  const proofs = signProof && !job.signProofsWhenSent ? Array.from({ length: job.maxRequests }, signProof) : undefined
  const buildForm = formBuilder(job)
  const bodies = buildForm ? Array.from({ length: job.maxRequests }, buildForm) : undefined
  const connect = {
    ca: job.caPem,
    ...(job.identity && { cert: job.identity.certPem, key: job.identity.keyPem }),
    ...(job.newConnectionPerRequest && { maxCachedSessions: 0 }),
  }
  const dispatcher = job.newConnectionPerRequest
    ? new Agent({ connect, connections: job.connections, pipelining: 0 })
    : new Pool(job.url, { connect, connections: job.connections, pipelining: 1 })
  const latencies = new Float64Array(job.maxRequests)
  const statuses: Record<string, number> = {}
  let next = 0
  let done = 0
  let errors = 0

  const headersFor = (i: number): Record<string, string> => {
    const headers: Record<string, string> = { ...job.headers }
    if (job.scheme !== 'none') headers.authorization = `${job.scheme} ${job.token}`
    if (signProof) headers.dpop = proofs ? proofs[i]! : signProof()
    if (job.newConnectionPerRequest) headers.connection = 'close'
    return headers
  }
  const once = async (i: number, startedAt: number) => {
    try {
      const response = await request(job.url + job.path, {
        dispatcher,
        method: job.method ?? 'GET',
        headers: headersFor(i),
        body: bodies?.[i],
        reset: job.newConnectionPerRequest ?? false,
      })
      await response.body.dump()
      statuses[response.statusCode] = (statuses[response.statusCode] ?? 0) + 1
    } catch {
      errors++
    }
    latencies[done++] = performance.now() - startedAt
  }

  if (job.fixedRate) {
    // Open every connection (full TLS handshakes) before the clock starts, so that the
    // latency tail measures the target and not the first handshakes of the run.
    await Promise.all(
      Array.from({ length: job.connections }, () =>
        request(job.url + job.path, { dispatcher }).then(
          (response) => response.body.dump(),
          () => undefined,
        ),
      ),
    )
  }
  const started = performance.now()
  const deadline = started + job.durationMs
  if (job.fixedRate) {
    const interval = 1000 / job.fixedRate
    const inflight: Promise<void>[] = []
    while (next < job.maxRequests) {
      const scheduled = started + next * interval
      if (scheduled >= deadline) break
      const wait = scheduled - performance.now()
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
      // From the scheduled time when late (no coordinated omission), from the send when early.
      inflight.push(once(next++, Math.min(scheduled, performance.now())))
    }
    await Promise.all(inflight)
  } else {
    const loop = async () => {
      while (performance.now() < deadline && next < job.maxRequests) await once(next++, performance.now())
    }
    await Promise.all(Array.from({ length: job.connections }, loop))
  }
  const seconds = (performance.now() - started) / 1000
  await dispatcher.close()
  const sorted = latencies.slice(0, done).sort()
  return { requests: done, errors, statuses, seconds, rps: done / seconds, p50ms: percentile(sorted, 50), p99ms: percentile(sorted, 99) }
}

if (process.send) {
  process.once('message', (job: LoadJob) => {
    runLoad(job).then(
      (result) => process.send!({ result }, () => process.exit(0)),
      (error: unknown) => process.send!({ error: String(error) }, () => process.exit(1)),
    )
  })
}
