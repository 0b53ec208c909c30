// The pipeline a reload rebuilds: parts whose inputs did not change are kept, unusable TLS
// material is refused with the key that names it.
import { after, before, test } from 'node:test'
import { createAuthorizationServerMetrics, type AuthorizationServerMetrics } from '../../src/authorization-server/metrics.ts'
import { createBindingRegistry } from '../../src/tokens/binding-registry.ts'
import assert from 'node:assert/strict'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { stringify } from 'yaml'
import { checkDpop } from '../../src/checks/dpop/check.ts'
import { ConfigError, loadConfig } from '../../src/config/load.ts'
import { REPO_ROOT } from '../../dev/environment.ts'
import { accessTokenHash, createProof, generateDpopKey } from '../../src/client/partner-client.ts'
import { chainPem, createDevPki, writeDevPki, type DevPki } from '../../dev/pki.ts'
import { createProofKeyCache } from '../../src/checks/dpop/proof-key-cache.ts'
import { createSecurityEvents } from '../../src/observability/events.ts'
import { buildPipeline, partsToClose, PIPELINE_PARTS, type GatewayPipeline, type SharedDeps } from '../../src/pipeline.ts'
import { createMemoryReplayStore } from '../../src/replay/memory-store.ts'
import { createRevocationMetrics, type RevocationMetrics } from '../../src/revocation/metrics.ts'
import { createRevokedTokenList } from '../../src/tokens/revoked-tokens.ts'

const quiet = { info() {}, warn() {}, error() {} }
let pki: DevPki
let dir: string
let shared: SharedDeps
const built: GatewayPipeline[] = []

function writeConfig(change: (raw: Record<string, any>) => void = () => {}): string {
  const raw: Record<string, any> = {
    listener: {
      publicBaseUrl: 'https://api.bank.example',
      tls: { certFile: 'server-chain.crt', keyFile: 'server.key', clientCaFile: 'client-ca.crt', clientIntermediatesFile: 'client-intermediates.crt' },
    },
    // Nothing listens there: the key set never loads, which these tests do not need.
    issuers: [{ name: 'dev', issuer: 'https://as.bank.example', jwksUri: 'https://127.0.0.1:1/jwks', audience: 'https://api.bank.example' }],
    upstreams: { 'data-api': { url: 'http://127.0.0.1:1' } },
    policies: { dir: 'policies' },
  }
  change(raw)
  const file = join(dir, 'gateway.yaml')
  writeFileSync(file, stringify(raw))
  return file
}

function build(previous?: GatewayPipeline) {
  const result = buildPipeline(loadConfig(join(dir, 'gateway.yaml'), {}), shared, previous)
  built.push(result.pipeline)
  return result
}

before(async () => {
  pki = await createDevPki()
  dir = mkdtempSync(join(tmpdir(), 'fapi-pipeline-'))
  writeDevPki(pki, dir)
  mkdirSync(join(dir, 'policies'))
  copyFileSync(join(REPO_ROOT, 'policies', 'accounts.yaml'), join(dir, 'policies', 'accounts.yaml'))
  const replay = createMemoryReplayStore({ maxEntries: 100, now: Date.now })
  const registry = new Registry()
  let revocationMetrics: RevocationMetrics | undefined
  let authorizationServerMetrics: AuthorizationServerMetrics | undefined
  shared = {
    env: {},
    clock: Date.now,
    logger: quiet,
    events: createSecurityEvents({ sinks: [], clock: Date.now }),
    registry,
    replay,
    revokedTokens: createRevokedTokenList(replay),
    proofKeys: createProofKeyCache({ maxEntries: 10 }),
    revocationMetrics: () => (revocationMetrics ??= createRevocationMetrics(registry)),
    bindings: createBindingRegistry(replay),
    authorizationServerMetrics: () => (authorizationServerMetrics ??= createAuthorizationServerMetrics(registry)),
  }
})
after(async () => {
  await Promise.allSettled([...new Set(built.flatMap((p) => p.closeables))].map((part) => part.close()))
  await shared.replay.close()
  rmSync(dir, { recursive: true, force: true })
})

