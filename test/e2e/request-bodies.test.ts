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
      await assertForwarded(
        payment(
          withLength(
            [
              ['Content-Type', FORM],
              ['Connection', 'close'],
            ],
            body,
          ),
          body,
        ),
        body,
        FORM,
      )
    })

    it('forwards a chunked form body', async () => {
      await assertForwarded(
        payment(
          [
            ['Content-Type', FORM],
            ['Transfer-Encoding', 'chunked'],
          ],
          chunked('amount=10', '&currency=EUR'),
        ),
        'amount=10&currency=EUR',
        FORM,
      )
    })

    it('forwards a JSON body, with a length and chunked', async () => {
      const body = JSON.stringify({ amount: '10.00', currency: 'EUR', note: 'grüße' })
      await assertForwarded(payment(withLength([['Content-Type', 'application/json']], body), body), body, 'application/json')
      await assertForwarded(
        payment(
          [
            ['Content-Type', 'application/json'],
            ['Transfer-Encoding', 'chunked'],
          ],
          chunked(body.slice(0, 7), body.slice(7)),
        ),
        body,
        'application/json',
      )
    })

    it('forwards empty bodies', async () => {
      await assertForwarded(
        payment([
          ['Content-Type', FORM],
          ['Content-Length', '0'],
        ]),
        '',
        FORM,
      )
      await assertForwarded(payment([['Content-Length', '0']]), '')
      await assertForwarded(
        payment(
          [
            ['Content-Type', FORM],
            ['Transfer-Encoding', 'chunked'],
          ],
          chunked(),
        ),
        '',
        FORM,
      )
    })

    it('forwards a multipart body without an access_token field byte for byte', async () => {
      const type = 'multipart/form-data; boundary=b0undary'
      const body = multipart('b0undary', [
        ['form-data; name="amount"', '10'],
        ['form-data; name="note"; filename="note.html"', '<input name="access_token">'],
      ])
      await assertForwarded(payment(withLength([['Content-Type', type]], body), body), body, type)
    })
  })

  describe('tokens in bodies', () => {
    it('refuses a token in a form body of an otherwise authorized request', async () => {
      for (const body of [
        `amount=10&access_token=${bodyToken}`,
        `amount=10;access_token=${bodyToken}`,
        `ACCESS_TOKEN=${bodyToken}`,
        `access%5Ftoken=${bodyToken}`,
      ]) {
        await assertRefused(payment(withLength([['Content-Type', FORM]], body), body), 'GW_TOKEN_IN_QUERY')
      }
    })

    it('refuses a second Content-Type header, whichever comes first', async () => {
      const body = `access_token=${bodyToken}`
      await assertRefused(
        payment(
          withLength(
            [
              ['Content-Type', 'text/plain'],
              ['Content-Type', FORM],
            ],
            body,
          ),
          body,
        ),
        'GW_REQUEST_MALFORMED',
      )
      await assertRefused(
        payment(
          withLength(
            [
              ['Content-Type', FORM],
              ['content-type', 'application/json'],
            ],
            body,
          ),
          body,
        ),
        'GW_REQUEST_MALFORMED',
      )
      await assertRefused(payment(withLength([['Content-Type', `text/plain, ${FORM}`]], body), body), 'GW_REQUEST_MALFORMED')
    })

    it('refuses a form body the gateway cannot read as sent: content-coded or in a charset that hides the field names', async () => {
      const body = `access_token=${bodyToken}`
      await assertRefused(
        payment(
          withLength(
            [
              ['Content-Type', FORM],
              ['Content-Encoding', 'gzip'],
            ],
            body,
          ),
          body,
        ),
        'GW_BODY_ENCODING_UNSUPPORTED',
      )
      await assertRefused(payment(withLength([['Content-Type', `${FORM}; charset=utf-16`]], body), body), 'GW_BODY_ENCODING_UNSUPPORTED')
      await assertRefused(
        payment(
          withLength(
            [
              ['Content-Type', FORM],
              ['Content-Encoding', 'identity'],
              ['Content-Encoding', 'identity'],
            ],
            body,
          ),
          body,
        ),
        'GW_REQUEST_MALFORMED',
      )
      const plain = 'amount=10'
      await assertForwarded(
        payment(
          withLength(
            [
              ['Content-Type', `${FORM}; charset=ISO-8859-1`],
              ['Content-Encoding', 'identity'],
            ],
            plain,
          ),
          plain,
        ),
        plain,
        `${FORM}; charset=ISO-8859-1`,
      )
    })

    it('refuses a multipart access_token field, however its name is written', async () => {
      const dispositions = [
        'form-data; name="access_token"',
        'form-data; name=access_token',
        'form-data; NAME="Access_Token"',
        "form-data; name*=UTF-8''access%5Ftoken",
        'form-data; name="access\\_token"',
        'form-data;\r\n name="access_token"',
      ]
      for (const disposition of dispositions) {
        const body = multipart('xyz', [
          ['form-data; name="amount"', '10'],
          [disposition, bodyToken],
        ])
        await assertRefused(payment(withLength([['Content-Type', 'multipart/form-data; boundary=xyz']], body), body), 'GW_TOKEN_IN_QUERY')
      }
    })

    it('reads a form body only after the headers passed: an unauthenticated form is refused unread and the connection closed', async () => {
      const conn = await connection()
      try {
        // Only the head: the gateway must answer without waiting for the body.
        conn.write(
          payment(
            [
              ['Content-Type', FORM],
              ['Content-Length', '100000'],
            ],
            '',
            '',
          ),
        )
        const response = await conn.response()
        assert.equal(response.status, 401)
        assert.equal(response.json?.code, 'GW_TOKEN_MISSING')
        assert.equal(response.headers.connection, 'close')
        await conn.closed
      } finally {
        conn.socket.destroy()
      }
    })

    it('counts a client that leaves in the middle of its form body as client_closed, and refuses nothing', async () => {
      const admin = `http://127.0.0.1:${gw.gateway.adminPort}/metrics`
      const closedCount = async () => {
        const text = await (await fetch(admin)).text()
        const line = text.split('\n').find((l) => l.startsWith('fapi_gateway_requests_total{route="payments-create",outcome="client_closed"}'))
        return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1))
      }
      const before = await closedCount()
      const refusalsBefore = gw.log.events().length
      const conn = await connection()
      // The 100 shows the checks passed and the gateway is reading the body.
      conn.write(
        payment([
          ['Content-Type', FORM],
          ['Content-Length', '100'],
          ['Expect', '100-continue'],
        ]),
      )
      assert.equal((await conn.response()).status, 100)
      conn.write('amount=10')
      conn.socket.destroy()
      while ((await closedCount()) === before) await new Promise((resolve) => setTimeout(resolve, 20))
      assert.equal(await closedCount(), before + 1)
      assert.equal(gw.log.events().length, refusalsBefore, 'no refusal event')
    })

    it('answers a form body over maxFormBodyBytes 413 and closes the connection', async () => {
      const body = `a=${'b'.repeat(70 * 1024)}`
      const response = await assertRefused(payment(withLength([['Content-Type', FORM]], body), body), 'GW_BODY_TOO_LARGE')
      assert.equal(response.headers.connection, 'close')
    })
  })

  describe('Expect: 100-continue', () => {
    async function expectContinue(request: string, body: string): Promise<RawResponse[]> {
      const conn = await connection()
      try {
        conn.write(request)
        const first = await conn.response()
        if (first.status !== 100) {
          await conn.closed
          return [first]
        }
        conn.write(body)
        return [first, await conn.response()]
      } finally {
        conn.socket.destroy()
      }
    }

    it('is never answered 100 when the headers are refused, and the connection is closed', async () => {
      for (const authorization of [
        '',
        'Bearer not-a-valid-token',
        `Bearer ${await gw.issuer.mint({ x5t: certThumbprint(gw.pki.partnerB), scope: 'payments:write' })}`,
      ]) {
        for (const type of [FORM, 'application/json']) {
          const before = gw.upstream.received.length
          const answers = await expectContinue(
            payment(
              [
                ['Content-Type', type],
                ['Content-Length', '22'],
                ['Expect', '100-continue'],
              ],
              '',
              authorization,
            ),
            'amount=10&currency=EUR',
          )
          assert.equal(answers.length, 1, `no 100 Continue for ${authorization.slice(0, 12)} ${type}`)
          assert.equal(answers[0]!.status, 401)
          assert.equal(answers[0]!.headers.connection, 'close')
          assert.equal(gw.upstream.received.length, before)
        }
      }
    })

    it('is answered 100 once the headers passed, and the body then goes upstream', async () => {
      for (const [type, body] of [
        [FORM, 'amount=10&currency=EUR'],
        ['application/json', '{"amount":"10.00"}'],
      ] as const) {
        const before = gw.upstream.received.length
        const answers = await expectContinue(
          payment([
            ['Content-Type', type],
            ['Content-Length', String(body.length)],
            ['Expect', '100-continue'],
          ]),
          body,
        )
        assert.deepEqual(
          answers.map((a) => a.status),
          [100, 201],
        )
        assert.equal(gw.upstream.received.length, before + 1)
        assert.equal(gw.upstream.received.at(-1)!.body.toString(), body)
        assert.equal(gw.upstream.received.at(-1)!.headers.expect, undefined)
      }
    })
  })
})
