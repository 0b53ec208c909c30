import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, request, type IncomingMessage, type Server, type ServerResponse, type OutgoingHttpHeaders } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { createHash, randomBytes } from 'node:crypto'
import type { AddressInfo, Socket } from 'node:net'
import { createForwarder, type Forwarder, type ForwardOutcome, type UpstreamSettings } from '../../../src/forward/forward.ts'
import { createHeaderPolicy, type HeaderPolicyOptions, type Identity } from '../../../src/forward/headers.ts'
import { catalogue, isGatewayError, type GatewayError } from '../../../src/errors.ts'
import { createDevPki } from '../../../dev/pki.ts'

const FIXED_NOW = Date.UTC(2030, 0, 2, 3, 4, 5)
const INTERACTION_ID = 'c770aef3-6784-41f7-8e0e-ff5f97bddb3a'
const identity: Identity = {
  clientId: 'client-1',
  subject: 'alice',
  scopes: ['accounts', 'payments'],
  certThumbprint: 'x5t-thumb',
  keyThumbprint: 'jkt-thumb',
  issuer: 'https://as.example',
  route: 'accounts',
}

interface Seen {
  readonly method: string
  readonly url: string
  readonly rawHeaders: string[]
  readonly bodyHash: string
  readonly bodyLength: number
}

interface Upstream {
  readonly url: string
  readonly seen: Seen[]
  readonly connections: Socket[]
  close(): Promise<void>
}

type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, seen: Seen) => void

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)))
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

function echo(_req: IncomingMessage, res: ServerResponse, seen: Seen) {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ bodyHash: seen.bodyHash, bodyLength: seen.bodyLength }))
}

/** Reads the whole body, records it, then calls the handler. `early` handlers run on the head. */
async function startUpstream(
  handler: UpstreamHandler = echo,
  options: { early?: (req: IncomingMessage, res: ServerResponse) => void } = {},
): Promise<Upstream> {
  const seen: Seen[] = []
  const connections: Socket[] = []
  const server = createServer((req, res) => {
    if (options.early) {
      options.early(req, res)
      return
    }
    const hash = createHash('sha256')
    let length = 0
    req.on('data', (chunk: Buffer) => {
      hash.update(chunk)
      length += chunk.length
    })
    req.on('end', () => {
      const entry = { method: req.method!, url: req.url!, rawHeaders: req.rawHeaders, bodyHash: hash.digest('hex'), bodyLength: length }
      seen.push(entry)
      handler(req, res, entry)
    })
  })
  server.on('connection', (socket) => connections.push(socket))
  const port = await listen(server)
  return { url: `http://127.0.0.1:${port}`, seen, connections, close: () => closeServer(server) }
}

interface Front {
  readonly port: number
  readonly outcomes: ForwardOutcome[]
  readonly errors: GatewayError[]
  /** Resolves with the next error forward() rejects with. */
  nextError(): Promise<GatewayError>
  close(): Promise<void>
}

function settings(url: string, overrides: Partial<UpstreamSettings> = {}): UpstreamSettings {
  return { url, connectTimeoutMs: 2000, headersTimeoutMs: 5000, bodyTimeoutMs: 5000, connections: 4, ...overrides }
}

/** `readBodyFirst`: the front reads the whole body before forwarding, as the listener does with a form body. */
async function startFront(forwarder: Forwarder, policyOptions: Partial<HeaderPolicyOptions> = {}, upstreamName = 'api', readBodyFirst = false): Promise<Front> {
  const policy = createHeaderPolicy({ publicHost: 'api.example.com', ...policyOptions })
  const outcomes: ForwardOutcome[] = []
  const errors: GatewayError[] = []
  const waiting: ((err: GatewayError) => void)[] = []
  const server = createServer(async (req, res) => {
    try {
      const headers = policy.buildRequestHeaders(req.rawHeaders, {
        identity,
        clientIp: req.socket.remoteAddress,
        target: req.url!,
        interactionId: INTERACTION_ID,
      })
      const readBody = readBodyFirst ? Buffer.concat(await req.toArray()) : undefined
      outcomes.push(await forwarder.forward(req, res, { upstream: upstreamName, path: req.url! }, headers, readBody))
    } catch (err) {
      assert.ok(isGatewayError(err), `forward() rejected with a non-GatewayError: ${String(err)}`)
      errors.push(err)
      waiting.shift()?.(err)
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(catalogue[err.code].status, { 'x-gateway-code': err.code })
        res.end()
      }
    }
  })
  const port = await listen(server)
  return {
    port,
    outcomes,
    errors,
    nextError: () => new Promise((resolve) => waiting.push(resolve)),
    close: () => closeServer(server),
  }
}