test('built from the same files, every part is kept: caches, pools and connection verdicts survive', () => {
  writeConfig()
  const first = build()
  assert.deepEqual(first.changed.length, PIPELINE_PARTS.length, 'a first build has no previous parts')
  const second = build(first.pipeline)
  assert.deepEqual(second.changed, [])
  for (const key of ['tokens', 'tokenCache', 'forwarder', 'clientCertPolicy', 'headers', 'nonces', 'revocation'] as const) {
    assert.equal(second.pipeline[key], first.pipeline[key], key)
  }
  assert.equal(second.pipeline.authorize.routes, first.pipeline.authorize.routes)
  assert.deepEqual(partsToClose(first.pipeline, second.pipeline), [])
})

test('only the parts whose inputs changed are rebuilt, and only those are closed with the old version', () => {
  writeConfig()
  const first = build()
  writeConfig((raw) => {
    raw.upstreams['data-api'].connections = 8
    raw.revocation = {}
  })
  const second = build(first.pipeline)
  assert.deepEqual(second.changed, ['upstreams', 'revocation'])
  assert.notEqual(second.pipeline.forwarder, first.pipeline.forwarder)
  assert.equal(second.pipeline.tokens, first.pipeline.tokens)
  assert.ok(second.pipeline.ownRevocation)
  assert.deepEqual(partsToClose(first.pipeline, second.pipeline), [first.pipeline.forwarder])

  // A new CA in the bundle: a new client-certificate policy (connections are judged again), same server certificate.
  writeFileSync(join(dir, 'client-ca.crt'), pki.root.certPem + pki.untrustedRoot.certPem)
  const third = build(second.pipeline)
  assert.deepEqual(third.changed, ['clientTrust'])
  assert.notEqual(third.pipeline.clientCertPolicy, second.pipeline.clientCertPolicy)
  assert.equal(third.pipeline.tlsMaterial.clientAnchors.length, 2)
  writeFileSync(join(dir, 'client-ca.crt'), pki.root.certPem)
})

test('a key that does not match the certificate is refused naming both keys; nothing is replaced', () => {
  writeConfig()
  const first = build()
  writeFileSync(join(dir, 'server.key'), pki.partnerA.keyPem)
  try {
    assert.throws(
      () => build(first.pipeline),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError)
        assert.match(error.problems.join('\n'), /gateway\.yaml: listener\.tls\.certFile, keyFile: the private key does not belong to the certificate$/m)
        return true
      },
    )
  } finally {
    writeFileSync(join(dir, 'server.key'), pki.server.keyPem)
  }
})

test('an upstream client certificate: a changed file rebuilds the upstreams only; a mismatched key or no certificate is refused naming the keys, by check-config too', async () => {
  const withClientCert = (raw: Record<string, any>) => {
    raw.upstreams['data-api'] = { url: 'https://127.0.0.1:1', certFile: 'upstream-client.crt', keyFile: 'upstream-client.key' }
  }
  writeFileSync(join(dir, 'upstream-client.crt'), chainPem(pki.partnerA, pki.intermediate))
  writeFileSync(join(dir, 'upstream-client.key'), pki.partnerA.keyPem)
  writeConfig(withClientCert)
  const first = build()
  assert.deepEqual(
    first.pipeline.upstreamClientCertificates.map(({ upstream, chain }) => [upstream, chain.map((c) => c.serialNumber)]),
    [['data-api', [pki.partnerA.cert.serialNumber, pki.intermediate.cert.serialNumber]]],
  )

  writeFileSync(join(dir, 'upstream-client.crt'), pki.partnerB.certPem)
  writeFileSync(join(dir, 'upstream-client.key'), pki.partnerB.keyPem)
  const second = build(first.pipeline)
  assert.deepEqual(second.changed, ['upstreams'])
  assert.notEqual(second.pipeline.forwarder, first.pipeline.forwarder)
  assert.deepEqual(partsToClose(first.pipeline, second.pipeline), [first.pipeline.forwarder])
  assert.equal(second.pipeline.upstreamClientCertificates[0]?.chain[0]?.serialNumber, pki.partnerB.cert.serialNumber)

  writeFileSync(join(dir, 'upstream-client.key'), pki.partnerA.keyPem)
  assert.throws(
    () => build(second.pipeline),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError)
      assert.match(error.problems.join('\n'), /gateway\.yaml: upstreams\.data-api\.certFile, keyFile: the private key does not belong to the certificate$/m)
      return true
    },
  )
  const checkConfig = async () => {
    const { spawnSync } = await import('node:child_process')
    return spawnSync(process.execPath, [join(REPO_ROOT, 'src', 'main.ts'), 'check-config', '--config', join(dir, 'gateway.yaml')], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH },
    })
  }
  const mismatch = await checkConfig()
  assert.equal(mismatch.status, 1, mismatch.stdout)
  assert.match(mismatch.stderr, /upstreams\.data-api\.certFile, keyFile: the private key does not belong to the certificate$/m)
  writeFileSync(join(dir, 'upstream-client.crt'), 'not a certificate\n')
  assert.throws(() => build(second.pipeline), /gateway\.yaml: upstreams\.data-api\.certFile: no certificate in upstream-client\.crt/)
  writeConfig()
})

