// Connections that never finish the TLS handshake, from outside the running gateway: raw TCP
// sockets that stay idle or send part of a ClientHello, one byte at a time or not at all. They
// must not count toward maxConnections, must be closed after handshakeTimeoutMs however slowly
// they trickle, at most maxPendingHandshakes of them are held, and a flood of them must not keep a
// legitimate mTLS client out.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { startTestGateway, certThumbprint, type TestGateway } from '../support/gateway.ts'
import type { PartnerClient } from '../../src/client/partner-client.ts'

// A TLS record header and handshake header announcing a ClientHello of nearly 16 KiB, then its
// first bytes: the server waits for the rest, which never comes.
const PARTIAL_CLIENT_HELLO = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x3f, 0xff, 0x01, 0x00, 0x3f, 0xfb, 0x03, 0x03]), Buffer.alloc(16, 0x5a)])

interface RawSocket {
  readonly socket: Socket
  /** Resolves when the connection is closed; the test never closes one itself before the end. */
  readonly closed: Promise<void>
  isClosed(): boolean
}

// Every raw socket a test opened, destroyed before its gateway closes (which waits for them).
const opened = new Set<Socket>()

async function openRawSocket(gw: TestGateway, send: 'nothing' | 'partial-client-hello'): Promise<RawSocket> {
  const socket = connect(gw.gateway.partnerPort, '127.0.0.1')
  opened.add(socket)
  socket.on('error', () => {})
  let closed = false
  const closedPromise = new Promise<void>((resolve) =>
    socket.once('close', () => {
      closed = true
      resolve()
    }),
  )
  await once(socket, 'connect')
  if (send === 'partial-client-hello') socket.write(PARTIAL_CLIENT_HELLO)
  socket.resume()
  return { socket, closed: closedPromise, isClosed: () => closed }
}