interface Answer {
  readonly status: number
  readonly rawHeaders: string[]
  readonly body: Buffer
}

function header(answer: Answer, name: string): string[] {
  const found: string[] = []
  for (let i = 0; i < answer.rawHeaders.length; i += 2) if (answer.rawHeaders[i]!.toLowerCase() === name) found.push(answer.rawHeaders[i + 1]!)
  return found
}

function seenHeader(seen: Seen, name: string): string[] {
  return header({ status: 0, body: Buffer.alloc(0), rawHeaders: seen.rawHeaders }, name)
}

function send(
  port: number,
  options: { method?: string; path?: string; headers?: string[] | OutgoingHttpHeaders; body?: Buffer | Buffer[] } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path ?? '/', headers: options.headers ?? {}, agent: false },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('end', () => resolve({ status: res.statusCode!, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }))
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    const parts = options.body === undefined ? [] : Array.isArray(options.body) ? options.body : [options.body]
    for (const part of parts) req.write(part)
    req.end()
  })
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

async function setup(
  handler?: UpstreamHandler,
  overrides: Partial<UpstreamSettings> = {},
  maxBodyBytes = 16 * 1024 * 1024,
  policy: Partial<HeaderPolicyOptions> = {},
) {
  const upstream = await startUpstream(handler)
  const forwarder = createForwarder({ api: settings(upstream.url, overrides) }, { maxBodyBytes, now: () => FIXED_NOW })
  const front = await startFront(forwarder, policy)
  return {
    upstream,
    forwarder,
    front,
    async close() {
      await front.close()
      await forwarder.close()
      await upstream.close()
    },
  }
}

test('GET: status, body, custom and duplicate response headers and the upstream Date pass through', async () => {
  const env = await setup((_req, res) => {
    res.setHeader('Date', 'Wed, 21 Oct 2015 07:28:00 GMT')
    res.setHeader('Set-Cookie', ['a=1', 'b=2'])
    res.setHeader('X-Custom', 'value')
    res.setHeader('X-Fapi-Interaction-Id', 'from-upstream')
    res.writeHead(201, { 'content-type': 'text/plain' })
    res.end('created')
  })
  try {
    const answer = await send(env.front.port, { path: '/accounts/1?x=1&y=%20' })
    assert.equal(answer.status, 201)
    assert.equal(answer.body.toString(), 'created')
    assert.deepEqual(header(answer, 'x-custom'), ['value'])
    assert.deepEqual(header(answer, 'set-cookie'), ['a=1', 'b=2'])
    assert.deepEqual(header(answer, 'date'), ['Wed, 21 Oct 2015 07:28:00 GMT'])
    assert.deepEqual(header(answer, 'x-fapi-interaction-id'), [INTERACTION_ID])
    assert.equal(env.upstream.seen[0]!.url, '/accounts/1?x=1&y=%20')
    assert.equal(env.upstream.seen[0]!.method, 'GET')
    assert.equal(env.front.outcomes[0]!.status, 201)
    assert.ok(env.front.outcomes[0]!.upstreamMs >= 0)
  } finally {
    await env.close()
  }
})