test('an intermediate in the CA bundle, or a certificate file without a certificate, is refused naming the key', () => {
  writeConfig()
  writeFileSync(join(dir, 'client-ca.crt'), pki.intermediate.certPem)
  try {
    // One line, the file's own key, the subject as one line, the other key by its real name.
    assert.throws(
      () => build(),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError)
        assert.deepEqual(error.problems, [
          `${join(dir, 'gateway.yaml')}: listener.tls.clientCaFile: "CN=fapi-gateway Dev Partner CA, O=fapi-gateway dev" is not a self-signed CA certificate; intermediates go in listener.tls.clientIntermediatesFile`,
        ])
        return true
      },
    )
  } finally {
    writeFileSync(join(dir, 'client-ca.crt'), pki.root.certPem)
  }
  writeFileSync(join(dir, 'client-intermediates.crt'), pki.partnerA.certPem)
  try {
    assert.throws(() => build(), /gateway\.yaml: listener\.tls\.clientIntermediatesFile: "CN=partner-a[^"\n]*" is not a CA certificate$/m)
  } finally {
    writeFileSync(join(dir, 'client-intermediates.crt'), pki.intermediate.certPem)
  }
  writeFileSync(join(dir, 'server.key'), 'not a key\n')
  try {
    assert.throws(() => build(), /gateway\.yaml: listener\.tls\.certFile, keyFile: the private key is not a PEM private key OpenSSL can read$/m)
  } finally {
    writeFileSync(join(dir, 'server.key'), pki.server.keyPem)
  }
  writeFileSync(join(dir, 'server-chain.crt'), 'not a certificate\n')
  try {
    assert.throws(() => build(), /listener\.tls\.certFile: no certificate in server-chain\.crt/)
  } finally {
    writeFileSync(join(dir, 'server-chain.crt'), chainPem(pki.server, pki.intermediate))
  }
})

test('check-config refuses a key that does not match the certificate, as a reload would', async () => {
  const { spawnSync } = await import('node:child_process')
  const file = writeConfig()
  writeFileSync(join(dir, 'server.key'), pki.partnerA.keyPem)
  try {
    const run = spawnSync(process.execPath, [join(REPO_ROOT, 'src', 'main.ts'), 'check-config', '--config', file], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH },
    })
    assert.equal(run.status, 1, run.stdout)
    assert.match(run.stderr, /listener\.tls\.certFile, keyFile: the private key does not belong to the certificate$/m)
    assert.ok(!run.stderr.includes('error:0'), 'no raw OpenSSL error')
  } finally {
    writeFileSync(join(dir, 'server.key'), pki.server.keyPem)
  }
  const ok = spawnSync(process.execPath, [join(REPO_ROOT, 'src', 'main.ts'), 'check-config', '--config', file], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH },
  })
  assert.equal(ok.status, 0, ok.stderr)
})

