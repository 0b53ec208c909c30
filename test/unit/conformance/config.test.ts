import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse, stringify } from 'yaml'
import { createDevPki, chainPem, type DevPki } from '../../../dev/pki.ts'
import { ConformanceConfigError, loadRunnerConfig, runnerConfigSchema } from '../../../src/conformance/config.ts'
import { REPO_ROOT } from '../../../dev/environment.ts'

let dir: string
let pki: DevPki

before(async () => {
  pki = await createDevPki()
  dir = mkdtempSync(join(tmpdir(), 'conformance-config-'))
  mkdirSync(join(dir, 'certs'))
  writeFileSync(join(dir, 'certs', 'ca.pem'), pki.root.certPem)
  writeFileSync(join(dir, 'certs', 'a.crt'), chainPem(pki.partnerA, pki.intermediate))
  writeFileSync(join(dir, 'certs', 'a.key'), pki.partnerA.keyPem)
  writeFileSync(join(dir, 'certs', 'b.crt'), chainPem(pki.partnerB, pki.intermediate))
  writeFileSync(join(dir, 'certs', 'b.key'), pki.partnerB.keyPem)
  writeFileSync(join(dir, 'certs', 'signing.key'), pki.partnerA.keyPem)
})

after(() => rmSync(dir, { recursive: true, force: true }))

function write(name: string, config: unknown): string {
  const file = join(dir, name)
  writeFileSync(file, typeof config === 'string' ? config : stringify(config))
  return file
}

function problems(file: string): string[] {
  try {
    loadRunnerConfig(file)
  } catch (error) {
    assert.ok(error instanceof ConformanceConfigError, String(error))
    return [...error.problems]
  }
  assert.fail('expected a configuration error')
}

const valid = {
  mode: 'mtls',
  target: { url: 'https://api.bank.example:8443/accounts/1', caFile: 'certs/ca.pem' },
  clients: {
    primary: {
      clientId: 'partner-a',
      certFile: 'certs/a.crt',
      keyFile: 'certs/a.key',
      auth: { method: 'private_key_jwt', keyFile: 'certs/signing.key', kid: 'k1' },
    },
    second: { clientId: 'partner-b', certFile: 'certs/b.crt', keyFile: 'certs/b.key', auth: { method: 'tls_client_auth' } },
  },
  certificates: { expired: { certFile: 'certs/b.crt', keyFile: 'certs/b.key' } },
  tokens: { source: 'tokenEndpoint', endpoint: 'https://as.bank.example/token', issuer: 'https://as.bank.example', scope: 'accounts:read' },
}

