// The partner listener's limits, exercised through real TLS sockets that write raw bytes:
// oversized headers, a stalled request, oversized bodies, too many connections, idle
// keep-alive connections, and slowloris (slowhttptest) against the running gateway.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createProof, generateDpopKey } from '../../src/client/partner-client.ts'
import { catalogue, type ErrorCode } from '../../src/errors.ts'
import { certThumbprint, startTestGateway, type TestGateway } from '../support/gateway.ts'
import { openConnection, rawRequest, type RawResponse } from '../support/raw-connection.ts'
import type { EcsSecurityEvent } from '../../src/observability/ecs.ts'

const SLOWHTTPTEST = '/usr/bin/slowhttptest'

/** A DPoP-bound token and a fresh proof for one request (as dev/demo.ts does). */
async function dpopCredentials(gw: TestGateway, method: string, path: string): Promise<[string, string][]> {
  const key = await generateDpopKey('ES256')
  const token = await gw.issuer.mint({ jkt: key.jkt })
  const proof = await createProof(key, { htm: method, htu: gw.url(path), accessToken: token })
  return [
    ['Authorization', `DPoP ${token}`],
    ['DPoP', proof],
  ]
}

async function refusalsCounted(gw: TestGateway, reason: ErrorCode): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${gw.gateway.adminPort}/metrics`)
  const text = await response.text()
  let total = 0
  for (const line of text.split('\n')) {
    if (line.startsWith('fapi_gateway_refusals_total{') && line.includes(`reason="${reason}"`)) total += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return total
}

/** Waits until the gateway's open-connection gauge has come down (it notices a close a little later than the client). */
async function openConnectionsDropTo(gw: TestGateway, count: number): Promise<void> {
  for (;;) {
    const text = await (await fetch(`http://127.0.0.1:${gw.gateway.adminPort}/metrics`)).text()
    const line = text.split('\n').find((l) => l.startsWith('fapi_gateway_open_connections '))
    if (line !== undefined && Number(line.split(' ')[1]) <= count) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function refusalEvents(gw: TestGateway, reason: ErrorCode): EcsSecurityEvent[] {
  return gw.log.events().filter((e) => e.event.action === 'request.refused' && e.event.reason === reason)
}

/** Status, body code, security event, metric, and nothing upstream. */
async function assertRefused(gw: TestGateway, response: RawResponse, code: ErrorCode): Promise<void> {
  assert.equal(response.status, catalogue[code].status)
  assert.equal(response.headers['content-type'], 'application/json')
  assert.equal(response.json?.code, code)
  assert.deepEqual(Object.keys(response.json ?? {}).sort(), ['code', 'error', 'error_description', 'interaction_id'])
  const events = refusalEvents(gw, code)
  assert.ok(events.length >= 1, `a request.refused event with reason ${code}`)
  assert.equal(events.at(-1)!.http?.response?.status_code, catalogue[code].status)
  assert.ok((await refusalsCounted(gw, code)) >= 1, `fapi_gateway_refusals_total{reason="${code}"}`)
  assert.equal(gw.upstream.received.length, 0, 'the upstream received nothing')
}

async function withGateway(limits: Record<string, number>, run: (gw: TestGateway) => Promise<void>): Promise<void> {
  const gw = await startTestGateway({ config: { listener: { limits } } })
  try {
    await run(gw)
  } finally {
    await gw.close()
  }
}

test('headers over maxHeaderBytes are answered 431 GW_HEADERS_TOO_LARGE', async () => {
  await withGateway({ maxHeaderBytes: 8192 }, async (gw) => {
    const connection = await openConnection(gw)
    connection.write(rawRequest(gw, 'GET', '/accounts/1', [['X-Filler', 'a'.repeat(9000)]]))
    const response = await connection.response()
    await connection.closed
    assert.equal(response.headers.connection, 'close')
    await assertRefused(gw, response, 'GW_HEADERS_TOO_LARGE')
  })
})

test('headers just under maxHeaderBytes still pass the listener', async () => {
  await withGateway({ maxHeaderBytes: 8192 }, async (gw) => {
    const connection = await openConnection(gw)
    connection.write(rawRequest(gw, 'GET', '/accounts/1', [['X-Filler', 'a'.repeat(6000)], ...(await dpopCredentials(gw, 'GET', '/accounts/1'))]))
    const response = await connection.response()
    assert.equal(response.status, 200)
    assert.equal(gw.upstream.received.length, 1)
    connection.socket.destroy()
  })
})