test('a Date is added from the injected clock when the upstream sends none; upstream hop-by-hop headers are dropped', async () => {
  const env = await setup((_req, res) => {
    res.sendDate = false
    res.setHeader('Connection', 'keep-alive, X-Up-Hop')
    res.setHeader('X-Up-Hop', 'secret')
    res.setHeader('Keep-Alive', 'timeout=99')
    res.setHeader('Trailer', 'x-t')
    res.end('ok')
  })
  try {
    const answer = await send(env.front.port)
    assert.equal(answer.status, 200)
    assert.deepEqual(header(answer, 'date'), ['Wed, 02 Jan 2030 03:04:05 GMT'])
    assert.deepEqual(header(answer, 'x-up-hop'), [])
    assert.deepEqual(header(answer, 'trailer'), [])
    assert.ok(!header(answer, 'keep-alive').includes('timeout=99'))
  } finally {
    await env.close()
  }
})

test('the upstream base path is prefixed and HEAD works', async () => {
  const upstream = await startUpstream((_req, res) => {
    res.setHeader('content-length', '5')
    res.end()
  })
  const forwarder = createForwarder({ api: settings(`${upstream.url}/base/`) }, { maxBodyBytes: 1024, now: () => FIXED_NOW })
  const front = await startFront(forwarder)
  try {
    const answer = await send(front.port, { method: 'HEAD', path: '/v1/x?q=1' })
    assert.equal(answer.status, 200)
    assert.equal(upstream.seen[0]!.url, '/base/v1/x?q=1')
    assert.equal(upstream.seen[0]!.method, 'HEAD')
  } finally {
    await front.close()
    await forwarder.close()
    await upstream.close()
  }
})

test("the upstream's Server, X-Powered-By and Via stay inside; its own Location URLs become public ones", async () => {
  // Frameworks build absolute URLs from the Host they were sent: the upstream's own origin.
  const upstream = await startUpstream((req, res) => {
    res.setHeader('Server', 'Kestrel (build 7, app-17.internal)')
    res.setHeader('X-Powered-By', 'Express')
    res.setHeader('Via', '1.1 mesh-sidecar.internal')
    res.setHeader('Location', `http://${req.headers.host}/base/payments/42?view=full`)
    res.setHeader('Content-Location', 'https://cdn.example/payments/42')
    res.writeHead(201)
    res.end()
  })
  const forwarder = createForwarder({ api: settings(`${upstream.url}/base`) }, { maxBodyBytes: 1024, now: () => FIXED_NOW })
  const front = await startFront(forwarder, { stripResponseHeaders: ['x-never-sent'] })
  try {
    const answer = await send(front.port, { method: 'POST', path: '/payments' })
    assert.equal(answer.status, 201)
    for (const name of ['server', 'x-powered-by', 'via']) assert.deepEqual(header(answer, name), [], name)
    assert.deepEqual(header(answer, 'location'), ['https://api.example.com/payments/42?view=full'])
    assert.deepEqual(header(answer, 'content-location'), ['https://cdn.example/payments/42'])
  } finally {
    await front.close()
    await forwarder.close()
    await upstream.close()
  }
})

test('dot-segments in the path are refused before the upstream is contacted', async () => {
  const env = await setup()
  try {
    for (const path of ['/a/../admin', '/a/%2e%2E/admin', '/a/./b']) {
      const answer = await send(env.front.port, { path })
      assert.equal(answer.status, 400, path)
      assert.deepEqual(header(answer, 'x-gateway-code'), ['GW_REQUEST_MALFORMED'])
    }
    assert.equal(env.upstream.seen.length, 0)
    assert.equal(env.upstream.connections.length, 0)
  } finally {
    await env.close()
  }
})

test('POST: a 5 MB body with content-length and a chunked body arrive byte for byte', async () => {
  const env = await setup()
  try {
    const body = randomBytes(5 * 1024 * 1024)
    const answer = await send(env.front.port, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length) },
      body,
    })
    assert.equal(answer.status, 200)
    assert.deepEqual(JSON.parse(answer.body.toString()), { bodyHash: sha256(body), bodyLength: body.length })
    assert.deepEqual(seenHeader(env.upstream.seen[0]!, 'content-length'), [String(body.length)])

    const parts = [randomBytes(70_000), randomBytes(1), randomBytes(300_000)]
    const chunked = await send(env.front.port, { method: 'PUT', headers: { 'transfer-encoding': 'chunked' }, body: parts })
    assert.equal(chunked.status, 200)
    assert.deepEqual(JSON.parse(chunked.body.toString()), { bodyHash: sha256(Buffer.concat(parts)), bodyLength: 370_001 })
    assert.deepEqual(seenHeader(env.upstream.seen[1]!, 'transfer-encoding'), ['chunked'])
  } finally {
    await env.close()
  }
})