describe('runner configuration', () => {
  it('loads a valid file: defaults filled in, files read relative to it, probe from the target URL', () => {
    const settings = loadRunnerConfig(write('valid.yaml', valid))
    assert.equal(settings.mode, 'mtls')
    assert.equal(settings.target.method, 'GET')
    assert.equal(settings.target.caPem, pki.root.certPem)
    assert.deepEqual(settings.tlsProbe, { host: 'api.bank.example', port: 8443 })
    assert.match(settings.clients.primary.identity!.label, /CN=partner-a/)
    assert.equal(settings.clients.primary.dpopAlgorithm, 'ES256')
    assert.deepEqual(settings.clients.primary.auth, { method: 'private_key_jwt', signingKeyPem: pki.partnerA.keyPem, alg: 'ES256', kid: 'k1' })
    assert.deepEqual(settings.clients.second!.auth, { method: 'tls_client_auth' })
    assert.ok(settings.certificates.expired)
    assert.equal(settings.certificates.untrusted, undefined)
    assert.equal(settings.requestTimeoutMs, 10_000)
    assert.deepEqual(settings.skip, [])
  })

  it('accepts the development issuer and a POST target with a body', () => {
    const settings = loadRunnerConfig(
      write('dev.yaml', {
        mode: 'dpop',
        target: { url: 'https://127.0.0.1:8443/payments', method: 'POST', body: '{"amount":"1.00"}' },
        tlsProbe: { port: 9443 },
        clients: { primary: { dpopAlgorithm: 'EdDSA' } },
        tokens: { source: 'devIssuer' },
        skip: ['tls-1.3-supported'],
      }),
    )
    assert.deepEqual(settings.tokens, { source: 'devIssuer' })
    assert.equal(settings.target.mediaType, 'application/json')
    assert.deepEqual(settings.tlsProbe, { host: '127.0.0.1', port: 9443 })
    assert.equal(settings.clients.primary.dpopAlgorithm, 'EdDSA')
  })

  it('reads the authorizationServer section and the sections to run', () => {
    const settings = loadRunnerConfig(
      write('as.yaml', {
        ...valid,
        authorizationServer: { issuer: 'https://gw.bank.example', scope: 'accounts:read', caFile: 'certs/ca.pem' },
        sections: ['authorization-server'],
      }),
    )
    assert.deepEqual(settings.authorizationServer, {
      issuer: 'https://gw.bank.example',
      tokenEndpoint: undefined,
      scope: 'accounts:read',
      caPem: pki.root.certPem,
    })
    assert.deepEqual(settings.sections, ['authorization-server'])
    assert.equal(loadRunnerConfig(write('no-as.yaml', valid)).authorizationServer, undefined)
  })

  it('reads authorizationServer.frontChannel: the redirect URI, the login forms, request objects', () => {
    const settings = loadRunnerConfig(
      write('fc.yaml', {
        ...valid,
        authorizationServer: {
          issuer: 'https://gw.bank.example',
          scope: 'accounts:read',
          frontChannel: {
            redirectUri: 'https://partner.example/cb',
            login: { forms: [{ page: '/login', form: 'name="username"', fields: { username: 'alice', password: 'secret' } }, { form: 'value="consent"' }] },
          },
        },
        sections: ['authorization-code'],
      }),
    )
    assert.deepEqual(settings.authorizationServer?.frontChannel, {
      redirectUri: 'https://partner.example/cb',
      scope: undefined,
      forms: [
        { page: '/login', form: 'name="username"', fields: { username: 'alice', password: 'secret' } },
        { page: undefined, form: 'value="consent"', fields: {} },
      ],
      requestObject: false,
    })
    const found = problems(
      write('fc-bad.yaml', {
        ...valid,
        authorizationServer: {
          issuer: 'https://gw.bank.example',
          frontChannel: { redirectUri: 'http://partner.example/cb', login: { forms: [{ page: '(' }] } },
        },
      }),
    )
    for (const expected of [
      /frontChannel\.redirectUri: must be an absolute https URL/,
      /frontChannel\.login\.forms\.0\.page: not a valid regular expression/,
    ]) {
      assert.ok(
        found.some((p) => expected.test(p)),
        `${expected} in ${found.join('\n')}`,
      )
    }
    const section = problems(write('fc-section.yaml', { ...valid, sections: ['authorization-code'] }))
    assert.ok(
      section.some((p) => /sections: authorization-code needs the authorizationServer\.frontChannel key/.test(p)),
      section.join('\n'),
    )
  })

  it('needs client authentication for the authorization-server checks, and the section its key', () => {
    const found = problems(
      write('as-bad.yaml', {
        mode: 'dpop',
        target: { url: 'https://api.example/x' },
        clients: { primary: {} },
        tokens: { source: 'devIssuer' },
        authorizationServer: { issuer: 'http://as.example', tokenEndpoint: 'https://as.example/token' },
      }),
    )
    for (const expected of [/authorizationServer\.issuer: must be an absolute https URL/]) {
      assert.ok(
        found.some((p) => expected.test(p)),
        `${expected} in ${found.join('\n')}`,
      )
    }
    const missing = problems(
      write('as-missing.yaml', {
        mode: 'dpop',
        target: { url: 'https://api.example/x' },
        clients: { primary: {} },
        tokens: { source: 'devIssuer' },
        authorizationServer: { issuer: 'https://as.example' },
      }),
    )
    assert.ok(
      missing.some((p) => /clients\.primary\.clientId: required with authorizationServer/.test(p)),
      missing.join('\n'),
    )
    assert.ok(
      missing.some((p) => /clients\.primary\.auth: required with authorizationServer/.test(p)),
      missing.join('\n'),
    )
    const section = problems(write('as-section.yaml', { ...valid, sections: ['authorization-server'] }))
    assert.ok(
      section.some((p) => /sections: authorization-server needs the authorizationServer key/.test(p)),
      section.join('\n'),
    )
  })

  it('reports every problem with the file and key', () => {
    const file = write('bad.yaml', {
      mode: 'mtls',
      target: { url: 'http://api.example/x', method: 'get' },
      clients: { primary: { clientId: 'a', auth: { method: 'tls_client_auth' } } },
      tokens: { source: 'tokenEndpoint', endpoint: 'https://as/token', issuer: 'https://as' },
      extra: true,
    })
    const found = problems(file)
    for (const expected of [
      /target\.url: must be an absolute https URL/,
      /target\.method: must be an upper-case HTTP method/,
      /\(top level\): Unrecognized key/,
    ]) {
      assert.ok(
        found.some((p) => expected.test(p) && p.startsWith(file)),
        `${expected} in ${found.join('\n')}`,
      )
    }
  })

  it('applies the cross-field rules', () => {
    const found = problems(
      write('cross.yaml', {
        mode: 'mtls',
        target: { url: 'https://api.example/x', body: 'x' },
        clients: { primary: { auth: { method: 'tls_client_auth' } }, second: { certFile: 'certs/b.crt' } },
        tokens: { source: 'tokenEndpoint', endpoint: 'https://as/token', issuer: 'https://as' },
      }),
    )
    for (const expected of [
      'clients.primary.certFile: required in mtls mode',
      'target.body: a GET request has no body',
      'clients.primary.clientId: required with tokens.source tokenEndpoint',
      'clients.second.keyFile: certFile and keyFile go together',
    ]) {
      assert.ok(
        found.some((p) => p.endsWith(expected)),
        `${expected} in ${found.join('\n')}`,
      )
    }
  })

  it('names files that cannot be read, and a file that is not YAML', () => {
    const found = problems(write('missing.yaml', { ...valid, target: { url: valid.target.url, caFile: 'certs/nope.pem' } }))
    assert.ok(
      found.some((p) => /target\.caFile: file "certs\/nope\.pem" cannot be read \(ENOENT\)/.test(p)),
      found.join('\n'),
    )
    assert.match(problems(write('broken.yaml', 'mode: [dpop'))[0]!, /not valid YAML/)
    assert.match(problems(join(dir, 'absent.yaml'))[0]!, /cannot be read \(ENOENT\)/)
  })
})

describe('the documented example', () => {
  it('docs/conformance/runner.example.yaml is valid against the schema', () => {
    const parsed = runnerConfigSchema.safeParse(parse(readFileSync(join(REPO_ROOT, 'docs', 'conformance', 'runner.example.yaml'), 'utf8')))
    assert.ok(parsed.success, parsed.success ? '' : JSON.stringify(parsed.error.issues))
  })
})
