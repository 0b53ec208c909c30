import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { ConfigError, loadConfig, type LoadedConfig } from '../../../src/config/load.ts'
import { createDevPki, writeDevPki } from '../../../dev/pki.ts'

const PROJECT = join(import.meta.dirname, '..', '..', '..')

let root: string
let cases = 0

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'fapi-gateway-config-'))
  writeDevPki(await createDevPki(), join(root, 'pki'))
})

after(() => {
  rmSync(root, { recursive: true, force: true })
})

type Tree = Record<string, unknown>

/** A configuration that loads: file paths are relative to the configuration file. */
function validConfig(): Tree {
  return {
    listener: {
      host: '127.0.0.1',
      publicBaseUrl: 'https://api.bank.example',
      tls: {
        certFile: '../pki/server-chain.crt',
        keyFile: '../pki/server.key',
        clientCaFile: '../pki/client-ca.crt',
        clientIntermediatesFile: '../pki/client-intermediates.crt',
      },
    },
    issuers: [
      { name: 'bank', issuer: 'https://as.bank.example', jwksUri: 'https://as.bank.example/jwks', audience: 'https://api.bank.example' },
      { name: 'fintech', issuer: 'https://as.fintech.example', jwksUri: 'https://as.fintech.example/jwks', audience: 'https://api.bank.example' },
    ],
    upstreams: { 'data-api': { url: 'http://127.0.0.1:9000' } },
  }
}

function validPolicies(): Record<string, unknown> {
  return {
    'accounts.yaml': {
      routes: [{ name: 'accounts-read', path: '/accounts/**', methods: ['GET', 'HEAD'], upstream: 'data-api', scopes: ['accounts:read'] }],
    },
    'payments.yaml': {
      routes: [
        { name: 'payments-create', path: '/payments', methods: ['POST'], upstream: 'data-api', scopes: ['payments:write'], binding: 'mtls', issuers: ['bank'] },
      ],
    },
  }
}

interface Case {
  readonly dir: string
  readonly file: string
  policy(name: string): string
}

/** Writes gateway.yaml and policies/ into a fresh directory; a string is written as is. */
function writeCase(config: Tree | string, policies: Record<string, unknown> = validPolicies()): Case {
  const dir = join(root, `case-${++cases}`)
  mkdirSync(join(dir, 'policies'), { recursive: true })
  const file = join(dir, 'gateway.yaml')
  writeFileSync(file, typeof config === 'string' ? config : stringify(config))
  for (const [name, content] of Object.entries(policies)) {
    writeFileSync(join(dir, 'policies', name), typeof content === 'string' ? content : stringify(content))
  }
  return { dir, file, policy: (name) => join(dir, 'policies', name) }
}

/** The problems of the ConfigError that loading throws; fails if loading succeeds. */
function problemsOf(file: string, env: NodeJS.ProcessEnv = {}): readonly string[] {
  try {
    loadConfig(file, env)
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error))
    for (const problem of error.problems) assert.ok(error.message.includes(problem), 'the message lists every problem')
    return error.problems
  }
  assert.fail(`${file} loaded, but it should have been refused`)
}

/** Exactly one problem, which starts with `file: keyPath: ` and matches `what`. */
function assertOneProblem(problems: readonly string[], file: string, keyPath: string, what: RegExp): void {
  assert.equal(problems.length, 1, problems.join('\n'))
  assertProblem(problems, file, keyPath, what)
}

function assertProblem(problems: readonly string[], file: string, keyPath: string, what: RegExp): void {
  const prefix = `${file}: ${keyPath}`
  const found = problems.find((p) => p.startsWith(prefix) && what.test(p.slice(prefix.length)))
  assert.ok(found, `no problem "${prefix}... ${what}" among:\n  ${problems.join('\n  ')}`)
}

function edit(change: (config: Tree & { listener: Tree & { tls: Tree } }) => void): Tree {
  const config = validConfig() as Tree & { listener: Tree & { tls: Tree } }
  change(config)
  return config
}

