// Rotation without downtime (issue 3, docs/operations.md, "Rotation and reload"): certificates, the client CA
// bundle, policies and configuration reload from their files and on SIGHUP while traffic flows.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync, copyFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer as createHttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { connect } from 'node:tls'
import { setTimeout as delay } from 'node:timers/promises'
import { PassThrough } from 'node:stream'
import { Client } from 'undici'
import { parse, stringify } from 'yaml'
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { publishCrl } from '../../src/ca/crl.ts'
import { initCa } from '../../src/ca/init.ts'
import { issueCertificate } from '../../src/ca/issue.ts'
import { revokeCertificate } from '../../src/ca/revoke.ts'
import { createPartnerClient, type PartnerClient } from '../../src/client/partner-client.ts'
import { REPO_ROOT } from '../../dev/environment.ts'
import { chainPem, type Issued } from '../../dev/pki.ts'
import { spawnGateway, type GatewayProcess } from '../support/gateway-process.ts'
import { certThumbprint, startTestGateway, type TestGateway } from '../support/gateway.ts'
import { securityEventValidator } from '../support/event-schema.ts'
import { startRedisServer, type RedisServer } from '../support/redis.ts'
import { issueDevServerCertificate } from '../support/server-certificates.ts'

/** Replaces a file the way Kubernetes and careful operators do: a new file renamed over the old. */
function replaceFile(path: string, content: string): void {
  writeFileSync(`${path}.next`, content)
  renameSync(`${path}.next`, path)
}

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, limitMs = 15_000): Promise<void> {
  const deadline = Date.now() + limitMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await delay(25)
  }
}

/** The serial of the certificate a fresh TLS handshake presents. */
function presentedSerial(port: number, caPem: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ca: caPem }, () => {
      const serial = socket.getPeerCertificate().serialNumber
      socket.end()
      resolve(serial)
    })
    socket.once('error', reject)
  })
}

function policiesCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fapi-policies-'))
  copyFileSync(join(REPO_ROOT, 'policies', 'accounts.yaml'), join(dir, 'accounts.yaml'))
  return dir
}

const STATEMENTS_POLICY = stringify({
  routes: [{ name: 'statements-read', path: '/statements/**', methods: ['GET'], upstream: 'data-api', scopes: ['accounts:read'], binding: 'dpop-or-mtls' }],
})

