// The runner's transport against real TLS servers built from the gateway's own TLS options:
// raw header control, TLS refusals reported as data, and the handshake probes.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type Server, type ServerOptions } from 'node:https'
import type { AddressInfo } from 'node:net'
import { chainPem, createDevPki, type DevPki } from '../../../dev/pki.ts'
import { createTlsOptions } from '../../../src/server/tls.ts'
import { headerValues, sendHttp, type HttpAnswer } from '../../../src/conformance/http.ts'
import { probeTls, type ProbeEndpoint } from '../../../src/conformance/tls-probe.ts'

let pki: DevPki
const servers: Server[] = []
let requestPort: number
let requirePort: number

async function listen(options: ServerOptions): Promise<number> {
  const server = createServer(options, (req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify(req.rawHeaders))
  })
  server.on('tlsClientError', () => {})
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  servers.push(server)
  return (server.address() as AddressInfo).port
}

before(async () => {
  pki = await createDevPki()
  const settings = {
    certPem: chainPem(pki.server, pki.intermediate),
    keyPem: pki.server.keyPem,
    clientCaPem: pki.root.certPem,
    clientIntermediatesPem: pki.intermediate.certPem,
  }
  requestPort = await listen(createTlsOptions({ ...settings, clientCertificate: 'request' }))
  requirePort = await listen(createTlsOptions({ ...settings, clientCertificate: 'require' }))
})

after(() => {
  for (const server of servers) {
    server.closeAllConnections()
    server.close()
  }
})

const http = () => ({ caPem: pki.root.certPem, servername: undefined, timeoutMs: 5000, now: Date.now })
const endpoint = (port: number): ProbeEndpoint => ({ host: '127.0.0.1', port, servername: undefined, timeoutMs: 5000 })

describe('sendHttp', () => {
  it('sends header names in their case, repeated headers, and a Host', async () => {
    const outcome = await sendHttp(
      {
        method: 'GET',
        url: `https://127.0.0.1:${requestPort}/x?y=1`,
        headers: [
          ['DPOP', 'a'],
          ['dpop', 'b'],
          ['Authorization', 'DPoP t'],
        ],
      },
      http(),
    )
    assert.equal(outcome.kind, 'answer')
    const seen = JSON.parse((outcome as HttpAnswer).body) as string[]
    assert.deepEqual(seen, ['Host', `127.0.0.1:${requestPort}`, 'DPOP', 'a', 'dpop', 'b', 'Authorization', 'DPoP t', 'Connection', 'close'])
    assert.deepEqual(headerValues((outcome as HttpAnswer).rawHeaders, 'Content-Type'), ['application/json'])
  })

  it('reports a TLS refusal as data, with the alert number', async () => {
    const outcome = await sendHttp({ method: 'GET', url: `https://127.0.0.1:${requirePort}/`, headers: [] }, http())
    assert.equal(outcome.kind, 'failure')
    assert.ok(outcome.kind === 'failure' && (outcome.alert === 116 || outcome.reset), JSON.stringify(outcome))
  })

  it('presents a client certificate when given an identity', async () => {
    const identity = { label: 'partner-a', certPem: chainPem(pki.partnerA, pki.intermediate), keyPem: pki.partnerA.keyPem }
    const outcome = await sendHttp({ method: 'GET', url: `https://127.0.0.1:${requirePort}/`, headers: [], identity }, http())
    assert.equal(outcome.kind === 'answer' && outcome.status, 200)
  })

  it('refuses a server certificate it cannot verify', async () => {
    const outcome = await sendHttp({ method: 'GET', url: `https://127.0.0.1:${requestPort}/`, headers: [] }, { ...http(), caPem: pki.untrustedRoot.certPem })
    assert.equal(outcome.kind, 'failure')
  })
})

describe("probeTls against the gateway's TLS options", () => {
  it('sees TLS 1.0 and 1.1 refused with protocol_version', async () => {
    for (const version of ['TLSv1', 'TLSv1.1'] as const) {
      const outcome = await probeTls(endpoint(requestPort), { minVersion: version, maxVersion: version, ciphers: 'DEFAULT@SECLEVEL=0' })
      assert.equal(outcome.kind === 'failure' && outcome.alert, 70, JSON.stringify(outcome))
    }
  })

  it('sees a lone DHE or CBC suite refused with handshake_failure', async () => {
    for (const suite of ['DHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES128-SHA256']) {
      const outcome = await probeTls(endpoint(requestPort), { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: `${suite}@SECLEVEL=0` })
      assert.equal(outcome.kind === 'failure' && outcome.alert, 40, JSON.stringify(outcome))
    }
  })

  it('sees TLS 1.3 chosen when 1.2 and 1.3 are offered, even where a certificate is required', async () => {
    for (const port of [requestPort, requirePort]) {
      const outcome = await probeTls(endpoint(port), { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' })
      assert.deepEqual(outcome.kind === 'connected' && outcome.protocol, 'TLSv1.3')
    }
  })

  it('says so when it cannot make an offer', async () => {
    const outcome = await probeTls(endpoint(requestPort), { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: 'NO-SUCH-CIPHER' })
    assert.equal(outcome.kind, 'unavailable')
  })
})