test('a valid configuration loads with defaults applied and policies in file order', () => {
  const { file, policy } = writeCase(validConfig())
  const loaded = loadConfig(file, {})
  assert.equal(loaded.file, file)
  const { config } = loaded
  assert.equal(config.listener.port, 8443)
  assert.equal(config.listener.host, '127.0.0.1')
  assert.equal(config.listener.tls.clientCertificate, 'request')
  assert.equal(config.listener.tls.minRsaBits, 2048)
  assert.equal(config.listener.limits.maxHeaderBytes, 16 * 1024)
  assert.equal(config.listener.limits.maxFormBodyBytes, 64 * 1024)
  assert.deepEqual(config.admin, {
    host: '127.0.0.1',
    port: 9090,
    tokenEnv: 'FAPI_GATEWAY_ADMIN_TOKEN',
    readiness: { upstreams: true, upstreamProbeIntervalMs: 2000, upstreamProbeTimeoutMs: 1000 },
  })
  assert.deepEqual(config.issuers[0]!.algorithms, ['PS256', 'ES256', 'EdDSA'])
  assert.equal(config.issuers[0]!.requireTyp, true)
  assert.equal(config.issuers[0]!.clockToleranceSeconds, 10)
  assert.equal(config.upstreams['data-api']!.connectTimeoutMs, 2_000)
  assert.equal(config.dpop.maxAgeSeconds, 60)
  assert.equal(config.dpop.nonce.mode, 'off')
  assert.equal(config.replay.store, 'memory')
  assert.equal(config.forwarding.stripAuthorization, true)
  assert.equal(config.forwarding.rewriteDpopToBearer, false)
  assert.equal(config.policies.dir, 'policies')
  assert.equal(config.log.level, 'info')
  assert.deepEqual(config.log.access, { enabled: true, sampleRate: 1 })

  assert.deepEqual(
    loaded.routes.map((r) => [r.name, r.source]),
    [
      ['accounts-read', policy('accounts.yaml')],
      ['payments-create', policy('payments.yaml')],
    ],
  )
  const accounts = loaded.routes[0]!
  assert.equal(accounts.binding, 'dpop-or-mtls')
  assert.equal(accounts.clientCertificate, undefined)
  assert.deepEqual(accounts.scopes, ['accounts:read'])
  assert.deepEqual(loaded.routes[1]!.issuers, ['bank'])

  assert.match(loaded.readFile(config.listener.tls.certFile), /^-----BEGIN CERTIFICATE-----/)
})

test('forwarding: underscore headers refused, overrides blocked and Location rewritten by default; strip lists must hold header names', () => {
  const { forwarding } = loadConfig(writeCase(validConfig()).file, {}).config
  assert.equal(forwarding.underscoreHeaders, 'refuse')
  assert.equal(forwarding.blockOverrides, true)
  assert.deepEqual(forwarding.stripResponseHeaders, [])
  assert.equal(forwarding.rewriteLocation, true)
  const set = (values: Tree) => writeCase({ ...validConfig(), forwarding: values }).file
  assert.deepEqual(loadConfig(set({ stripResponseHeaders: ['X-Internal-*', 'X-Trace'] }), {}).config.forwarding.stripResponseHeaders, [
    'x-internal-*',
    'x-trace',
  ])
  const unknownMode = set({ underscoreHeaders: 'ignore' })
  assertOneProblem(problemsOf(unknownMode), unknownMode, 'forwarding.underscoreHeaders: ', /refuse.*drop.*allow/)
  for (const key of ['stripResponseHeaders', 'stripHeaders']) {
    const file = set({ [key]: ['x-ok', 'bad name'] })
    assertOneProblem(problemsOf(file), file, `forwarding.${key}.1: `, /header name/)
  }
})

test('the loaded configuration is deep-frozen', () => {
  const loaded: LoadedConfig = loadConfig(writeCase(validConfig()).file, {})
  for (const value of [
    loaded,
    loaded.config,
    loaded.config.listener,
    loaded.config.listener.tls,
    loaded.config.listener.limits,
    loaded.config.issuers,
    loaded.config.issuers[0],
    loaded.config.issuers[0]!.algorithms,
    loaded.config.upstreams,
    loaded.config.upstreams['data-api'],
    loaded.config.dpop.nonce,
    loaded.routes,
    loaded.routes[0],
    loaded.routes[0]!.methods,
  ]) {
    assert.ok(Object.isFrozen(value), JSON.stringify(value)?.slice(0, 60))
  }
  assert.throws(() => {
    ;(loaded.config.listener as { port: number }).port = 1
  }, TypeError)
  assert.throws(() => {
    ;(loaded.config.issuers as unknown as unknown[]).push({})
  }, TypeError)
  assert.throws(() => {
    ;(loaded.routes[0] as { binding: string }).binding = 'none'
  }, TypeError)
})

