// Request bodies through a real TLS listener to a real upstream: form, multipart, JSON,
// chunked and empty bodies arrive upstream byte for byte; a token in a form or multipart
// body is refused however the Content-Type is dressed; and `Expect: 100-continue` is only
// answered once the request's headers have passed every check.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { catalogue, type ErrorCode } from '../../src/errors.ts'
import { certThumbprint, startTestGateway, type TestGateway } from '../support/gateway.ts'
import { openConnection, rawRequest, type RawConnection, type RawResponse } from '../support/raw-connection.ts'

const FORM = 'application/x-www-form-urlencoded'

function chunked(...parts: string[]): string {
  return parts.map((part) => `${Buffer.byteLength(part).toString(16)}\r\n${part}\r\n`).join('') + '0\r\n\r\n'
}

function multipart(boundary: string, fields: [string, string][]): string {
  return fields.map(([disposition, value]) => `--${boundary}\r\nContent-Disposition: ${disposition}\r\n\r\n${value}\r\n`).join('') + `--${boundary}--\r\n`
}

describe('request bodies end to end', () => {
  let gw: TestGateway
  let token: string
  let bodyToken: string

  before(async () => {
    gw = await startTestGateway()
    token = await gw.issuer.mint({ x5t: certThumbprint(gw.pki.partnerA), scope: 'payments:write' })
    bodyToken = await gw.issuer.mint({ x5t: certThumbprint(gw.pki.partnerA), scope: 'payments:write' })
  })
  after(() => gw.close())

  /** A certificate-bound POST /payments over a raw mTLS connection. */
  function payment(headers: [string, string][], body = '', authorization = `Bearer ${token}`): string {
    const auth: [string, string][] = authorization === '' ? [] : [['Authorization', authorization]]
    return rawRequest(gw, 'POST', '/payments', [...auth, ...headers], body)
  }

  function withLength(headers: [string, string][], body: string): [string, string][] {
    return [...headers, ['Content-Length', String(Buffer.byteLength(body))]]
  }

  async function connection(): Promise<RawConnection> {
    return openConnection(gw, gw.pki.partnerA)
  }

  /** Sends `request` on a fresh connection and returns the answer; the upstream's new requests in `forwarded`. */
  async function exchange(request: string): Promise<{ response: RawResponse; forwarded: typeof gw.upstream.received }> {
    const before = gw.upstream.received.length
    const conn = await connection()
    try {
      conn.write(request)
      const response = await conn.response()
      return { response, forwarded: gw.upstream.received.slice(before) }
    } finally {
      conn.socket.destroy()
    }
  }

  async function assertForwarded(request: string, body: string, contentType?: string): Promise<void> {
    const { response, forwarded } = await exchange(request)
    assert.equal(response.status, 201, response.body)
    assert.equal(forwarded.length, 1)
    assert.equal(forwarded[0]!.body.toString('latin1'), Buffer.from(body).toString('latin1'))
    assert.equal(forwarded[0]!.headers['content-type'], contentType)
  }

  async function assertRefused(request: string, code: ErrorCode): Promise<RawResponse> {
    const { response, forwarded } = await exchange(request)
    assert.equal(response.status, catalogue[code].status, response.body)
    assert.equal(response.json?.code, code)
    assert.equal(forwarded.length, 0, 'nothing forwarded upstream')
    const event = gw.log.events().findLast((e) => e.event.action === 'request.refused')
    assert.equal(event?.event.reason, code)
    return response
  }

  describe('forwarding', () => {
    it('forwards an authorized form body byte for byte', async () => {
      const body = 'amount=10&currency=EUR'
      await assertForwarded(payment(withLength([['Content-Type', FORM]], body), body), body, FORM)
    })

    it('forwards form bodies one after another on a keep-alive connection', async () => {
      const conn = await connection()
      try {
        for (const body of ['amount=10&currency=EUR', 'amount=20&currency=GBP']) {
          const before = gw.upstream.received.length
          conn.write(payment(withLength([['Content-Type', `${FORM}; charset=UTF-8`]], body), body))
          const response = await conn.response()
          assert.equal(response.status, 201, response.body)
          assert.notEqual(response.headers.connection, 'close')
          assert.equal(gw.upstream.received.length, before + 1)
          assert.equal(gw.upstream.received.at(-1)!.body.toString(), body)
        }
      } finally {
        conn.socket.destroy()
      }
    })

    it('forwards a form body sent with Connection: close', async () => {
      const body = 'amount=10&currency=EUR'
      await assertForwarded(payment(withLength([['Content-Type', FORM], ['Connection', 'close']], body), body), body, FORM)
    })

    it('forwards a chunked form body', async () => {
      await assertForwarded(payment([['Content-Type', FORM], ['Transfer-Encoding', 'chunked']], chunked('amount=10', '&currency=EUR')), 'amount=10&currency=EUR', FORM)
    })

    it('forwards a JSON body, with a length and chunked', async () => {
      const body = JSON.stringify({ amount: '10.00', currency: 'EUR', note: 'grüße' })
      await assertForwarded(payment(withLength([['Content-Type', 'application/json']], body), body), body, 'application/json')
      await assertForwarded(payment([['Content-Type', 'application/json'], ['Transfer-Encoding', 'chunked']], chunked(body.slice(0, 7), body.slice(7))), body, 'application/json')
    })

    it('forwards empty bodies', async () => {
      await assertForwarded(payment([['Content-Type', FORM], ['Content-Length', '0']]), '', FORM)
      await assertForwarded(payment([['Content-Length', '0']]), '')
      await assertForwarded(payment([['Content-Type', FORM], ['Transfer-Encoding', 'chunked']], chunked()), '', FORM)
    })

    it('forwards a multipart body without an access_token field byte for byte', async () => {
      const type = 'multipart/form-data; boundary=b0undary'
      const body = multipart('b0undary', [['form-data; name="amount"', '10'], ['form-data; name="note"; filename="note.html"', '<input name="access_token">']])
      await assertForwarded(payment(withLength([['Content-Type', type]], body), body), body, type)
    })
  })
})
