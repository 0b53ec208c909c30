// What an operator sees: an access log line per request (never a token or a path), a warning when
// the upstream fails, and the upstream's reachability in /readyz unless told to ignore it.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { createProof, generateDpopKey, type DpopKey } from '../../src/client/partner-client.ts'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'

interface AccessLine {
  readonly msg: string
  readonly level: number
  readonly access?: {
    method: string
    route: string
    status: number
    durationMs: number
    clientId?: string
    interactionId: string
    sourceIp: string
    completed: boolean
  }
}

function accessLines(gw: TestGateway): AccessLine[] {
  return gw.log.lines.map((line) => JSON.parse(line) as AccessLine).filter((line) => line.msg === 'request' && line.access !== undefined)
}

async function until(what: string, condition: () => boolean | Promise<boolean>, limitMs = 15_000): Promise<void> {
  const deadline = Date.now() + limitMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

async function readyz(gw: TestGateway): Promise<{ status: number; checks: Record<string, boolean> }> {
  const response = await fetch(`http://127.0.0.1:${gw.gateway.adminPort}/readyz`)
  return { status: response.status, checks: ((await response.json()) as { checks: Record<string, boolean> }).checks }
}

async function dpopRequest(gw: TestGateway, key: DpopKey, interactionId: string) {
  const token = await gw.issuer.mint({ jkt: key.jkt, clientId: 'partner-a' })
  const proof = await createProof(key, { htm: 'GET', htu: gw.url('/accounts/1'), accessToken: token })
  const response = await gw.client().send('GET', '/accounts/1', [
    ['authorization', `DPoP ${token}`],
    ['dpop', proof],
    ['x-fapi-interaction-id', interactionId],
  ])
  return { response, token, proof }
}

describe('the access log', () => {
  let gw: TestGateway
  let key: DpopKey

  before(async () => {
    gw = await startTestGateway()
    key = await generateDpopKey('ES256')
  })
  after(async () => {
    await gw?.close()
  })

  it('writes one line per request with route, status, duration, client id and interaction id, and no token, proof or path', async () => {
    const allowedId = randomUUID()
    const { response, token, proof } = await dpopRequest(gw, key, allowedId)
    assert.equal(response.status, 200)
    const refusedId = randomUUID()
    assert.equal((await gw.client().send('GET', '/accounts/4711', [['x-fapi-interaction-id', refusedId]])).status, 401)
    await until('two access lines', () => accessLines(gw).length >= 2)
    const lines = accessLines(gw)
    const allowed = lines.find((l) => l.access!.interactionId === allowedId)!
    assert.equal(allowed.level, 30)
    assert.deepEqual(
      { ...allowed.access!, durationMs: typeof allowed.access!.durationMs },
      {
        method: 'GET',
        route: 'accounts-read',
        status: 200,
        durationMs: 'number',
        clientId: 'partner-a',
        interactionId: allowedId,
        sourceIp: '127.0.0.1',
        completed: true,
      },
    )
    const refused = lines.find((l) => l.access!.interactionId === refusedId)!
    assert.equal(refused.access!.status, 401)
    assert.equal(refused.access!.clientId, undefined)
    const all = gw.log.lines.join('\n')
    assert.ok(!all.includes(token) && !all.includes(proof), 'no token or proof in the log')
    assert.ok(!lines.some((l) => JSON.stringify(l).includes('/accounts/')), 'no path in access lines')
  })
})

describe('the access log, sampled and off', () => {
  it('samples answers under 400 at sampleRate; refusals are always written; enabled: false writes nothing', async () => {
    const key = await generateDpopKey('ES256')
    const sampled = await startTestGateway({ config: { log: { level: 'info', access: { sampleRate: 0 } } } })
    try {
      assert.equal((await dpopRequest(sampled, key, randomUUID())).response.status, 200)
      const refusedId = randomUUID()
      assert.equal((await sampled.client().send('GET', '/accounts/1', [['x-fapi-interaction-id', refusedId]])).status, 401)
      await until('the refusal line', () => accessLines(sampled).some((l) => l.access!.interactionId === refusedId))
      assert.deepEqual(
        accessLines(sampled).map((l) => l.access!.status),
        [401],
        'the 200 was sampled out',
      )
    } finally {
      await sampled.close()
    }
    const off = await startTestGateway({ config: { log: { level: 'info', access: { enabled: false } } } })
    try {
      assert.equal((await off.client().send('GET', '/accounts/1', [])).status, 401)
      assert.equal((await dpopRequest(off, key, randomUUID())).response.status, 200)
      assert.deepEqual(accessLines(off), [])
    } finally {
      await off.close()
    }
  })
})

describe('a failing upstream', () => {
  it('is logged at warn level, and makes /readyz answer 503 until it is reachable again', async () => {
    const gw = await startTestGateway({ config: { admin: { host: '127.0.0.1', port: 0, readiness: { upstreamProbeIntervalMs: 100 } } } })
    try {
      const key = await generateDpopKey('ES256')
      await until('the upstream probed ready', async () => (await readyz(gw)).checks['upstream:data-api'] === true)
      assert.equal((await readyz(gw)).status, 200)
      await gw.upstream.close()
      const { response } = await dpopRequest(gw, key, randomUUID())
      assert.equal(response.json?.code, 'GW_UPSTREAM_UNAVAILABLE')
      await until('the warning', () => gw.log.lines.some((line) => line.includes('"msg":"upstream failed"')))
      const warning = JSON.parse(gw.log.lines.find((line) => line.includes('"msg":"upstream failed"'))!) as { level: number; upstream: string; code: string }
      assert.deepEqual([warning.level, warning.upstream, warning.code], [40, 'data-api', 'GW_UPSTREAM_UNAVAILABLE'])
      await until('/readyz 503', async () => (await readyz(gw)).status === 503)
      assert.equal((await readyz(gw)).checks['upstream:data-api'], false)
    } finally {
      await gw.close()
    }
  })

  it('is left out of /readyz with admin.readiness.upstreams: false', async () => {
    const gw = await startTestGateway({ config: { admin: { host: '127.0.0.1', port: 0, readiness: { upstreams: false } } } })
    try {
      await gw.upstream.close()
      await until('ready with the upstream closed', async () => (await readyz(gw)).status === 200)
      assert.deepEqual((await readyz(gw)).checks, { replay_store: true, issuer_keys: true })
    } finally {
      await gw.close()
    }
  })
})
