// Which settings a reload cannot change, and the configuration a partial reload runs with.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { LoadedConfig } from '../../../src/config/load.ts'
import { gatewayConfigSchema, type GatewayConfig } from '../../../src/config/schema.ts'
import { keepRunningValues, restartRequiredKeys } from '../../../src/reload/restart-keys.ts'

function config(overrides: (raw: Record<string, any>) => void = () => {}): GatewayConfig {
  const raw: Record<string, any> = {
    listener: { publicBaseUrl: 'https://api.bank.example', tls: { certFile: 'server.crt', keyFile: 'server.key', clientCaFile: 'ca.crt' } },
    issuers: [{ name: 'main', issuer: 'https://as.bank.example', jwksUri: 'https://as.bank.example/jwks', audience: 'https://api.bank.example' }],
    upstreams: { 'data-api': { url: 'http://127.0.0.1:8080' } },
  }
  overrides(raw)
  return Object.freeze(gatewayConfigSchema.parse(raw))
}

test('names nothing when only live settings change', () => {
  const running = config()
  const next = config((raw) => {
    raw.listener.publicBaseUrl = 'https://api2.bank.example'
    raw.listener.tls.minRsaBits = 3072
    raw.dpop = { maxAgeSeconds: 30 }
    raw.caches = { verifiedTokens: 5 }
    raw.upstreams['data-api'].connections = 8
    raw.revocation = {}
  })
  assert.deepEqual(restartRequiredKeys(running, running), [])
  assert.deepEqual(restartRequiredKeys(running, next), [])
})

test('names each changed setting that needs a restart, down to the leaf key', () => {
  const next = config((raw) => {
    raw.workers = 2
    raw.listener.port = 9443
    raw.listener.limits = { maxConnections: 5, requestTimeoutMs: 1000 }
    raw.listener.tls.clientCertificate = 'require'
    raw.admin = { port: 9999 }
    raw.replay = { store: 'redis', redis: { url: 'redis://127.0.0.1:6379' } }
    raw.caches = { proofKeys: 5 }
    raw.log = { level: 'debug' }
    raw.events = { stdout: false }
    raw.reload = { pollIntervalMs: 500 }
  })
  assert.deepEqual(restartRequiredKeys(config(), next), [
    'workers',
    'listener.port',
    'listener.limits.maxConnections',
    'listener.limits.requestTimeoutMs',
    'listener.tls.clientCertificate',
    'admin.port',
    'replay.redis',
    'replay.store',
    'caches.proofKeys',
    'log.level',
    'events.stdout',
    'reload.pollIntervalMs',
  ])
})

test('keepRunningValues: the new configuration with the running values of those settings, nothing mutated', () => {
  const running = config()
  const next = config((raw) => {
    raw.listener.port = 9443
    raw.listener.publicBaseUrl = 'https://api2.bank.example'
    raw.events = { stdout: false }
    raw.listener.clientCertificateHeader = { trustedProxies: ['10.0.0.0/8'] }
  })
  const loaded = { file: '/etc/gw.yaml', config: next, routes: [], partners: undefined, readFile: () => '', overrides: [] } satisfies LoadedConfig
  const kept = keepRunningValues(loaded, running).config
  assert.equal(kept.listener.port, running.listener.port)
  assert.equal(kept.events.stdout, true)
  assert.equal(kept.listener.publicBaseUrl, 'https://api2.bank.example')
  assert.deepEqual(kept.listener.clientCertificateHeader?.trustedProxies, ['10.0.0.0/8'])
  assert.equal(next.listener.port, 9443, 'the loaded configuration is left as it was')
  assert.deepEqual(restartRequiredKeys(running, kept), [])
})