test('environment overrides set keys by path, parsed as YAML', () => {
  const { file } = writeCase(validConfig())
  const loaded = loadConfig(file, {
    FAPI_GATEWAY__LISTENER__PORT: '9443',
    FAPI_GATEWAY__LISTENER__PUBLIC_BASE_URL: 'https://gateway.bank.example:9443',
    FAPI_GATEWAY__REPLAY__STORE: 'memory',
    FAPI_GATEWAY__DPOP__NONCE__MODE: 'required',
    FAPI_GATEWAY__LOG__LEVEL: 'warn',
    FAPI_GATEWAY_ADMIN_TOKEN: 'not-an-override',
    UNRELATED: 'x',
  })
  assert.equal(loaded.config.listener.port, 9443)
  assert.equal(loaded.config.listener.publicBaseUrl, 'https://gateway.bank.example:9443')
  assert.equal(loaded.config.dpop.nonce.mode, 'required')
  assert.equal(loaded.config.log.level, 'warn')
  // Keys the environment did not name keep the file's values.
  assert.equal(loaded.config.listener.host, '127.0.0.1')
  assert.equal(loaded.config.listener.tls.certFile, '../pki/server-chain.crt')
})

test('an environment override is validated like the file', () => {
  const { file } = writeCase(validConfig())
  // Blamed on the variable that set the value, not on the file.
  assertOneProblem(
    problemsOf(file, { FAPI_GATEWAY__LISTENER__PORT: 'https' }),
    'FAPI_GATEWAY__LISTENER__PORT (environment)',
    'listener.port: ',
    /^must be a number, not the text "https"$/,
  )
  assertOneProblem(
    problemsOf(file, { FAPI_GATEWAY__LISTENER__PUBLIC_BASE_URL: 'http://api.bank.example' }),
    'FAPI_GATEWAY__LISTENER__PUBLIC_BASE_URL (environment)',
    'listener.publicBaseUrl: ',
    /https:\/\//,
  )
  assertOneProblem(
    problemsOf(file, { FAPI_GATEWAY__LISTENER__PROT: '1' }),
    'FAPI_GATEWAY__LISTENER__PROT (environment)',
    'listener.prot: ',
    /^unknown key; did you mean "port"\?$/,
  )
})

test('an unknown key (a typo) is reported with its path and name', () => {
  const { file } = writeCase(
    edit((c) => {
      c.listener.tls.clientCertifcate = 'require'
    }),
  )
  assertOneProblem(problemsOf(file), file, 'listener.tls.clientCertifcate: ', /^unknown key; did you mean "clientCertificate"\?$/)
  const far = writeCase(
    edit((c) => {
      c.listener.tls.colour = 'blue'
    }),
  )
  assertOneProblem(problemsOf(far.file), far.file, 'listener.tls.colour: ', /^unknown key$/)
})

test('a misspelt required key is one problem, the unknown key with the one it was meant to be, not also "required"', () => {
  const { file } = writeCase(
    edit((c) => {
      c.listener.publicBaseURL = c.listener.publicBaseUrl
      delete c.listener.publicBaseUrl
    }),
  )
  assertOneProblem(problemsOf(file), file, 'listener.publicBaseURL: ', /^unknown key; did you mean "publicBaseUrl"\?$/)
  const missing = writeCase(
    edit((c) => {
      delete c.listener.publicBaseUrl
    }),
  )
  assertOneProblem(problemsOf(missing.file), missing.file, 'listener.publicBaseUrl: ', /^is required$/)
})

test('an unknown key in a policy file is reported with the policy file and route index', () => {
  const { file, policy } = writeCase(validConfig(), {
    'accounts.yaml': { routes: [{ name: 'a', path: '/a', methods: ['GET'], upstream: 'data-api', scope: ['accounts:read'] }] },
  })
  assertOneProblem(problemsOf(file), policy('accounts.yaml'), 'routes.0.scope: ', /^unknown key; did you mean "scopes"\?$/)
})

test('a value of the wrong type is reported with its path and the expected type', () => {
  const { file } = writeCase(
    edit((c) => {
      c.listener.port = '8443a'
    }),
  )
  assertOneProblem(problemsOf(file), file, 'listener.port: ', /^must be a number, not the text "8443a"$/)
  const bad = writeCase(
    edit((c) => {
      c.issuers = [{ ...(validConfig().issuers as Tree[])[0], requireTyp: 'yes' }]
    }),
  )
  assertOneProblem(problemsOf(bad.file), bad.file, 'issuers.0.requireTyp: ', /^must be true or false, not the text "yes"$/)
})