async function metricValue(gw: TestGateway, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${gw.gateway.adminPort}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `))
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1))
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 2000; attempt++) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  assert.fail(`never: ${what}`)
}

async function withGateway(limits: Record<string, number>, run: (gw: TestGateway) => Promise<void>): Promise<void> {
  const gw = await startTestGateway({ config: { listener: { limits } } })
  try {
    await run(gw)
  } finally {
    for (const socket of opened) socket.destroy()
    opened.clear()
    await gw.close()
  }
}

/** A certificate-bound request from partner A over a fresh mTLS handshake. */
async function mtlsRequest(gw: TestGateway, client: PartnerClient): Promise<number> {
  const token = await gw.issuer.mint({ x5t: certThumbprint(gw.pki.partnerA) })
  const response = await client.send('GET', '/accounts/1', [
    ['Authorization', `Bearer ${token}`],
    ['Connection', 'close'],
  ])
  return response.status
}

const handshakeEvents = (gw: TestGateway) => gw.log.events().filter((e) => e.event.action === 'tls.handshake_failed')

test('connections still in the TLS handshake do not count toward maxConnections', async () => {
  await withGateway({ maxConnections: 2, handshakeTimeoutMs: 60_000, maxPendingHandshakes: 50 }, async (gw) => {
    const idle = [
      ...(await Promise.all(Array.from({ length: 3 }, () => openRawSocket(gw, 'nothing')))),
      ...(await Promise.all(Array.from({ length: 3 }, () => openRawSocket(gw, 'partial-client-hello')))),
    ]
    // Accepted in arrival order: the six are the gateway's before the legitimate connection is.
    assert.equal(await mtlsRequest(gw, gw.client(gw.pki.partnerA)), 200, 'answered, not 503 GW_OVERLOADED')
    assert.equal(await metricValue(gw, 'fapi_gateway_pending_handshakes'), 6, 'the six were still in their handshake')
    assert.equal(idle.filter((s) => s.isClosed()).length, 0)
    for (const s of idle) s.socket.destroy()
    await until('no handshake pending', async () => (await metricValue(gw, 'fapi_gateway_pending_handshakes')) === 0)
    await until('the hang-ups counted', async () => (await metricValue(gw, 'fapi_gateway_tls_handshake_failures_total', '{reason="ECONNRESET"}')) === 6)
    assert.equal(handshakeEvents(gw).length, 0, 'hang-ups mid-handshake are counted, not reported one by one')
  })
})

test('beyond maxPendingHandshakes the oldest pending handshake is closed, not the new connection', async () => {
  await withGateway({ handshakeTimeoutMs: 60_000, maxPendingHandshakes: 3 }, async (gw) => {
    const first = await openRawSocket(gw, 'nothing')
    const held = [await openRawSocket(gw, 'partial-client-hello'), await openRawSocket(gw, 'nothing')]
    await until('three handshakes pending', async () => (await metricValue(gw, 'fapi_gateway_pending_handshakes')) === 3)
    held.push(await openRawSocket(gw, 'nothing'))
    await first.closed
    assert.equal(held.filter((s) => s.isClosed()).length, 0, 'the newer ones are kept')
    assert.equal(await metricValue(gw, 'fapi_gateway_tls_handshake_failures_total', '{reason="pending_handshakes_full"}'), 1)
    assert.equal(await metricValue(gw, 'fapi_gateway_pending_handshakes'), 3)

    assert.equal(await mtlsRequest(gw, gw.client(gw.pki.partnerA)), 200, 'a legitimate client still gets in')
    assert.equal(handshakeEvents(gw).length, 0, 'closed handshakes are counted, not reported one by one')
  })
})

test('a handshake that trickles bytes is closed after handshakeTimeoutMs all the same', async () => {
  await withGateway({ handshakeTimeoutMs: 1000 }, async (gw) => {
    const slow = await openRawSocket(gw, 'nothing')
    // One byte of a ClientHello every 100 ms: the deadline runs from the connection, not from the last byte.
    let sent = 0
    const trickle = setInterval(() => slow.socket.write(PARTIAL_CLIENT_HELLO.subarray(sent, ++sent)), 100)
    try {
      await slow.closed
    } finally {
      clearInterval(trickle)
    }
    assert.ok(sent < PARTIAL_CLIENT_HELLO.length, 'closed while the ClientHello was still arriving')
    assert.equal(await metricValue(gw, 'fapi_gateway_tls_handshake_failures_total', '{reason="ERR_TLS_HANDSHAKE_TIMEOUT"}'), 1)
    assert.equal(handshakeEvents(gw).length, 0)
  })
})

test("the audit's twelve sockets that never finish the handshake neither stay nor keep a legitimate client out", async () => {
  await withGateway({ maxConnections: 5, handshakeTimeoutMs: 1000 }, async (gw) => {
    const kind = (n: number) => (n % 2 === 0 ? 'nothing' : 'partial-client-hello')
    const first = await Promise.all(Array.from({ length: 12 }, (_, n) => openRawSocket(gw, kind(n))))
    // Each socket the gateway closes is replaced at once, so twelve are in the handshake throughout.
    let replacing = true
    const replaceWhenClosed = (socket: RawSocket, n: number): void =>
      void socket.closed
        .then(async () => {
          if (replacing) replaceWhenClosed(await openRawSocket(gw, kind(n)), n)
        })
        .catch(() => {})
    first.forEach(replaceWhenClosed)
    let served = 0
    try {
      // Requests, each over a new handshake, until the gateway has closed all twelve first sockets.
      while (served === 0 || first.some((socket) => !socket.isClosed())) {
        assert.equal(await mtlsRequest(gw, gw.client(gw.pki.partnerA)), 200)
        served++
      }
    } finally {
      replacing = false
    }
    assert.ok((await metricValue(gw, 'fapi_gateway_tls_handshake_failures_total', '{reason="ERR_TLS_HANDSHAKE_TIMEOUT"}')) >= 12)
    assert.equal(handshakeEvents(gw).length, 0, 'no security event per timed-out handshake')
    assert.equal(gw.upstream.received.length, served)
  })
})

test('a slow-handshake flood does not keep a legitimate mTLS client out', async () => {
  // Up to 40 sockets in the handshake, twice maxPendingHandshakes, half idle and half with a partial
  // ClientHello, one more every 10 ms: the gateway closes the oldest to make room for new connections.
  await withGateway({ maxConnections: 5, handshakeTimeoutMs: 1000, maxPendingHandshakes: 20 }, async (gw) => {
    const open = new Set<RawSocket>()
    let closedByGateway = 0
    let flooding = true
    const flood = (async () => {
      for (let n = 0; flooding; n++) {
        if (open.size < 40) {
          const s = await openRawSocket(gw, n % 2 === 0 ? 'nothing' : 'partial-client-hello').catch(() => undefined)
          if (s !== undefined) {
            open.add(s)
            void s.closed.then(() => {
              open.delete(s)
              if (flooding) closedByGateway++
            })
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    })()
    try {
      await until('the flood holds the pending handshakes', async () => (await metricValue(gw, 'fapi_gateway_pending_handshakes')) >= 20)
      // Each request comes over its own new handshake; one may lose its place to the flood and is then retried.
      let served = 0
      let attempts = 0
      while (served < 5) {
        assert.ok(++attempts <= 100, `only ${served} of 5 requests answered in ${attempts - 1} attempts`)
        const client = gw.client(gw.pki.partnerA)
        const status = await mtlsRequest(gw, client).catch(() => undefined)
        await client.close()
        if (status === 200) served++
      }
    } finally {
      flooding = false
      await flood
    }
    assert.ok(closedByGateway > 0, 'the gateway closed flood sockets it had not finished a handshake with')
    assert.ok(
      (await metricValue(gw, 'fapi_gateway_tls_handshake_failures_total', '{reason="ERR_TLS_HANDSHAKE_TIMEOUT"}')) +
        (await metricValue(gw, 'fapi_gateway_tls_handshake_failures_total', '{reason="pending_handshakes_full"}')) >
        0,
    )
    assert.equal(handshakeEvents(gw).length, 0, 'no security event per flood socket')
    assert.equal(gw.upstream.received.length, 5, 'only the legitimate requests reached the upstream')
  })
})