test('a body already read to its end (the request stream is then destroyed) is forwarded, with a length, chunked and empty', async () => {
  const upstream = await startUpstream()
  const forwarder = createForwarder({ api: settings(upstream.url) }, { maxBodyBytes: 1000, now: () => FIXED_NOW })
  const front = await startFront(forwarder, {}, 'api', true)
  try {
    const body = Buffer.from('amount=10&currency=EUR')
    const sized = await send(front.port, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(body.length) },
      body,
    })
    assert.equal(sized.status, 200, String(header(sized, 'x-gateway-code')))
    assert.deepEqual(JSON.parse(sized.body.toString()), { bodyHash: sha256(body), bodyLength: body.length })

    const parts = [Buffer.from('amount=10'), Buffer.from('&currency=EUR')]
    const chunked = await send(front.port, { method: 'POST', headers: { 'transfer-encoding': 'chunked' }, body: parts })
    assert.equal(chunked.status, 200)
    assert.deepEqual(JSON.parse(chunked.body.toString()), { bodyHash: sha256(Buffer.concat(parts)), bodyLength: body.length })
    // Sent with the length the gateway now knows: the chunked framing was hop-by-hop.
    assert.deepEqual(seenHeader(upstream.seen[1]!, 'content-length'), [String(body.length)])

    const empty = await send(front.port, { method: 'POST', headers: { 'content-length': '0' } })
    assert.equal(empty.status, 200)
    assert.equal(upstream.seen[2]!.bodyLength, 0)

    // A read body is held to maxBodyBytes as well, whatever the length header said.
    const tooLarge = await send(front.port, { method: 'POST', headers: { 'transfer-encoding': 'chunked' }, body: [randomBytes(600), randomBytes(600)] })
    assert.equal(tooLarge.status, 413)
    assert.deepEqual(header(tooLarge, 'x-gateway-code'), ['GW_BODY_TOO_LARGE'])
    assert.equal(upstream.seen.length, 3)
  } finally {
    await front.close()
    await forwarder.close()
    await upstream.close()
  }
})

