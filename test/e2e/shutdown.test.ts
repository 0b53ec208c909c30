// SIGTERM: stop accepting, finish what is in flight, close everything, exit 0.
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import { createPartnerClient, createProof, generateDpopKey } from '../../src/client/partner-client.ts'
import { spawnGateway } from '../support/gateway-process.ts'
import { startTestGateway, testPki } from '../support/gateway.ts'

it('finishes an in-flight request after SIGTERM, then exits 0 and refuses new connections', async () => {
  let arrived!: () => void
  const upstreamReached = new Promise<void>((resolve) => (arrived = resolve))
  const slowUpstream = createServer((_req, res) => {
    arrived()
    setTimeout(() => res.end('{"slow":true}'), 700)
  })
  await new Promise<void>((resolve) => slowUpstream.listen(0, '127.0.0.1', resolve))
  const env = await startTestGateway({
    config: {
      listener: { publicBaseUrl: 'https://api.bank.example' },
      upstreams: { 'data-api': { url: `http://127.0.0.1:${(slowUpstream.address() as AddressInfo).port}` } },
    },
  })
  const gateway = await spawnGateway(env.configFile, { FAPI_GATEWAY__LOG__LEVEL: 'info' })
  const client = createPartnerClient({ baseUrl: `https://127.0.0.1:${gateway.port}`, caPem: (await testPki()).root.certPem })
  try {
    const key = await generateDpopKey('ES256')
    const token = await env.issuer.mint({ jkt: key.jkt })
    const proof = await createProof(key, { htm: 'GET', htu: 'https://api.bank.example/accounts/1', accessToken: token })
    const inFlight = client.send('GET', '/accounts/1', [
      ['authorization', `DPoP ${token}`],
      ['dpop', proof],
    ])
    await upstreamReached
    const exited = gateway.stop()
    await delay(100)
    const fresh = createPartnerClient({ baseUrl: `https://127.0.0.1:${gateway.port}`, caPem: (await testPki()).root.certPem })
    await assert.rejects(fresh.send('GET', '/accounts/1', []), /ECONNREFUSED|other side closed|ECONNRESET/)
    await fresh.close()
    const response = await inFlight
    assert.equal(response.status, 200)
    assert.equal(response.body, '{"slow":true}')
    assert.equal(await exited, 0)
    assert.match(gateway.stdout(), /"msg":"fapi-gateway stopped"/)
  } finally {
    await client.close()
    await env.close()
    await new Promise<void>((resolve) => slowUpstream.close(() => resolve()))
  }
})