describe('rotation without downtime (in-process gateway, files polled every 100 ms)', () => {
  let gw: TestGateway
  let policiesDir: string
  const clients: PartnerClient[] = []

  function partner(identity: Issued, chain: Issued[] = []): PartnerClient {
    const client = createPartnerClient({
      baseUrl: gw.baseUrl,
      caPem: gw.pki.root.certPem,
      identity: { certPem: chainPem(identity, ...chain), keyPem: identity.keyPem },
    })
    clients.push(client)
    return client
  }

  async function bearerFor(identity: Issued): Promise<[string, string][]> {
    return [['authorization', `Bearer ${await gw.issuer.mint({ x5t: certThumbprint(identity) })}`]]
  }

  const actions = (action: string) => gw.log.events().filter((event) => event.event.action === action)

  before(async () => {
    policiesDir = policiesCopy()
    gw = await startTestGateway({ policiesDir, config: { reload: { pollIntervalMs: 100 } } })
  })
  after(async () => {
    await Promise.allSettled(clients.map((client) => client.close()))
    await gw.close()
    rmSync(policiesDir, { recursive: true, force: true })
  })

  it('rotates the server certificate and the client CA bundle while a keep-alive connection stays busy: no request fails, new handshakes see the new certificate', async () => {
    const { pki } = gw
    const port = new URL(gw.baseUrl).port
    const newServer = await issueDevServerCertificate(pki)
    assert.notEqual(newServer.cert.serialNumber, pki.server.cert.serialNumber)
    assert.equal(await presentedSerial(Number(port), pki.root.certPem), pki.server.cert.serialNumber)

    // A partner of a CA not yet trusted (pki.untrusted, issued by untrustedRoot) is refused.
    const newCaPartner = partner(pki.untrusted)
    const newCaHeaders = await bearerFor(pki.untrusted)
    const before = await newCaPartner.send('GET', '/accounts/1', newCaHeaders)
    assert.equal(before.status, 401)
    assert.equal(before.json?.code, 'GW_CLIENT_CERT_INVALID')
    await newCaPartner.close()

    // One keep-alive connection, kept busy for the whole rotation.
    const busy = new Client(gw.baseUrl, {
      connect: { ca: pki.root.certPem, cert: chainPem(pki.partnerA, pki.intermediate), key: pki.partnerA.keyPem, servername: 'localhost' },
      pipelining: 1,
      keepAliveTimeout: 60_000,
    })
    let connects = 0
    let disconnectsWhileBusy = 0
    let stop = false
    busy.on('connect', () => connects++)
    busy.on('disconnect', () => {
      if (!stop) disconnectsWhileBusy++
    })
    const headers = Object.fromEntries(await bearerFor(pki.partnerA))
    const failures: string[] = []
    let completed = 0
    const loop = (async () => {
      while (!stop) {
        try {
          const response = await busy.request({ path: '/accounts/1', method: 'GET', headers })
          const body = await response.body.text()
          if (response.statusCode !== 200) failures.push(`${response.statusCode} ${body}`)
        } catch (error) {
          failures.push(String(error))
        }
        completed++
      }
    })()
    try {
      await waitFor('the busy connection to carry requests', () => completed >= 10)
      const reloadsBefore = actions('config.reloaded').length
      replaceFile(join(gw.dir, 'server-chain.crt'), chainPem(newServer, pki.intermediate))
      replaceFile(join(gw.dir, 'server.key'), newServer.keyPem)
      replaceFile(join(gw.dir, 'client-ca.crt'), pki.root.certPem.trimEnd() + '\n' + pki.untrustedRoot.certPem)
      await waitFor('a reload', () => actions('config.reloaded').length > reloadsBefore)
      const reloaded = actions('config.reloaded').at(-1)!
      assert.match(reloaded.message, /changed: .*serverCertificate/)
      assert.match(reloaded.message, /clientTrust/)
      assert.equal(reloaded.event.reason, 'reload.file_changed')
      assert.equal(await presentedSerial(Number(port), pki.root.certPem), newServer.cert.serialNumber, 'a fresh handshake sees the new certificate')

      const afterReload = completed
      await waitFor('more requests on the busy connection', () => completed >= afterReload + 10)

      // The new CA's partner, on a new connection, is accepted now.
      const accepted = await partner(pki.untrusted).send('GET', '/accounts/1', newCaHeaders)
      assert.equal(accepted.status, 200, accepted.body)
    } finally {
      stop = true
      await loop
      await busy.close()
    }
    assert.deepEqual(failures, [], 'no request on the busy connection failed')
    assert.equal(connects, 1, 'one connection carried every request')
    assert.equal(disconnectsWhileBusy, 0)
    assert.ok(completed >= 20)
    assert.equal(actions('config.refused').length, 0)
  })

  it('judges connections made before a reload that removed a CA again: refused unless the chain still ends at a configured anchor', async () => {
    const { pki } = gw
    const removed = partner(pki.untrusted)
    const kept = partner(pki.partnerA, [pki.intermediate])
    const removedHeaders = await bearerFor(pki.untrusted)
    const keptHeaders = await bearerFor(pki.partnerA)
    // Both connections are open and trusted under the current bundle (root + untrustedRoot).
    assert.equal((await removed.send('GET', '/accounts/1', removedHeaders)).status, 200)
    assert.equal((await kept.send('GET', '/accounts/1', keptHeaders)).status, 200)

    const reloadsBefore = actions('config.reloaded').length
    replaceFile(join(gw.dir, 'client-ca.crt'), pki.root.certPem)
    await waitFor('a reload', () => actions('config.reloaded').length > reloadsBefore)

    const refused = await removed.send('GET', '/accounts/1', removedHeaders)
    assert.equal(refused.status, 401)
    assert.equal(refused.json?.code, 'GW_CLIENT_CERT_INVALID')
    assert.equal((await kept.send('GET', '/accounts/1', keptHeaders)).status, 200)
    const fresh = await partner(pki.untrusted).send('GET', '/accounts/1', removedHeaders)
    assert.equal(fresh.status, 401, 'a new handshake is judged by the new bundle')
  })

  it('applies a new route policy without a restart', async () => {
    const client = partner(gw.pki.partnerA, [gw.pki.intermediate])
    const headers = await bearerFor(gw.pki.partnerA)
    const unknown = await client.send('GET', '/statements/1', headers)
    assert.equal(unknown.status, 404)
    assert.equal(unknown.json?.code, 'GW_ROUTE_UNKNOWN')
    writeFileSync(join(policiesDir, 'statements.yaml'), STATEMENTS_POLICY)
    await waitFor('the new route', async () => (await client.send('GET', '/statements/1', headers)).status === 200)
    assert.equal(gw.upstream.received.at(-1)?.headers['x-fapi-gateway-route'], 'statements-read')
    assert.match(actions('config.reloaded').at(-1)!.message, /changed: routes/)
  })

  it('refuses a configuration file with a syntax error with a config.refused event, and keeps serving with the running configuration', async () => {
    const client = partner(gw.pki.partnerA, [gw.pki.intermediate])
    const headers = await bearerFor(gw.pki.partnerA)
    const original = readFileSync(gw.configFile, 'utf8')
    const refusedBefore = actions('config.refused').length
    const reloadsBefore = actions('config.reloaded').length
    try {
      replaceFile(gw.configFile, `${original}\nlistener: [unclosed\n`)
      await waitFor('config.refused', () => actions('config.refused').length > refusedBefore)
      const refused = actions('config.refused').at(-1)!
      assert.equal(refused.event.reason, 'config.invalid')
      assert.ok(refused.message.includes(gw.configFile), refused.message)
      assert.match(refused.message, /not valid YAML/)
      assert.equal(refused.log.level, 'error')
      assert.equal(actions('config.reloaded').length, reloadsBefore)
      assert.equal((await client.send('GET', '/accounts/1', headers)).status, 200)
      assert.equal((await client.send('GET', '/statements/1', headers)).status, 200, 'the running policies stay')

      // A file that parses but fails validation is refused the same way, naming the key.
      replaceFile(gw.configFile, original.replace(/publicBaseUrl: .*/, 'publicBaseUrl: http://plain.example'))
      await waitFor('a second config.refused', () => actions('config.refused').length > refusedBefore + 1)
      assert.match(actions('config.refused').at(-1)!.message, /listener\.publicBaseUrl: must be an https:\/\/ URL/)
      assert.equal((await client.send('GET', '/accounts/1', headers)).status, 200)
    } finally {
      replaceFile(gw.configFile, original)
    }
    await waitFor('the restored file to load', () => actions('config.reloaded').length > reloadsBefore)
  })

  it('keeps the running value of a setting that needs a restart, names it in config.refused, and applies the rest', async () => {
    const original = readFileSync(gw.configFile, 'utf8')
    const config = parse(original) as { listener: { port: number }; forwarding?: Record<string, unknown> }
    const port = config.listener.port
    config.listener.port = port + 1
    config.forwarding = { ...config.forwarding, stripHeaders: ['x-legacy-*'] }
    const refusedBefore = actions('config.refused').length
    const reloadsBefore = actions('config.reloaded').length
    try {
      replaceFile(gw.configFile, stringify(config))
      await waitFor('the partial reload', () => actions('config.reloaded').length > reloadsBefore)
      const refused = actions('config.refused').slice(refusedBefore)
      assert.equal(refused.length, 1)
      assert.equal(refused[0]!.event.reason, 'config.restart_required')
      assert.match(refused[0]!.message, /restart required for listener\.port: running values kept/)
      assert.match(actions('config.reloaded').at(-1)!.message, /changed: forwarding/)
      const client = partner(gw.pki.partnerA, [gw.pki.intermediate])
      const response = await client.send('GET', '/accounts/1', [...(await bearerFor(gw.pki.partnerA)), ['x-legacy-tenant', 'a']])
      assert.equal(response.status, 200, 'still listening on the running port')
      assert.equal(gw.upstream.received.at(-1)?.headers['x-legacy-tenant'], undefined, 'the new forwarding setting applies')
    } finally {
      replaceFile(gw.configFile, original)
    }
    await waitFor('the restored file to load', () => actions('config.reloaded').length > reloadsBefore + 1)
  })

  it('lets a request in flight finish on the dependencies it started with while a reload replaces them', async (t) => {
    const { pki } = gw
    // An upstream that answers only once the whole body has arrived, and says when a request began.
    let arrived!: () => void
    const began = new Promise<void>((resolve) => (arrived = resolve))
    const slow = createHttpServer((req, res) => {
      arrived()
      let bytes = 0
      req.on('data', (chunk: Buffer) => (bytes += chunk.length))
      req.on('end', () => res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ bytes })))
    })
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve))
    t.after(() => new Promise<void>((resolve) => slow.close(() => resolve())))
    const original = readFileSync(gw.configFile, 'utf8')
    const config = parse(original) as { upstreams: Record<string, Record<string, unknown>>; issuers: Record<string, unknown>[] }
    config.upstreams['slow-api'] = { url: `http://127.0.0.1:${(slow.address() as AddressInfo).port}` }
    const reloads = () => actions('config.reloaded').length
    let count = reloads()
    replaceFile(gw.configFile, stringify(config))
    await waitFor('the upstream to be configured', () => reloads() > count)
    count = reloads()
    writeFileSync(
      join(policiesDir, 'slow.yaml'),
      stringify({ routes: [{ name: 'slow-write', path: '/slow', methods: ['POST'], upstream: 'slow-api', scopes: ['payments:write'], binding: 'mtls' }] }),
    )
    await waitFor('the route', () => reloads() > count)

    const token = await gw.issuer.mint({ x5t: certThumbprint(pki.partnerA), scope: 'payments:write' })
    const client = new Client(gw.baseUrl, {
      connect: { ca: pki.root.certPem, cert: chainPem(pki.partnerA, pki.intermediate), key: pki.partnerA.keyPem, servername: 'localhost' },
    })
    const body = new PassThrough()
    try {
      const answer = client.request({ path: '/slow', method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body })
      body.write('{"amount":')
      // Every check passed and the request is being forwarded, its body still open.
      await began
      config.upstreams['slow-api']!.connections = 16
      config.issuers[0]!.jwksCooldownSeconds = 5
      count = reloads()
      replaceFile(gw.configFile, stringify(config))
      await waitFor('a reload', () => reloads() > count)
      assert.match(actions('config.reloaded').at(-1)!.message, /changed: issuers, upstreams/)
      body.end('"10.00"}')
      const response = await answer
      assert.equal(response.statusCode, 201)
      assert.deepEqual(await response.body.json(), { bytes: 18 })
      // The next request uses the new ones.
      const next = await partner(pki.partnerA, [pki.intermediate]).send('GET', '/accounts/1', await bearerFor(pki.partnerA))
      assert.equal(next.status, 200)
    } finally {
      body.destroy()
      await client.close()
    }
    count = reloads()
    rmSync(join(policiesDir, 'slow.yaml'))
    await waitFor('the route to go', () => reloads() > count)
    count = reloads()
    replaceFile(gw.configFile, original)
    await waitFor('the restored file to load', () => reloads() > count)
  })

  it('reload() on request reports what changed (here nothing), and every reload event matches the documented schema', async () => {
    const result = await gw.gateway.reload()
    assert.equal(result.outcome, 'reloaded')
    assert.deepEqual(result.changed, [])
    const last = actions('config.reloaded').at(-1)!
    assert.equal(last.event.reason, 'reload.requested')
    assert.equal(last.message, 'config.reloaded: reload.requested, no change')
    const validate = securityEventValidator()
    const documents = [...actions('config.reloaded'), ...actions('config.refused')]
    assert.ok(documents.length >= 8)
    for (const document of documents) assert.deepEqual(validate(document), [], JSON.stringify(document))
  })

  it('reports seconds until expiry of the server certificate and each client CA and intermediate', async () => {
    const metrics = await (await fetch(`http://127.0.0.1:${gw.gateway.adminPort}/metrics`)).text()
    const seconds = (label: string) => Number(new RegExp(`fapi_gateway_certificate_expiry_seconds\\{certificate="${label}"\\} (-?\\d+)`).exec(metrics)?.[1])
    // The rotated certificate (90 days) is the one reported.
    const days = seconds('server') / 86_400
    assert.ok(days > 89 && days <= 90, metrics)
    assert.ok(seconds('client-ca:fapi-gateway Dev Root CA') > 0)
    assert.ok(seconds('client-intermediate:fapi-gateway Dev Partner CA') > 0)
    assert.ok(seconds('server-chain:fapi-gateway Dev Partner CA') > 0)
  })
})