// RFC 9449 §11.1: a jti must be remembered for as long as any replica would accept its proof. Replica
// clocks may be off by dpop.maxFutureSeconds (the skew the gateway tolerates): one ahead accepts a proof
// first, one behind accepts it last, and the replay key claimed by the first must outlive that.
for (const dpop of [{}, { maxAgeSeconds: 120, maxFutureSeconds: 30 }]) {
  test(`the replay TTL covers a proof's acceptance by replicas dpop.maxFutureSeconds ahead and behind (${JSON.stringify(dpop)})`, async () => {
    writeConfig((raw) => (raw.dpop = dpop))
    const { authorize } = build().pipeline
    const { maxAgeSeconds, maxFutureSeconds } = authorize.dpop
    const skewMs = maxFutureSeconds * 1000
    const key = await generateDpopKey('ES256')
    const iat = 1_760_000_000
    const url = 'https://api.bank.example/accounts/1'
    const proof = await createProof(key, { htm: 'GET', htu: url, accessToken: 'token', iat })
    const input = { method: 'GET', url, proofHeaders: [proof], accessToken: 'token', accessTokenHash: accessTokenHash('token'), boundJkt: key.jkt }
    const acceptedAt = (clockMs: number) => {
      try {
        checkDpop(input, authorize.dpop, authorize.proofKeys, clockMs)
        return true
      } catch {
        return false
      }
    }
    const times: number[] = []
    for (let t = (iat - maxFutureSeconds - 2 * maxFutureSeconds - 2) * 1000; t <= (iat + maxAgeSeconds + maxFutureSeconds + 2) * 1000; t += 125) times.push(t)
    const firstAccepted = times.find((t) => acceptedAt(t + skewMs))!
    const lastAccepted = times.findLast((t) => acceptedAt(t - skewMs))!
    assert.ok(firstAccepted !== undefined && lastAccepted !== undefined)
    assert.ok(
      firstAccepted + authorize.replayTtlMs > lastAccepted,
      `claimed at ${firstAccepted - iat * 1000} ms by the replica ahead, accepted until ${lastAccepted - iat * 1000} ms by the one behind; TTL ${authorize.replayTtlMs} ms`,
    )
  })
}

test("the gateway's own keys: a key added on a reload signs no sooner than publishAheadSeconds after it, one there at start-up per its activeFrom", async () => {
  const { generateKeyPairSync } = await import('node:crypto')
  for (const kid of ['jarm-1', 'jarm-2'])
    writeFileSync(join(dir, `${kid}.pem`), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }))
  writeFileSync(join(dir, 'partners.yaml'), stringify({ partners: [] }))
  const activeFrom = Date.now() + 10 * 60_000
  const withKeys = (kids: string[]) =>
    writeConfig((raw) => {
      raw.issuers[0].facade = { validate: 'jwks' }
      raw.authorizationServer = {
        resourceIssuer: 'dev',
        legacy: { tokenEndpoint: 'https://127.0.0.1:1/token' },
        keys: kids.map((kid) => ({
          kid,
          use: 'sig',
          alg: 'ES256',
          privateKeyFile: `${kid}.pem`,
          ...(kid === 'jarm-2' && { activeFrom: new Date(activeFrom).toISOString() }),
        })),
      }
    })
  try {
    withKeys(['jarm-1'])
    const first = build().pipeline
    withKeys(['jarm-1', 'jarm-2'])
    const reloaded = build(first).pipeline
    assert.equal(reloaded.authorizationServer!.keys!.signer(activeFrom + 60_000).kid, 'jarm-1')
    assert.equal(reloaded.authorizationServer!.keys!.signer(Date.now() + 61 * 60_000).kid, 'jarm-2')
    // A restart with both configured: jarm-2 is taken as published already and signs at its activeFrom.
    const restarted = build().pipeline
    assert.equal(restarted.authorizationServer!.keys!.signer(activeFrom + 60_000).kid, 'jarm-2')
  } finally {
    writeConfig()
  }
})
