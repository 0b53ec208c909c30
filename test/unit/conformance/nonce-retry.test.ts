// Every DPoP call of the runner goes through RFC 9449's nonce retry (at most two retries, as the
// suite), and the nonce checks judge the shape of what the target answered.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type Server } from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { decodeJwt } from 'jose'
import { chainPem, createDevPki, type DevPki } from '../../../dev/pki.ts'
import { createRunContext, type Recorder, type RunContext } from '../../../src/conformance/context.ts'
import { runWideChecks } from '../../../src/conformance/checks/hygiene-checks.ts'
import type { RunnerSettings } from '../../../src/conformance/config.ts'
import { createRedactor } from '../../../src/conformance/redact.ts'
import { createMintedTokenSource } from '../../../src/conformance/tokens.ts'
import { generateDpopKey, validProof, type DpopKey } from '../../../src/conformance/proofs.ts'

type Behaviour = (req: IncomingMessage, res: ServerResponse, nonce: unknown) => void

let pki: DevPki
let server: Server
let port: number
let behaviour: Behaviour
let key: DpopKey
const nonces: unknown[] = []

before(async () => {
  pki = await createDevPki()
  key = await generateDpopKey('ES256')
  server = createServer({ cert: chainPem(pki.server, pki.intermediate), key: pki.server.keyPem }, (req, res) => {
    const proof = req.headers.dpop
    const nonce = typeof proof === 'string' ? decodeJwt(proof).nonce : undefined
    nonces.push(nonce)
    behaviour(req, res, nonce)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  port = (server.address() as AddressInfo).port
})

after(() => {
  server.closeAllConnections()
  server.close()
})

function context(): RunContext {
  const settings: RunnerSettings = {
    mode: 'dpop',
    target: {
      url: `https://127.0.0.1:${port}/accounts/1`,
      method: 'GET',
      body: undefined,
      mediaType: undefined,
      caPem: pki.root.certPem,
      servername: undefined,
    },
    tlsProbe: { host: '127.0.0.1', port },
    clients: { primary: { clientId: undefined, identity: undefined, auth: undefined, dpopAlgorithm: 'ES256' }, second: undefined },
    certificates: {},
    tokens: { source: 'devIssuer' },
    requestTimeoutMs: 5000,
    skip: [],
  }
  return createRunContext({ settings, tokenSource: createMintedTokenSource(async () => 'token'), redactor: createRedactor(), now: Date.now })
}

function call(ctx: RunContext, recorder: Recorder) {
  return ctx.dpopCall(recorder, async (nonce) => {
    const { headers } = ctx.resourceHeaders({
      authorization: 'DPoP token',
      proofs: [await validProof({ key, htm: 'GET', htu: ctx.settings.target.url, accessToken: 'token', nonce, iat: ctx.nowSeconds() })],
    })
    return { label: 'call', method: 'GET', url: ctx.settings.target.url, headers }
  })
}

const nonceChallenge = (res: ServerResponse, status = 401, nonceHeaders: string[] = ['n-1']) => {
  res.writeHead(status, {
    'www-authenticate': 'DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"',
    'dpop-nonce': nonceHeaders,
  })
  res.end()
}

async function nonceShape(ctx: RunContext) {
  const check = runWideChecks().find((c) => c.id === 'nonce-challenge-shape')!
  assert.equal(check.skipReason?.(ctx), undefined)
  return check.run(ctx, { checkId: check.id, exchanges: [] })
}

describe('DPoP nonce retry', () => {
  it('retries once with the nonce the target sent, and keeps the rotated one for the next call', async () => {
    nonces.length = 0
    behaviour = (_req, res, nonce) => {
      if (nonce === undefined) return nonceChallenge(res)
      res.writeHead(200, { 'dpop-nonce': 'n-2' })
      res.end('{}')
    }
    const ctx = context()
    const recorder: Recorder = { checkId: 'test', exchanges: [] }
    const outcome = await call(ctx, recorder)
    assert.equal(outcome.kind === 'answer' && outcome.status, 200)
    assert.deepEqual(nonces, [undefined, 'n-1'])
    assert.equal(recorder.exchanges.length, 2)
    assert.match(recorder.exchanges[1]!.sent.label, /retry 1 with the target's DPoP nonce/)
    assert.equal(ctx.state.nonce, 'n-2', 'RFC 9449 §8.2: the latest nonce is used next')
    await call(ctx, recorder)
    assert.equal(nonces.at(-1), 'n-2')
    assert.equal((await nonceShape(ctx)).verdict, 'pass')
  })

  it('gives up after two retries', async () => {
    nonces.length = 0
    behaviour = (_req, res) => nonceChallenge(res)
    const ctx = context()
    const outcome = await call(ctx, { checkId: 'test', exchanges: [] })
    assert.equal(outcome.kind === 'answer' && outcome.status, 401)
    assert.equal(nonces.length, 3)
  })

  it('the nonce check fails a 400 challenge and a challenge with two DPoP-Nonce headers', async () => {
    behaviour = (_req, res, nonce) => (nonce === undefined ? nonceChallenge(res, 400) : (res.writeHead(200), res.end()))
    let ctx = context()
    await call(ctx, { checkId: 'test', exchanges: [] })
    const badStatus = await nonceShape(ctx)
    assert.equal(badStatus.verdict, 'fail')
    assert.match(badStatus.reason, /status 400, not 401/)

    behaviour = (_req, res) => nonceChallenge(res, 401, ['n-1', 'n-2'])
    ctx = context()
    await call(ctx, { checkId: 'test', exchanges: [] })
    const twoHeaders = await nonceShape(ctx)
    assert.equal(twoHeaders.verdict, 'fail')
    assert.match(twoHeaders.reason, /2 DPoP-Nonce headers/)
    assert.equal(nonces.at(-1), undefined, 'no retry without exactly one valid nonce')
  })
})