test('a request whose headers stall past headersTimeoutMs is answered 408 GW_REQUEST_TIMEOUT and closed', async () => {
  await withGateway({ headersTimeoutMs: 1000, requestTimeoutMs: 2000, connectionsCheckingIntervalMs: 200 }, async (gw) => {
    const connection = await openConnection(gw)
    const credentials = await dpopCredentials(gw, 'GET', '/accounts/1')
    const request = rawRequest(gw, 'GET', '/accounts/1', credentials)
    connection.write(request.slice(0, request.length / 2))
    const response = await connection.response()
    await connection.closed
    assert.equal(response.headers.connection, 'close')
    await assertRefused(gw, response, 'GW_REQUEST_TIMEOUT')
  })
})

test('a form body over maxFormBodyBytes is answered 413 GW_BODY_TOO_LARGE (it is read once the headers passed)', async () => {
  await withGateway({ maxFormBodyBytes: 1024 }, async (gw) => {
    const token = await gw.issuer.mint({ x5t: certThumbprint(gw.pki.partnerA), scope: 'payments:write' })
    const connection = await openConnection(gw, gw.pki.partnerA)
    const body = `a=${'b'.repeat(2000)}`
    connection.write(
      rawRequest(
        gw,
        'POST',
        '/payments',
        [
          ['Authorization', `Bearer ${token}`],
          ['Content-Type', 'application/x-www-form-urlencoded'],
          ['Content-Length', String(body.length)],
        ],
        body,
      ),
    )
    const response = await connection.response()
    await connection.closed
    assert.equal(response.headers.connection, 'close')
    await assertRefused(gw, response, 'GW_BODY_TOO_LARGE')
  })
})

test('a content-length over maxBodyBytes is answered 413 GW_BODY_TOO_LARGE for an authorized request', async () => {
  await withGateway({ maxBodyBytes: 1024 }, async (gw) => {
    const token = await gw.issuer.mint({ x5t: certThumbprint(gw.pki.partnerA), scope: 'payments:write' })
    const connection = await openConnection(gw, gw.pki.partnerA)
    // Only the head is sent: the gateway must refuse on the declared length, without reading.
    connection.write(
      rawRequest(gw, 'POST', '/payments', [
        ['Authorization', `Bearer ${token}`],
        ['Content-Type', 'application/json'],
        ['Content-Length', '1025'],
      ]),
    )
    const response = await connection.response()
    await connection.closed
    assert.equal(response.headers.connection, 'close')
    await assertRefused(gw, response, 'GW_BODY_TOO_LARGE')
    assert.equal(refusalEvents(gw, 'GW_BODY_TOO_LARGE').at(-1)!.fapi?.route, 'payments-create')
  })
})

test('a body within maxBodyBytes on the same route is forwarded', async () => {
  await withGateway({ maxBodyBytes: 1024 }, async (gw) => {
    const token = await gw.issuer.mint({ x5t: certThumbprint(gw.pki.partnerA), scope: 'payments:write' })
    const connection = await openConnection(gw, gw.pki.partnerA)
    const body = JSON.stringify({ amount: '1.00', filler: 'x'.repeat(900) })
    connection.write(
      rawRequest(
        gw,
        'POST',
        '/payments',
        [
          ['Authorization', `Bearer ${token}`],
          ['Content-Type', 'application/json'],
          ['Content-Length', String(body.length)],
        ],
        body,
      ),
    )
    const response = await connection.response()
    assert.equal(response.status, 201)
    assert.equal(gw.upstream.received.length, 1)
    assert.equal(gw.upstream.received[0]!.bodyBytes, body.length)
    connection.socket.destroy()
  })
})

