// The `revocation` section, the per-route override and load-balancer mode in the
// configuration: defaults, every refusal with its key, and the checker built from it.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { stringify } from 'yaml'
import { ConfigError, loadConfig, type LoadedConfig } from '../../../src/config/load.ts'
import { createDevPki, writeDevPki, type DevPki } from '../../../dev/pki.ts'
import { toClientCert } from '../../../src/x509.ts'
import { GatewayError } from '../../../src/errors.ts'
import { createRevocationFromConfig, revocationWarnings } from '../../../src/revocation/from-config.ts'
import { describeConfigWarning } from '../../../src/config/warnings.ts'

type Tree = Record<string, unknown>

describe('revocation configuration', () => {
  let root: string
  let pki: DevPki
  let cases = 0

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'revocation-config-'))
    pki = await createDevPki()
    writeDevPki(pki, join(root, 'pki'))
  })
  after(() => rmSync(root, { recursive: true, force: true }))

  function write(extra: Tree, options: { listener?: Tree; route?: Tree; files?: Record<string, string> } = {}): string {
    const dir = join(root, `case-${++cases}`)
    mkdirSync(join(dir, 'policies'), { recursive: true })
    for (const [name, text] of Object.entries(options.files ?? {})) writeFileSync(join(dir, name), text)
    writeFileSync(
      join(dir, 'gateway.yaml'),
      stringify({
        listener: {
          host: '127.0.0.1',
          publicBaseUrl: 'https://api.bank.example',
          tls: {
            certFile: '../pki/server-chain.crt',
            keyFile: '../pki/server.key',
            clientCaFile: '../pki/client-ca.crt',
            clientIntermediatesFile: '../pki/client-intermediates.crt',
          },
          ...options.listener,
        },
        issuers: [{ name: 'bank', issuer: 'https://as.bank.example', jwksUri: 'https://as.bank.example/jwks', audience: 'https://api.bank.example' }],
        upstreams: { 'data-api': { url: 'http://127.0.0.1:9000' } },
        ...extra,
      }),
    )
    writeFileSync(
      join(dir, 'policies', 'routes.yaml'),
      stringify({ routes: [{ name: 'accounts', path: '/accounts/**', methods: ['GET'], upstream: 'data-api', ...options.route }] }),
    )
    return join(dir, 'gateway.yaml')
  }

  function problems(file: string): string[] {
    try {
      loadConfig(file, {})
    } catch (error) {
      if (error instanceof ConfigError) return [...error.problems]
      throw error
    }
    assert.fail('expected a ConfigError')
  }

  it('has no revocation checking when the section is absent', () => {
    assert.equal(loadConfig(write({}), {}).config.revocation, undefined)
  })

  it('fills every default of a minimal section', () => {
    const { config } = loadConfig(write({ revocation: {} }), {})
    assert.deepEqual(config.revocation?.default.sources, ['ocsp', 'crl'])
    assert.equal(config.revocation?.default.onUnavailable, 'hard-fail')
    assert.equal(config.revocation?.default.maxStalenessSeconds, 86_400)
    assert.equal(config.revocation?.default.ocsp.hashAlgorithm, 'sha1')
    assert.equal(config.revocation?.default.crl.refreshIntervalSeconds, 300)
    assert.equal(config.revocation?.cacheSize, 10_000)
    assert.deepEqual(config.revocation?.cas, [])
  })

  it('reports each mistake with its key', () => {
    const found = problems(
      write({
        revocation: {
          default: { sources: ['ocsp', 'ocsp'], onUnavailable: 'maybe' },
          cas: [
            { name: 'both', caFile: '../pki/intermediate.crt', subject: 'CN=x' },
            { name: 'Bad Name', subject: 'CN=y', crl: { urls: ['ftp://x'] } },
            { name: 'missing-file', caFile: 'nope.pem' },
          ],
        },
      }),
    )
    const text = found.join('\n')
    assert.match(text, /revocation\.default\.sources: must not name a source twice/)
    assert.match(text, /revocation\.default\.onUnavailable/)
    assert.match(text, /revocation\.cas\.0: needs exactly one of caFile and subject/)
    assert.match(text, /revocation\.cas\.1\.name/)
    assert.match(text, /revocation\.cas\.1\.crl\.urls\.0/)
  })

  it('reports a CA file that cannot be read and a missing deny list', () => {
    const text = problems(write({ revocation: { cas: [{ name: 'missing-file', caFile: 'nope.pem' }], denyListFile: 'deny.yaml' } })).join('\n')
    assert.match(text, /revocation\.cas\.0\.caFile: file "nope\.pem" cannot be read/)
    assert.match(text, /revocation\.denyListFile: file "deny\.yaml" cannot be read/)
  })

  it('accepts a route override and refuses one without a revocation section', () => {
    const loaded = loadConfig(write({ revocation: {} }, { route: { revocation: { onUnavailable: 'soft-fail', maxStalenessSeconds: 600 } } }), {})
    assert.deepEqual(loaded.routes[0]?.revocation, { onUnavailable: 'soft-fail', maxStalenessSeconds: 600 })
    assert.match(
      problems(write({}, { route: { revocation: { onUnavailable: 'soft-fail' } } })).join('\n'),
      /routes\[name=accounts\]\.revocation: set, but the configuration has no revocation section/,
    )
    assert.match(problems(write({ revocation: {} }, { route: { revocation: { sources: ['ldap'] } } })).join('\n'), /revocation\.sources/)
  })

  it('validates load-balancer mode: header name, addresses, and a client CA to check against', () => {
    const { config } = loadConfig(write({}, { listener: { clientCertificateHeader: { name: 'SSL-Client-Cert', trustedProxies: ['10.0.0.0/8', '::1'] } } }), {})
    assert.deepEqual(config.listener.clientCertificateHeader, { name: 'ssl-client-cert', trustedProxies: ['10.0.0.0/8', '::1'] })
    assert.match(
      problems(write({}, { listener: { clientCertificateHeader: { trustedProxies: ['10.0.0.0/33', 'lb.internal'] } } })).join('\n'),
      /trustedProxies\.0: must be an IP address or a CIDR range[\s\S]*trustedProxies\.1/,
    )
    assert.match(problems(write({}, { listener: { clientCertificateHeader: { trustedProxies: [] } } })).join('\n'), /trustedProxies/)
    const noCa = problems(
      write(
        {},
        {
          listener: {
            tls: { certFile: '../pki/server-chain.crt', keyFile: '../pki/server.key', clientCertificate: 'off' },
            clientCertificateHeader: { trustedProxies: ['127.0.0.1'] },
          },
        },
      ),
    )
    assert.match(noCa.join('\n'), /listener\.clientCertificateHeader: needs tls\.clientCaFile/)
  })

  it('lets mTLS routes through with clientCertificate off when the load balancer forwards certificates', () => {
    const tls = { certFile: '../pki/server-chain.crt', keyFile: '../pki/server.key', clientCaFile: '../pki/client-ca.crt', clientCertificate: 'off' }
    loadConfig(write({}, { listener: { tls, clientCertificateHeader: { trustedProxies: ['127.0.0.1'] } }, route: { binding: 'mtls' } }), {})
    assert.match(problems(write({}, { listener: { tls }, route: { binding: 'mtls' } })).join('\n'), /clientCertificate is off/)
  })

  describe('the checker built from configuration', () => {
    function build(loaded: LoadedConfig) {
      return createRevocationFromConfig(loaded, loaded.config.revocation!, {
        now: Date.now,
        logger: { info: () => undefined, warn: () => undefined, error: () => undefined },
        events: { emit: () => undefined },
        registry: new Registry(),
      })
    }
    const partnerA = () => toClientCert(pki.partnerA.cert, [pki.intermediate.cert, pki.root.cert])

    it('matches a CA by subject and by certificate file, and falls back to the default policy', async () => {
      const bySubject = build(
        loadConfig(
          write({
            revocation: {
              default: { sources: ['ocsp'] },
              cas: [{ name: 'dev-partner', subject: 'CN=fapi-gateway Dev Partner CA,O=fapi-gateway dev', sources: [] }],
            },
          }),
          {},
        ),
      )
      await bySubject.check(partnerA(), { nowMs: Date.now() })
      await bySubject.close()
      const byFile = build(
        loadConfig(
          write({ revocation: { default: { sources: ['ocsp'] }, cas: [{ name: 'dev-partner', caFile: '../pki/intermediate.crt', sources: [] }] } }),
          {},
        ),
      )
      await byFile.check(partnerA(), { nowMs: Date.now() })
      await byFile.close()
      // The dev certificates carry no AIA: the default policy (OCSP, hard-fail) cannot answer.
      const fallback = build(
        loadConfig(write({ revocation: { default: { sources: ['ocsp'] }, cas: [{ name: 'other', caFile: '../pki/untrustedRoot.crt', sources: [] }] } }), {}),
      )
      const error = await fallback.check(partnerA(), { nowMs: Date.now() }).catch((e: unknown) => e)
      assert.ok(error instanceof GatewayError && error.code === 'GW_REVOCATION_UNAVAILABLE')
      await fallback.close()
    })

    it('warns about every trusted CA whose certificates would have no configured revocation source', () => {
      const warnings = (revocation: Tree) => revocationWarnings(loadConfig(write({ revocation }), {})).map(describeConfigWarning)
      assert.deepEqual(revocationWarnings(loadConfig(write({}), {})), [], 'no section: nothing is checked, nothing to warn about')
      const everyCa = warnings({})
      assert.equal(everyCa.length, 2, everyCa.join('\n'))
      assert.match(
        everyCa[0]!,
        /^revocation\.default: certificates issued by the trusted CA "CN=fapi-gateway Dev Root CA, O=fapi-gateway dev" \(listener\.tls\.clientCaFile\) are checked with \[ocsp, crl\], but no OCSP responder or CRL is configured for it: .*503 GW_REVOCATION_UNAVAILABLE/,
      )
      assert.match(everyCa[1]!, /"CN=fapi-gateway Dev Partner CA, O=fapi-gateway dev" \(listener\.tls\.clientIntermediatesFile\)/)
      for (const warning of everyCa) assert.ok(!warning.includes('\n'), 'one line each')
      // The partner CA gets a responder: only the root is left; sources: [] says "do not check" on purpose.
      const oneConfigured = warnings({ cas: [{ name: 'dev-partner', caFile: '../pki/intermediate.crt', ocsp: { url: 'http://ocsp.bank.example' } }] })
      assert.equal(oneConfigured.length, 1, oneConfigured.join('\n'))
      assert.match(oneConfigured[0]!, /Dev Root CA/)
      assert.deepEqual(
        warnings({
          default: { sources: [] },
          cas: [{ name: 'dev-partner', caFile: '../pki/intermediate.crt', crl: { urls: ['http://crl.bank.example/partner.crl'] } }],
        }),
        [],
      )
      const namedEntry = warnings({
        default: { sources: [] },
        cas: [{ name: 'dev-partner', subject: 'CN=fapi-gateway Dev Partner CA,O=fapi-gateway dev', sources: ['crl'] }],
      })
      assert.equal(namedEntry.length, 1)
      assert.match(namedEntry[0]!, /^revocation\.cas\[name=dev-partner\]: .* are checked with \[crl\]/)
    })

    it('refuses a CA file that cannot sign CRLs when CRLs are a source', () => {
      const loaded = loadConfig(write({ revocation: { cas: [{ name: 'leaf', caFile: '../pki/partnerA.crt', sources: ['crl'] }] } }), {})
      assert.throws(() => build(loaded), /revocation\.cas\.0\.caFile: .* is not a CA certificate/)
    })
  })
})