test('an http:// publicBaseUrl, or one with a query or a path, is refused', () => {
  const { file } = writeCase(
    edit((c) => {
      c.listener.publicBaseUrl = 'http://api.bank.example'
    }),
  )
  assertOneProblem(problemsOf(file), file, 'listener.publicBaseUrl: ', /must be an https:\/\/ URL/)
  const withQuery = writeCase(
    edit((c) => {
      c.listener.publicBaseUrl = 'https://api.bank.example/?x=1'
    }),
  )
  assertOneProblem(problemsOf(withQuery.file), withQuery.file, 'listener.publicBaseUrl: ', /query or fragment/)
  // The path as received is added to it for every DPoP htu: a base path would make every proof fail.
  const withPath = writeCase(
    edit((c) => {
      c.listener.publicBaseUrl = 'https://api.bank.example/api'
    }),
  )
  assertOneProblem(problemsOf(withPath.file), withPath.file, 'listener.publicBaseUrl: ', /must be an origin only .*without a path/)
  for (const accepted of ['https://api.bank.example', 'https://api.bank.example/', 'https://api.bank.example:8443']) {
    loadConfig(
      writeCase(
        edit((c) => {
          c.listener.publicBaseUrl = accepted
        }),
      ).file,
      {},
    )
  }
})

test('an upstream url with a user, a query or a fragment is refused at start-up, naming the key', () => {
  for (const url of ['http://user:pw@127.0.0.1:9000', 'http://127.0.0.1:9000/v1?x=1', 'http://127.0.0.1:9000/#top']) {
    const { file } = writeCase(
      edit((c) => {
        c.upstreams = { 'data-api': { url } }
      }),
    )
    assertOneProblem(problemsOf(file), file, 'upstreams.data-api.url: ', /^must be an origin with an optional base path \(no user, query or fragment\)$/)
  }
  loadConfig(writeCase(edit((c) => void (c.upstreams = { 'data-api': { url: 'https://accounts.internal:8443/v1' } }))).file, {})
})

test('a configuration without issuers is refused', () => {
  const missing = writeCase(
    edit((c) => {
      delete c.issuers
    }),
  )
  assertOneProblem(problemsOf(missing.file), missing.file, 'issuers: ', /^is required$/)
  const empty = writeCase(
    edit((c) => {
      c.issuers = []
    }),
  )
  assertOneProblem(problemsOf(empty.file), empty.file, 'issuers: ', /at least 1|>=1|too small/i)
  const neither = writeCase(
    edit((c) => {
      c.issuers = [{ name: 'bank', issuer: 'https://as.bank.example', audience: 'a' }]
    }),
  )
  assertOneProblem(problemsOf(neither.file), neither.file, 'issuers.0: ', /needs jwksUri .* or introspection/)
})

test('introspection flood bounds: defaults, and mistakes named by their key', () => {
  const introspection = { endpoint: 'https://as.bank.example/introspect', clientId: 'gw', auth: { method: 'client_secret_basic', secretEnv: 'SECRET' } }
  const withIntrospection = (extra: Record<string, unknown>) =>
    writeCase(
      edit((c) => {
        c.issuers = [{ name: 'bank', issuer: 'https://as.bank.example', audience: 'a', introspection: { ...introspection, ...extra } }]
      }),
    )
  const ok = loadConfig(withIntrospection({}).file, { SECRET: 's' }).config.issuers[0]!.introspection!
  assert.deepEqual(
    [ok.connections, ok.maxPendingPerClient, ok.maxQueued, ok.maxQueueWaitMs, ok.inactiveCacheTtlSeconds, ok.timeoutMs],
    [16, 8, 64, 1000, 10, 5000],
  )
  assert.deepEqual(ok.tokenShape, { minLength: 1, maxLength: 4096, charset: 'b64token' })
  const shape = withIntrospection({ tokenShape: { minLength: 50, maxLength: 40 } })
  assertOneProblem(problemsOf(shape.file, { SECRET: 's' }), shape.file, 'issuers.0.introspection.tokenShape.minLength: ', /must not exceed maxLength/)
  const prefix = withIntrospection({ tokenShape: { prefix: 'at "' } })
  assertOneProblem(problemsOf(prefix.file, { SECRET: 's' }), prefix.file, 'issuers.0.introspection.tokenShape.prefix: ', /b64token/)
  const pool = withIntrospection({ connections: 0 })
  assertOneProblem(problemsOf(pool.file, { SECRET: 's' }), pool.file, 'issuers.0.introspection.connections: ', /too small|>0|positive/i)
})