describe('CRL files reload when they change', () => {
  let gw: TestGateway
  let caDir: string
  let crlFile: string

  before(async () => {
    caDir = mkdtempSync(join(tmpdir(), 'fapi-crl-ca-'))
    rmSync(caDir, { recursive: true })
    await initCa({ dir: caDir, subject: 'CN=Rotation CRL CA', now: Date.now() })
    crlFile = join(caDir, 'published.crl')
    await publishCrl({ dir: caDir, outFile: crlFile, now: Date.now() })
    gw = await startTestGateway({
      config: {
        listener: { tls: { certFile: 'server-chain.crt', keyFile: 'server.key', clientCaFile: join(caDir, 'ca.crt'), clientCertificate: 'request' } },
        // Without the file watch, this CRL would be read again only after an hour.
        revocation: { cas: [{ name: 'rotation', caFile: join(caDir, 'ca.crt'), sources: ['crl'], crl: { files: [crlFile], refreshIntervalSeconds: 3600 } }] },
        reload: { pollIntervalMs: 100 },
      },
    })
  })
  after(async () => {
    await gw.close()
    rmSync(caDir, { recursive: true, force: true })
  })

  it('refuses a certificate revoked in a newly published CRL file within the poll interval', async () => {
    const issued = await issueCertificate({ dir: caDir, subject: 'CN=crl-partner, O=Partner', now: Date.now() })
    const identity = { certPem: issued.certPem, keyPem: issued.keyPem!, cert: new X509Certificate(issued.certPem), key: createPrivateKey(issued.keyPem!) }
    const client = createPartnerClient({ baseUrl: gw.baseUrl, caPem: gw.pki.root.certPem, identity: { certPem: issued.certPem, keyPem: issued.keyPem! } })
    try {
      const headers: [string, string][] = [['authorization', `Bearer ${await gw.issuer.mint({ x5t: certThumbprint(identity) })}`]]
      assert.equal((await client.send('GET', '/accounts/1', headers)).status, 200)
      await revokeCertificate({ dir: caDir, serial: issued.serial, reason: 'keyCompromise', now: Date.now() })
      const published = await publishCrl({ dir: caDir, now: Date.now() })
      replaceFile(crlFile, published.pem)
      await waitFor('the new CRL to apply', async () => (await client.send('GET', '/accounts/1', headers)).json?.code === 'GW_CLIENT_CERT_REVOKED')
      assert.match(
        gw.log
          .events()
          .filter((e) => e.event.action === 'config.reloaded')
          .at(-1)!.message,
        /no change; files: .*published\.crl/,
      )
    } finally {
      await client.close()
    }
  })
})