test('spoofed credentials, identity, forwarding and hop-by-hop headers never reach the upstream; gateway values do', async () => {
  const env = await setup()
  try {
    const spoofed = [
      'Connection',
      'keep-alive, X-Hop-Custom',
      'X-Hop-Custom',
      'evil-1',
      'Keep-Alive',
      'timeout=1',
      'TE',
      'trailers',
      'Proxy-Authorization',
      'Basic evil-2',
      'Authorization',
      'DPoP evil-3',
      'DPoP',
      'evil-4',
      'X-FAPI-Gateway-Subject',
      'evil-5',
      'X-Fapi-Gateway-Client-Id',
      'evil-6',
      'x-fapi-gateway-route',
      'evil-7',
      'X-Fapi-Gateway-Extra',
      'evil-8',
      'X-Forwarded-For',
      '6.6.6.6',
      'X-Forwarded-Host',
      'evil-9',
      'X-Forwarded-Proto',
      'http',
      'Forwarded',
      'for=6.6.6.6',
      'X-Real-IP',
      '6.6.6.6',
      'X-Client-Cert',
      'evil-10',
      'SSL-Client-Cert',
      'evil-11',
      'Client-Cert',
      ':ZXZpbA==:',
      'X-Fapi-Interaction-Id',
      'evil-12',
      'Host',
      'evil-13.example',
      'X-Dup',
      'one',
      'X-Dup',
      'two',
      'X-Fapi-Customer-Ip-Address',
      '2001:DB8::1893:25c8:1946',
    ]
    const answer = await send(env.front.port, { headers: spoofed })
    assert.equal(answer.status, 200)
    const seen = env.upstream.seen[0]!
    const leaked = seen.rawHeaders.filter((value) => /evil|6\.6\.6\.6|ZXZpbA|timeout=1|trailers/.test(value))
    assert.deepEqual(leaked, [])
    for (const name of [
      'te',
      'keep-alive',
      'proxy-authorization',
      'authorization',
      'dpop',
      'x-hop-custom',
      'x-real-ip',
      'x-client-cert',
      'ssl-client-cert',
      'client-cert',
      'x-fapi-gateway-extra',
    ]) {
      assert.deepEqual(seenHeader(seen, name), [], name)
    }
    assert.deepEqual(seenHeader(seen, 'host'), [new URL(env.upstream.url).host])
    assert.deepEqual(seenHeader(seen, 'x-dup'), ['one', 'two'])
    assert.deepEqual(seenHeader(seen, 'x-fapi-customer-ip-address'), ['2001:DB8::1893:25c8:1946'])
    assert.deepEqual(seenHeader(seen, 'x-fapi-gateway-client-id'), ['client-1'])
    assert.deepEqual(seenHeader(seen, 'x-fapi-gateway-subject'), ['alice'])
    assert.deepEqual(seenHeader(seen, 'x-fapi-gateway-scopes'), ['accounts payments'])
    assert.deepEqual(seenHeader(seen, 'x-fapi-gateway-cert-thumbprint'), ['x5t-thumb'])
    assert.deepEqual(seenHeader(seen, 'x-fapi-gateway-key-thumbprint'), ['jkt-thumb'])
    assert.deepEqual(seenHeader(seen, 'x-fapi-gateway-issuer'), ['https://as.example'])
    assert.deepEqual(seenHeader(seen, 'x-fapi-gateway-route'), ['accounts'])
    assert.deepEqual(seenHeader(seen, 'x-forwarded-for'), ['127.0.0.1'])
    assert.deepEqual(seenHeader(seen, 'x-forwarded-proto'), ['https'])
    assert.deepEqual(seenHeader(seen, 'x-forwarded-host'), ['api.example.com'])
    assert.deepEqual(seenHeader(seen, 'forwarded'), ['for=127.0.0.1;proto=https;host=api.example.com'])
    assert.deepEqual(seenHeader(seen, 'x-fapi-interaction-id'), [INTERACTION_ID])
    assert.deepEqual(header(answer, 'x-fapi-interaction-id'), [INTERACTION_ID])
  } finally {
    await env.close()
  }
})

test('rewriteDpopToBearer sends the DPoP token as Bearer to a legacy upstream', async () => {
  const env = await setup(undefined, {}, 1024, { stripAuthorization: false, rewriteDpopToBearer: true })
  try {
    const answer = await send(env.front.port, { headers: ['Host', 'api.example.com', 'Authorization', 'DPoP eyJ.tok.en', 'DPoP', 'proof'] })
    assert.equal(answer.status, 200)
    assert.deepEqual(seenHeader(env.upstream.seen[0]!, 'authorization'), ['Bearer eyJ.tok.en'])
    assert.deepEqual(seenHeader(env.upstream.seen[0]!, 'dpop'), [])
  } finally {
    await env.close()
  }
})

test('an upstream that refuses connections -> GW_UPSTREAM_UNAVAILABLE', async () => {
  const probe = createServer()
  const port = await listen(probe)
  await closeServer(probe)
  const forwarder = createForwarder({ api: settings(`http://127.0.0.1:${port}`) }, { maxBodyBytes: 1024, now: () => FIXED_NOW })
  const front = await startFront(forwarder)
  try {
    const answer = await send(front.port, { method: 'POST', headers: { 'content-length': '5' }, body: Buffer.from('hello') })
    assert.equal(answer.status, 502)
    assert.deepEqual(header(answer, 'x-gateway-code'), ['GW_UPSTREAM_UNAVAILABLE'])
    assert.equal(front.errors[0]!.code, 'GW_UPSTREAM_UNAVAILABLE')
  } finally {
    await front.close()
    await forwarder.close()
  }
})