test('a certFile that cannot be read is reported with its key and path', () => {
  const { file } = writeCase(
    edit((c) => {
      c.listener.tls.certFile = 'no-such-cert.pem'
    }),
  )
  assertOneProblem(problemsOf(file), file, 'listener.tls.certFile: ', /file "no-such-cert\.pem" cannot be read \(ENOENT\)/)
  const directory = writeCase(
    edit((c) => {
      c.listener.tls.keyFile = '../pki'
    }),
  )
  assertOneProblem(problemsOf(directory.file), directory.file, 'listener.tls.keyFile: ', /file "\.\.\/pki" cannot be read \(EISDIR\)/)
})

test('an upstream client certificate needs both certFile and keyFile, an https url, and readable files', () => {
  const upstream = (settings: Tree) =>
    edit((c) => {
      c.upstreams = { 'data-api': { url: 'https://ledger.internal:8443', ...settings } }
    })
  const certOnly = writeCase(upstream({ certFile: '../pki/partnerA.crt' }))
  assertOneProblem(problemsOf(certOnly.file), certOnly.file, 'upstreams.data-api.keyFile: ', /needs keyFile: certFile and keyFile go together/)
  const keyOnly = writeCase(upstream({ keyFile: '../pki/partnerA.key' }))
  assertOneProblem(problemsOf(keyOnly.file), keyOnly.file, 'upstreams.data-api.certFile: ', /needs certFile: certFile and keyFile go together/)
  const plainHttp = writeCase(upstream({ url: 'http://ledger.internal:8080', certFile: '../pki/partnerA.crt', keyFile: '../pki/partnerA.key' }))
  assertOneProblem(problemsOf(plainHttp.file), plainHttp.file, 'upstreams.data-api.certFile: ', /a client certificate needs an https:\/\/ url/)
  const missing = writeCase(upstream({ certFile: '../pki/partnerA.crt', keyFile: 'no-such.key' }))
  assertOneProblem(problemsOf(missing.file), missing.file, 'upstreams.data-api.keyFile: ', /file "no-such\.key" cannot be read \(ENOENT\)/)
  const good = writeCase(upstream({ certFile: '../pki/partnerA.crt', keyFile: '../pki/partnerA.key' }))
  assert.equal(loadConfig(good.file, {}).config.upstreams['data-api']?.certFile, '../pki/partnerA.crt')
})

test('clientCaFile is required while clientCertificate is request or require, not when off', () => {
  for (const mode of ['request', 'require', undefined]) {
    const { file } = writeCase(
      edit((c) => {
        delete c.listener.tls.clientCaFile
        if (mode) c.listener.tls.clientCertificate = mode
      }),
    )
    assertOneProblem(problemsOf(file), file, 'listener.tls.clientCaFile: ', /required unless listener\.tls\.clientCertificate is off/)
  }
  const off = writeCase(
    edit((c) => {
      delete c.listener.tls.clientCaFile
      c.listener.tls.clientCertificate = 'off'
    }),
    { 'dpop.yaml': { routes: [{ name: 'd', path: '/d', methods: ['GET'], upstream: 'data-api', binding: 'dpop' }] } },
  )
  assert.equal(loadConfig(off.file, {}).config.listener.tls.clientCertificate, 'off')
})

test('a route that accepts certificate-bound tokens while client certificates are off is refused', () => {
  const { file, policy } = writeCase(
    edit((c) => {
      c.listener.tls.clientCertificate = 'off'
    }),
  )
  const problems = problemsOf(file)
  assertProblem(
    problems,
    policy('accounts.yaml'),
    'routes[name=accounts-read].binding: ',
    /"dpop-or-mtls" accepts certificate-bound tokens, but listener\.tls\.clientCertificate is off/,
  )
  assertProblem(problems, policy('payments.yaml'), 'routes[name=payments-create].binding: ', /"mtls"/)
})

test('a YAML syntax error is reported with its line', () => {
  const tab = writeCase('listener:\n  host: 127.0.0.1\n\tport: 8443\n')
  const problems = problemsOf(tab.file)
  assert.equal(problems.length, 1, problems.join('\n'))
  assert.equal(problems[0], `${tab.file}: not valid YAML at line 3, column 1: Tabs are not allowed as indentation (in "port: 8443")`)

  // A key given twice is an error, not a silent override.
  const twice = writeCase('listener:\n  host: 127.0.0.1\n  port: 8443\n  port: 9443\n')
  const twiceProblems = problemsOf(twice.file)
  assert.equal(twiceProblems.length, 1, twiceProblems.join('\n'))
  assert.equal(twiceProblems[0], `${twice.file}: not valid YAML at line 4, column 3: Map keys must be unique (in "port: 9443")`)

  // One line, the offending text quoted, never yaml's dangling "column N:" and its multi-line excerpt.
  const nested = writeCase('listener:\n  port: 8443: x\n')
  const nestedProblems = problemsOf(nested.file)
  assert.equal(nestedProblems.length, 1, nestedProblems.join('\n'))
  assert.match(nestedProblems[0]!, /: not valid YAML at line 2, column \d+: Nested mappings are not allowed in compact mappings \(in "port: 8443: x"\)$/)
  assert.ok(!nestedProblems[0]!.includes('\n'))

  const badPolicy = writeCase(validConfig(), { 'accounts.yaml': 'routes:\n  - name: a\n    path: /a\n    methods: [GET\n' })
  const policyProblems = problemsOf(badPolicy.file)
  assert.equal(policyProblems.length, 1, policyProblems.join('\n'))
  assert.ok(policyProblems[0]!.startsWith(`${badPolicy.policy('accounts.yaml')}: not valid YAML at line `), policyProblems[0])
})

