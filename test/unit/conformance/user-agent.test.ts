// The runner's scripted browser: forms read from real-world HTML (attribute order and quoting,
// entities, hidden inputs), and a whole trip against a real HTTPS server: redirects recorded with
// their statuses, cookies kept, the described form filled in and posted, the redirect URI never
// requested, and an unknown page returned as the end.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { chainPem, createDevPki, type DevPki } from '../../../dev/pki.ts'
import { createBrowser, parseForms } from '../../../src/conformance/user-agent.ts'

describe('parseForms', () => {
  it('reads the action, method and every named input of each form', () => {
    const forms = parseForms(
      `<form autocomplete="off" action='/i/abc/login?x=1&amp;y=2' method="post"><input type="hidden" value="login" name="prompt"/><input name=login><input type="password" name="password" value=""></form><form action="/other"></form>`,
    )
    assert.equal(forms.length, 2)
    assert.equal(forms[0]!.action, '/i/abc/login?x=1&y=2')
    assert.equal(forms[0]!.method, 'POST')
    assert.deepEqual(forms[0]!.inputs, { prompt: 'login', login: '', password: '' })
    assert.equal(forms[1]!.method, 'GET')
  })
})

describe('the scripted browser against a real server', () => {
  let pki: DevPki
  let server: Server
  let base: string
  const seen: string[] = []

  before(async () => {
    pki = await createDevPki()
    server = createServer({ cert: chainPem(pki.server, pki.intermediate), key: pki.server.keyPem }, (req, res) => {
      let body = ''
      req.on('data', (chunk: Buffer) => (body += chunk.toString()))
      req.on('end', () => {
        seen.push(`${req.method} ${req.url} cookie=${req.headers.cookie ?? ''} ${body}`)
        if (req.url === '/start') {
          res.writeHead(303, { location: '/login', 'set-cookie': 'sid=abc; Path=/; Secure' })
          res.end()
          return
        }
        if (req.url === '/login' && req.method === 'GET') {
          res.writeHead(200, { 'content-type': 'text/html' })
          res.end('<form method="post" action="/login"><input type="hidden" name="csrf" value="t1"><input name="user"><input name="pass"></form>')
          return
        }
        if (req.url === '/login' && req.method === 'POST') {
          const ok = req.headers.cookie === 'sid=abc' && body === 'csrf=t1&user=alice&pass=s3cret'
          res.writeHead(ok ? 302 : 401, ok ? { location: 'https://partner.example/cb?code=c1&state=s' } : {})
          res.end()
          return
        }
        res.writeHead(404, { 'content-type': 'text/html' })
        res.end('<h1>not found</h1>')
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  after(() => new Promise<void>((resolve) => server.close(() => resolve())))

  const browser = (fields: Record<string, string>) =>
    createBrowser({ caPem: pki.root.certPem, timeoutMs: 5000, now: Date.now, forms: [{ page: '/login$', form: 'name="csrf"', fields }] })

  it('follows redirects, keeps cookies, fills in the described form and stops at the redirect URI', async () => {
    const result = await browser({ user: 'alice', pass: 's3cret' }).browse(`${base}/start`, { stopAt: 'https://partner.example/cb' })
    assert.equal(result.end.kind, 'redirect')
    assert.equal(result.end.kind === 'redirect' && result.end.url.searchParams.get('code'), 'c1')
    assert.deepEqual(
      result.steps.map((s) => `${s.request.method} ${new URL(s.request.url).pathname} ${s.outcome.kind === 'answer' ? s.outcome.status : 'failure'}`),
      ['GET /start 303', 'GET /login 200', 'POST /login 302'],
    )
    assert.ok(!seen.some((line) => line.includes('/cb')), 'the redirect URI is never requested')
  })

  it('ends on the page that answers the form with an error, and on a page no description matches', async () => {
    const refused = await browser({ user: 'alice', pass: 'wrong' }).browse(`${base}/start`, { stopAt: 'https://partner.example/cb' })
    assert.equal(refused.end.kind === 'page' && refused.end.status, 401)
    const unknown = await browser({}).browse(`${base}/nowhere`, { stopAt: 'https://partner.example/cb' })
    assert.equal(unknown.end.kind === 'page' && unknown.end.status, 404)
  })
})