test('an upstream that delays its headers past headersTimeoutMs -> GW_UPSTREAM_TIMEOUT', async () => {
  const upstream = await startUpstream(undefined, { early: () => {} })
  const forwarder = createForwarder({ api: settings(upstream.url, { headersTimeoutMs: 200 }) }, { maxBodyBytes: 1024, now: () => FIXED_NOW })
  const front = await startFront(forwarder)
  try {
    const answer = await send(front.port)
    assert.equal(answer.status, 504)
    assert.deepEqual(header(answer, 'x-gateway-code'), ['GW_UPSTREAM_TIMEOUT'])
  } finally {
    await front.close()
    await forwarder.close()
    await upstream.close()
  }
})

test('an upstream that stalls mid-body past bodyTimeoutMs -> the client connection is closed', async () => {
  const upstream = await startUpstream(undefined, {
    early: (_req, res) => {
      res.writeHead(200, { 'content-length': '100' })
      res.write('partial')
    },
  })
  const forwarder = createForwarder({ api: settings(upstream.url, { bodyTimeoutMs: 200 }) }, { maxBodyBytes: 1024, now: () => FIXED_NOW })
  const front = await startFront(forwarder)
  try {
    const failed = front.nextError()
    await assert.rejects(send(front.port))
    assert.equal((await failed).code, 'GW_UPSTREAM_TIMEOUT')
  } finally {
    await front.close()
    await forwarder.close()
    await upstream.close()
  }
})

test('content-length above maxBodyBytes -> GW_BODY_TOO_LARGE and the upstream is never contacted', async () => {
  const env = await setup(undefined, {}, 1000)
  try {
    const body = randomBytes(1001)
    const answer = await send(env.front.port, { method: 'POST', headers: { 'content-length': String(body.length) }, body })
    assert.equal(answer.status, 413)
    assert.deepEqual(header(answer, 'x-gateway-code'), ['GW_BODY_TOO_LARGE'])
    assert.deepEqual(header(answer, 'connection'), ['close'])
    assert.equal(env.upstream.connections.length, 0)

    const fits = await send(env.front.port, { method: 'POST', headers: { 'content-length': '1000' }, body: body.subarray(0, 1000) })
    assert.equal(fits.status, 200)
    assert.deepEqual(JSON.parse(fits.body.toString()), { bodyHash: sha256(body.subarray(0, 1000)), bodyLength: 1000 })
  } finally {
    await env.close()
  }
})

test('a chunked body growing past maxBodyBytes -> 413 before the head, and the upstream never sees a complete request', async () => {
  const env = await setup(undefined, {}, 100_000)
  try {
    const answer = await send(env.front.port, { method: 'POST', headers: { 'transfer-encoding': 'chunked' }, body: [randomBytes(60_000), randomBytes(60_000)] })
    assert.equal(answer.status, 413)
    assert.deepEqual(header(answer, 'x-gateway-code'), ['GW_BODY_TOO_LARGE'])
    assert.deepEqual(header(answer, 'connection'), ['close'])
    assert.equal(env.upstream.seen.length, 0)

    const exact = randomBytes(100_000)
    const fits = await send(env.front.port, {
      method: 'POST',
      headers: { 'transfer-encoding': 'chunked' },
      body: [exact.subarray(0, 50_000), exact.subarray(50_000)],
    })
    assert.equal(fits.status, 200)
    assert.deepEqual(JSON.parse(fits.body.toString()), { bodyHash: sha256(exact), bodyLength: 100_000 })
  } finally {
    await env.close()
  }
})

test('an upstream that resets mid-body closes the client connection and the gateway keeps serving', async () => {
  let calls = 0
  const upstream = await startUpstream(undefined, {
    early: (req, res) => {
      calls += 1
      if (calls === 1) {
        res.writeHead(200, { 'content-length': '1000000' })
        res.write(randomBytes(10_000), () => req.socket.destroy())
      } else {
        res.end('second')
      }
    },
  })
  const forwarder = createForwarder({ api: settings(upstream.url) }, { maxBodyBytes: 1024, now: () => FIXED_NOW })
  const front = await startFront(forwarder)
  try {
    const failed = front.nextError()
    await assert.rejects(send(front.port))
    assert.equal((await failed).code, 'GW_UPSTREAM_UNAVAILABLE')
    const second = await send(front.port)
    assert.equal(second.status, 200)
    assert.equal(second.body.toString(), 'second')
  } finally {
    await front.close()
    await forwarder.close()
    await upstream.close()
  }
})