test('a configuration file that is not a mapping, or cannot be read, is refused', () => {
  const list = writeCase('- a\n- b\n')
  assertOneProblem(problemsOf(list.file), list.file, '(top level): ', /must be a mapping/)
  const emptyFile = writeCase('')
  assertOneProblem(problemsOf(emptyFile.file), emptyFile.file, '', /cannot be read|mapping/)
  const missing = join(root, 'no-such-dir', 'gateway.yaml')
  assertOneProblem(problemsOf(missing), missing, '', /^cannot be read \(ENOENT\)/)
})

test('a policy naming an unknown upstream is refused, naming the policy file, route and the upstreams there are', () => {
  const { file, policy } = writeCase(validConfig(), {
    'accounts.yaml': { routes: [{ name: 'accounts-read', path: '/accounts/**', methods: ['GET'], upstream: 'data-apii' }] },
  })
  assertOneProblem(
    problemsOf(file),
    policy('accounts.yaml'),
    'routes[name=accounts-read].upstream: ',
    /"data-apii" is not one of the configured upstreams \[data-api\]/,
  )
})

test('a policy naming an unknown issuer is refused', () => {
  const { file, policy } = writeCase(validConfig(), {
    'accounts.yaml': { routes: [{ name: 'accounts-read', path: '/accounts/**', methods: ['GET'], upstream: 'data-api', issuers: ['bank', 'bnak'] }] },
  })
  assertOneProblem(
    problemsOf(file),
    policy('accounts.yaml'),
    'routes[name=accounts-read].issuers: ',
    /"bnak" is not one of the configured issuers \[bank, fintech\]/,
  )
})