describe('SIGHUP reloads a gateway process', () => {
  let env: TestGateway
  let policiesDir: string
  let redis: RedisServer | undefined
  const processes: GatewayProcess[] = []

  before(async () => {
    policiesDir = policiesCopy()
    // Files are not watched (pollIntervalMs 0): only the signal can make the process reload.
    env = await startTestGateway({ policiesDir, config: { reload: { pollIntervalMs: 0 } } })
  })
  after(async () => {
    await Promise.allSettled(processes.map((p) => p.stop()))
    await env.close()
    await redis?.close()
    rmSync(policiesDir, { recursive: true, force: true })
  })

  async function statementsStatus(port: number): Promise<number> {
    const client = createPartnerClient({
      baseUrl: `https://127.0.0.1:${port}`,
      caPem: env.pki.root.certPem,
      identity: { certPem: chainPem(env.pki.partnerA, env.pki.intermediate), keyPem: env.pki.partnerA.keyPem },
    })
    try {
      const token = await env.issuer.mint({ x5t: certThumbprint(env.pki.partnerA) })
      return (await client.send('GET', '/statements/1', [['authorization', `Bearer ${token}`]])).status
    } finally {
      await client.close()
    }
  }

  const sighupReloads = (gateway: GatewayProcess) =>
    gateway
      .stdout()
      .split('\n')
      .filter((line) => line.includes('"action":"config.reloaded"') && line.includes('"reason":"reload.sighup"')).length

  it('applies a new policy on SIGHUP, and not before', async () => {
    rmSync(join(policiesDir, 'statements.yaml'), { force: true })
    const gateway = await spawnGateway(env.configFile)
    processes.push(gateway)
    writeFileSync(join(policiesDir, 'statements.yaml'), STATEMENTS_POLICY)
    assert.equal(await statementsStatus(gateway.port), 404)
    gateway.child.kill('SIGHUP')
    await waitFor('the reload event on stdout', () => sighupReloads(gateway) === 1)
    assert.equal(await statementsStatus(gateway.port), 200)
    assert.equal(gateway.child.exitCode, null, 'SIGHUP does not stop the process')
    assert.equal(await gateway.stop(), 0)
  })

  it('forwards SIGHUP from the primary to every worker', async () => {
    rmSync(join(policiesDir, 'statements.yaml'), { force: true })
    redis = await startRedisServer()
    const gateway = await spawnGateway(env.configFile, {
      FAPI_GATEWAY__WORKERS: '2',
      FAPI_GATEWAY__REPLAY__STORE: 'redis',
      FAPI_GATEWAY__REPLAY__REDIS: `{url: "${redis.url}"}`,
    })
    processes.push(gateway)
    writeFileSync(join(policiesDir, 'statements.yaml'), STATEMENTS_POLICY)
    gateway.child.kill('SIGHUP')
    await waitFor('both workers to reload', () => sighupReloads(gateway) === 2)
    // New connections land on either worker: every one knows the new route.
    for (let i = 0; i < 6; i++) assert.equal(await statementsStatus(gateway.port), 200)
    assert.equal(await gateway.stop(), 0)
  })
})