test('a connection over maxConnections is answered 503 GW_OVERLOADED; below the limit it is served', async () => {
  await withGateway({ maxConnections: 2 }, async (gw) => {
    const held = [await openConnection(gw), await openConnection(gw)]
    const extra = await openConnection(gw)
    extra.write(rawRequest(gw, 'GET', '/accounts/1', await dpopCredentials(gw, 'GET', '/accounts/1')))
    const response = await extra.response()
    await extra.closed
    assert.equal(response.headers.connection, 'close')
    await assertRefused(gw, response, 'GW_OVERLOADED')

    for (const connection of held) connection.socket.destroy()
    await openConnectionsDropTo(gw, 0)
    const later = await openConnection(gw)
    later.write(rawRequest(gw, 'GET', '/accounts/1', await dpopCredentials(gw, 'GET', '/accounts/1')))
    assert.equal((await later.response()).status, 200)
    later.socket.destroy()
  })
})

test('an idle keep-alive connection is closed by the gateway after keepAliveTimeoutMs', async () => {
  await withGateway({ keepAliveTimeoutMs: 1000 }, async (gw) => {
    const connection = await openConnection(gw)
    connection.write(rawRequest(gw, 'GET', '/accounts/1', await dpopCredentials(gw, 'GET', '/accounts/1')))
    const response = await connection.response()
    assert.equal(response.status, 200)
    assert.notEqual(response.headers.connection, 'close')
    assert.equal(response.headers['keep-alive'], 'timeout=1')
    await connection.closed
    assert.equal(connection.socket.readableEnded, true, 'the gateway ended the connection')
    assert.equal(refusalEvents(gw, 'GW_REQUEST_TIMEOUT').length, 0, 'closing an idle connection is not a refusal')
  })
})

async function runSlowHttpTest(args: string[]): Promise<string> {
  const child = spawn(SLOWHTTPTEST, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
  await once(child, 'exit')
  return output.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '')
}

/** slowhttptest's per-second CSV (`-g -o`): Seconds,Closed,Pending,Connected,Service Available. */
function readSlowHttpTestStats(file: string): Record<string, number>[] {
  const [header, ...rows] = readFileSync(file, 'utf8').trim().split('\n')
  const names = header!.split(',').map((name) => name.trim())
  return rows.map((row) => Object.fromEntries(row.split(',').map((value, index) => [names[index]!, Number(value)])))
}

test('slowloris (slowhttptest -H) cannot hold the listener', { skip: existsSync(SLOWHTTPTEST) ? false : `${SLOWHTTPTEST} is not installed` }, async () => {
  const scratch = mkdtempSync(join(tmpdir(), 'slowloris-'))
  try {
    // Stalled connections are closed after about a second, so at 50 new ones a second the attack
    // stays far below maxConnections; were they held, its 200 connections would pass the limit.
    await withGateway({ headersTimeoutMs: 1000, requestTimeoutMs: 2000, connectionsCheckingIntervalMs: 200, maxConnections: 120 }, async (gw) => {
      // 200 connections at 50 a second, each sending a header line every second, for at most 8 s.
      const attack = runSlowHttpTest([
        '-H',
        '-c',
        '200',
        '-r',
        '50',
        '-i',
        '1',
        '-l',
        '8',
        '-p',
        '3',
        '-g',
        '-o',
        join(scratch, 'stats'),
        '-u',
        gw.url('/accounts/1'),
      ])
      await new Promise((resolve) => setTimeout(resolve, 1500))
      const during = await gw.client().send('GET', '/accounts/1', await dpopCredentials(gw, 'GET', '/accounts/1'))
      assert.equal(during.status, 200, 'a legitimate request is served during the attack')
      const output = await attack

      const after = await gw.client().send('GET', '/accounts/1', await dpopCredentials(gw, 'GET', '/accounts/1'))
      assert.equal(after.status, 200, 'a legitimate request is served after the attack')
      const stats = readSlowHttpTestStats(join(scratch, 'stats.csv'))
      const closed = Math.max(...stats.map((row) => row.Closed ?? 0))
      assert.ok(closed > 0, `slowhttptest saw the gateway close its connections:\n${output.slice(-600)}`)
      assert.doesNotMatch(output, /service available:\s*NO/i)
      assert.ok(refusalEvents(gw, 'GW_REQUEST_TIMEOUT').length > 0, 'stalled connections were refused as timeouts')
      assert.ok((await refusalsCounted(gw, 'GW_REQUEST_TIMEOUT')) > 0)
      assert.equal(gw.upstream.received.length, 2, 'only the two legitimate requests reached the upstream')
    })
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
})