test('two routes with the same name are refused, also across files', () => {
  const route = { name: 'accounts-read', path: '/accounts/**', methods: ['GET'], upstream: 'data-api' }
  const { file, policy } = writeCase(validConfig(), { 'a.yaml': { routes: [route] }, 'b.yaml': { routes: [{ ...route, path: '/other' }] } })
  assertOneProblem(
    problemsOf(file),
    policy('b.yaml'),
    'routes[name=accounts-read].name: ',
    new RegExp(`also defined in ${policy('a.yaml').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
  )
})

test('two issuers with the same name are refused', () => {
  const { file } = writeCase(
    edit((c) => {
      const [bank] = c.issuers as Tree[]
      c.issuers = [bank, { ...bank, issuer: 'https://other.example' }]
    }),
  )
  assertOneProblem(problemsOf(file), file, 'issuers.1.name: ', /"bank" is used twice/)
})

test('binding mtls with clientCertificate optional is refused; required is accepted', () => {
  const route = { name: 'payments-create', path: '/payments', methods: ['POST'], upstream: 'data-api', binding: 'mtls' }
  const bad = writeCase(validConfig(), { 'payments.yaml': { routes: [{ ...route, clientCertificate: 'optional' }] } })
  assertOneProblem(
    problemsOf(bad.file),
    bad.policy('payments.yaml'),
    'routes[name=payments-create].clientCertificate: ',
    /cannot be optional when binding is mtls/,
  )
  const good = writeCase(validConfig(), { 'payments.yaml': { routes: [{ ...route, clientCertificate: 'required' }] } })
  assert.equal(loadConfig(good.file, {}).routes[0]!.clientCertificate, 'required')
})

test('an empty or missing policy directory is refused: every request would be refused', () => {
  const empty = writeCase(validConfig(), { 'README.md': 'not a policy' })
  const dir = join(empty.dir, 'policies')
  assertOneProblem(problemsOf(empty.file), dir, '', /^no policy files \(\*\.yaml\)/)
  const missing = writeCase(
    edit((c) => {
      c.policies = { dir: 'nowhere' }
    }),
  )
  assertOneProblem(problemsOf(missing.file), join(missing.dir, 'nowhere'), '', /^policy directory cannot be read \(ENOENT\)/)
  const emptyFile = writeCase(validConfig(), { 'accounts.yaml': { routes: [] } })
  assertOneProblem(problemsOf(emptyFile.file), emptyFile.policy('accounts.yaml'), 'routes: ', /at least 1|>=1|too small/i)
})

test('.yml policy files are read as well, in name order', () => {
  const route = (name: string) => ({ routes: [{ name, path: `/${name}`, methods: ['GET'], upstream: 'data-api' }] })
  const { file } = writeCase(validConfig(), { 'b.yml': route('b'), 'a.yaml': route('a'), 'c.json': route('c') })
  assert.deepEqual(
    loadConfig(file, {}).routes.map((r) => r.name),
    ['a', 'b'],
  )
})

test('replay store redis without a redis section is refused; with one it loads', () => {
  const bad = writeCase(
    edit((c) => {
      c.replay = { store: 'redis' }
    }),
  )
  assertOneProblem(problemsOf(bad.file), bad.file, 'replay.redis: ', /store: redis needs a redis section/)
  const viaEnv = writeCase(validConfig())
  assertOneProblem(problemsOf(viaEnv.file, { FAPI_GATEWAY__REPLAY__STORE: 'redis' }), viaEnv.file, 'replay.redis: ', /needs a redis section/)
  const good = writeCase(
    edit((c) => {
      c.replay = { store: 'redis', redis: { url: 'redis://127.0.0.1:6379' } }
    }),
  )
  assert.equal(loadConfig(good.file, {}).config.replay.store, 'redis')
})

test('replay.revocationMirror needs store: redis, no redis.cluster, and heartbeats well inside maxStalenessMs', () => {
  const memory = writeCase(
    edit((c) => {
      c.replay = { revocationMirror: { enabled: true } }
    }),
  )
  assertOneProblem(problemsOf(memory.file), memory.file, 'replay.revocationMirror.enabled: ', /needs store: redis/)
  const cluster = writeCase(
    edit((c) => {
      c.replay = { store: 'redis', redis: { cluster: [{ host: '127.0.0.1', port: 7000 }] }, revocationMirror: { enabled: true } }
    }),
  )
  assertOneProblem(problemsOf(cluster.file), cluster.file, 'replay.revocationMirror.enabled: ', /not supported with redis.cluster/)
  const slowHeartbeat = writeCase(
    edit((c) => {
      c.replay = { store: 'redis', redis: { url: 'redis://127.0.0.1:6379' }, revocationMirror: { enabled: true, heartbeatMs: 300, maxStalenessMs: 500 } }
    }),
  )
  assertOneProblem(problemsOf(slowHeartbeat.file), slowHeartbeat.file, 'replay.revocationMirror.heartbeatMs: ', /at most half of maxStalenessMs/)
  const good = writeCase(
    edit((c) => {
      c.replay = { store: 'redis', redis: { url: 'redis://127.0.0.1:6379' }, revocationMirror: { enabled: true } }
    }),
  )
  assert.deepEqual(loadConfig(good.file, {}).config.replay.revocationMirror, { enabled: true, maxStalenessMs: 500, heartbeatMs: 100, maxEntries: 100_000 })
  assert.equal(loadConfig(writeCase(validConfig()).file, {}).config.replay.revocationMirror.enabled, false, 'off unless asked for')
})

test('every schema problem is reported at once', () => {
  const { file } = writeCase(
    edit((c) => {
      c.listener.port = 'x'
      c.listener.publicBaseUrl = 'http://api.bank.example'
      c.listener.tls.clientCertifcate = 'require'
      delete c.issuers
      c.replay = { store: 'redis' }
    }),
  )
  const problems = problemsOf(file)
  assertProblem(problems, file, 'listener.port: ', /must be a number/)
  assertProblem(problems, file, 'listener.publicBaseUrl: ', /https:\/\//)
  assertProblem(problems, file, 'listener.tls.clientCertifcate: ', /unknown key/)
  assertProblem(problems, file, 'issuers: ', /is required/)
  assertProblem(problems, file, 'replay.redis: ', /needs a redis section/)
  assert.equal(problems.length, 5, problems.join('\n'))
})

test('every file and policy problem is reported at once', () => {
  const { file, policy } = writeCase(
    edit((c) => {
      c.listener.tls.certFile = 'missing.crt'
      delete c.listener.tls.clientCaFile
    }),
    {
      'a.yaml': { routes: [{ name: 'a', path: '/a', methods: ['GET'], upstream: 'nope', issuers: ['nobody'] }] },
      'b.yaml': { routes: [{ name: 'a', path: 'relative', methods: ['get'], upstream: 'data-api' }] },
      'c.yaml': 'routes: [\n',
      'd.yaml': { routes: [{ name: 'd', path: '/d', methods: ['GET'], upstream: 'data-api', binding: 'mtls', clientCertificate: 'optional' }] },
    },
  )
  const problems = problemsOf(file)
  assertProblem(problems, file, 'listener.tls.certFile: ', /cannot be read/)
  assertProblem(problems, file, 'listener.tls.clientCaFile: ', /required/)
  assertProblem(problems, policy('a.yaml'), 'routes[name=a].upstream: ', /"nope"/)
  assertProblem(problems, policy('a.yaml'), 'routes[name=a].issuers: ', /"nobody"/)
  assertProblem(problems, policy('b.yaml'), 'routes.0.path: ', /must start with \//)
  assertProblem(problems, policy('b.yaml'), 'routes.0.methods.0: ', /upper-case HTTP method/)
  assertProblem(problems, policy('c.yaml'), '', /^not valid YAML at line 2/)
  assertProblem(problems, policy('d.yaml'), 'routes[name=d].clientCertificate: ', /cannot be optional/)
  assert.equal(problems.length, 8, problems.join('\n'))
})

test('schema problems in the configuration and in the policy files are reported together', () => {
  const { file, policy } = writeCase(
    edit((c) => {
      c.listener.port = 'x'
    }),
    { 'a.yaml': { routes: [{ name: 'a', path: 'relative', methods: ['GET'], upstream: 'data-api' }] } },
  )
  const problems = problemsOf(file)
  assertProblem(problems, file, 'listener.port: ', /must be a number/)
  assertProblem(problems, policy('a.yaml'), 'routes.0.path: ', /must start with \//)
  assert.equal(problems.length, 2, problems.join('\n'))
})

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

async function checkConfig(file: string): Promise<Run> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('FAPI_GATEWAY')))
  const child = spawn(process.execPath, ['src/main.ts', 'check-config', '--config', file], { cwd: PROJECT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (exitCode) => resolve(exitCode))
  })
  return { code, stdout, stderr }
}

test('check-config exits 1 and names the file and key of each problem on stderr', async () => {
  const { file, policy } = writeCase(
    edit((c) => {
      c.listener.tls.certFile = 'missing.crt'
    }),
    { 'accounts.yaml': { routes: [{ name: 'accounts-read', path: '/accounts/**', methods: ['GET'], upstream: 'nope' }] } },
  )
  const run = await checkConfig(file)
  assert.equal(run.code, 1, run.stderr)
  assert.ok(run.stderr.includes(`${file}: listener.tls.certFile: file "missing.crt" cannot be read`), run.stderr)
  assert.ok(run.stderr.includes(`${policy('accounts.yaml')}: routes[name=accounts-read].upstream: "nope"`), run.stderr)
  assert.equal(run.stdout, '')

  const typo = writeCase(
    edit((c) => {
      c.listener.prot = 1
    }),
  )
  const typoRun = await checkConfig(typo.file)
  assert.equal(typoRun.code, 1, typoRun.stderr)
  assert.ok(typoRun.stderr.includes(`${typo.file}: listener.prot: unknown key; did you mean "port"?`), typoRun.stderr)
})

test('check-config exits 0 on a valid configuration', async () => {
  const { file } = writeCase(validConfig())
  const run = await checkConfig(file)
  assert.equal(run.code, 0, run.stderr)
  assert.equal(run.stdout.trim(), `${file}: valid (2 routes)`)
})

test('check-config warns, naming the file and dpop.nonce.mode, when nonces are optional, and still exits 0', async () => {
  const { file } = writeCase(
    edit((c) => {
      c.dpop = { nonce: { mode: 'optional' } }
    }),
  )
  const run = await checkConfig(file)
  assert.equal(run.code, 0, run.stderr)
  assert.equal(run.stdout.trim(), `${file}: valid (2 routes)`)
  assert.ok(run.stderr.startsWith(`warning: ${file}: dpop.nonce.mode: optional `), run.stderr)
  assert.ok(run.stderr.includes('migration mode'), run.stderr)
  const required = await checkConfig(
    writeCase(
      edit((c) => {
        c.dpop = { nonce: { mode: 'required' } }
      }),
    ).file,
  )
  assert.equal(required.stderr, '')
})