test('a client that aborts mid-request aborts the upstream request', async () => {
  let upstreamReq: IncomingMessage | undefined
  const arrived = Promise.withResolvers<void>()
  const upstream = await startUpstream(undefined, {
    early: (req) => {
      upstreamReq = req
      req.once('data', () => arrived.resolve())
    },
  })
  const forwarder = createForwarder({ api: settings(upstream.url) }, { maxBodyBytes: 1_000_000, now: () => FIXED_NOW })
  const front = await startFront(forwarder)
  try {
    const failed = front.nextError()
    const client = request({ host: '127.0.0.1', port: front.port, method: 'POST', path: '/', headers: { 'transfer-encoding': 'chunked' }, agent: false })
    client.on('error', () => {})
    client.write(randomBytes(1000))
    await arrived.promise
    upstreamReq!.on('error', () => {})
    const upstreamClosed = new Promise((resolve) => upstreamReq!.once('close', resolve))
    client.destroy()
    await upstreamClosed
    assert.equal(upstreamReq!.complete, false)
    assert.equal((await failed).code, 'GW_CLIENT_CLOSED')
  } finally {
    await front.close()
    await forwarder.close()
    await upstream.close()
  }
})

test('sequential requests reuse one keep-alive connection to the upstream', async () => {
  const env = await setup()
  try {
    for (let i = 0; i < 4; i++) {
      const answer = await send(env.front.port, { method: 'POST', headers: { 'content-length': '3' }, body: Buffer.from('abc') })
      assert.equal(answer.status, 200)
    }
    assert.equal(env.upstream.seen.length, 4)
    assert.equal(env.upstream.connections.length, 1)
  } finally {
    await env.close()
  }
})

test('an https upstream is reached with the configured CA and refused without it', async () => {
  const pki = await createDevPki()
  const server = createHttpsServer({ cert: [pki.server.certPem, pki.intermediate.certPem].join('\n'), key: pki.server.keyPem }, (_req, res) => res.end('tls'))
  const port = await listen(server)
  const forwarder = createForwarder(
    {
      trusted: settings(`https://localhost:${port}`, { caPem: pki.root.certPem }),
      untrusted: settings(`https://localhost:${port}`, { caPem: pki.untrustedRoot.certPem }),
    },
    { maxBodyBytes: 1024, now: () => FIXED_NOW },
  )
  const trusted = await startFront(forwarder, {}, 'trusted')
  const untrusted = await startFront(forwarder, {}, 'untrusted')
  try {
    const ok = await send(trusted.port)
    assert.equal(ok.status, 200)
    assert.equal(ok.body.toString(), 'tls')
    const refused = await send(untrusted.port)
    assert.equal(refused.status, 502)
    assert.deepEqual(header(refused, 'x-gateway-code'), ['GW_UPSTREAM_UNAVAILABLE'])
  } finally {
    await trusted.close()
    await untrusted.close()
    await forwarder.close()
    await closeServer(server)
  }
})

test('an unknown upstream name and a malformed upstream url fail closed', async () => {
  assert.throws(() => createForwarder({ bad: settings('ftp://127.0.0.1:1') }, { maxBodyBytes: 1, now: () => 0 }), TypeError)
  assert.throws(() => createForwarder({ bad: settings('http://u:p@127.0.0.1:1') }, { maxBodyBytes: 1, now: () => 0 }), TypeError)
  assert.throws(() => createForwarder({ bad: settings('http://127.0.0.1:1/?q=1') }, { maxBodyBytes: 1, now: () => 0 }), TypeError)
  const env = await setup()
  const front = await startFront(env.forwarder, {}, 'nope')
  try {
    const answer = await send(front.port)
    assert.equal(answer.status, 500)
    assert.deepEqual(header(answer, 'x-gateway-code'), ['GW_INTERNAL'])
    assert.equal(env.upstream.connections.length, 0)
  } finally {
    await front.close()
    await env.close()
  }
})
