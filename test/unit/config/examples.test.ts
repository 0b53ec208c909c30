// The example configurations under examples/ load as they are, so that they can never go stale: each is copied to a
// temporary folder, its TLS files (which a deployment brings) are written there as the loader names them, and it is
// loaded with the loader and with the secrets its README says to set.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { Ajv } from 'ajv'
import { parse } from 'yaml'
import { ConfigError, loadConfig, type LoadedConfig } from '../../../src/config/load.ts'
import { createPartnerRegistry } from '../../../src/authorization-server/partners.ts'
import { SCHEMA_FILES } from '../../../scripts/config-schema.ts'

const EXAMPLES = join(import.meta.dirname, '..', '..', '..', 'examples')
const root = mkdtempSync(join(tmpdir(), 'fapi-gateway-examples-'))

after(() => rmSync(root, { recursive: true, force: true }))

const LEGACY_SECRETS = {
  LEGACY_INTROSPECTION_SECRET: 'introspection-secret',
  LEGACY_GATEWAY_SECRET: 'gateway-secret',
  LEGACY_SECRET_FINTECH_ONE: 'fintech-one-secret',
  LEGACY_SECRET_FINTECH_TWO: 'fintech-two-secret',
  REDIS_PASSWORD: 'redis-password',
}

/** Loads a copy of examples/<name>/gateway.yaml, with every file the loader cannot read written as a placeholder. */
function loadExample(name: string, env: NodeJS.ProcessEnv): LoadedConfig {
  const folder = join(root, name)
  cpSync(join(EXAMPLES, name), folder, { recursive: true })
  const file = join(folder, 'gateway.yaml')
  try {
    return loadConfig(file, env)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    const missing = error.problems.map((problem) => /: file "([^"]+)" cannot be read \(ENOENT\)$/.exec(problem)?.[1])
    assert.ok(
      missing.every((path) => path !== undefined),
      `problems other than missing TLS files:\n${error.problems.join('\n')}`,
    )
    for (const path of missing) {
      mkdirSync(dirname(join(folder, path!)), { recursive: true })
      writeFileSync(join(folder, path!), 'placeholder\n')
    }
    return loadConfig(file, env)
  }
}

function validator(schemaFile: string) {
  return new Ajv({ allErrors: true, strict: false }).compile(JSON.parse(readFileSync(schemaFile, 'utf8')) as object)
}

test('examples/legacy-authorization-server loads, with its partners and their legacy secrets', () => {
  const loaded = loadExample('legacy-authorization-server', LEGACY_SECRETS)
  const as = loaded.config.authorizationServer
  assert.ok(as)
  assert.equal(as.resourceIssuer, 'legacy')
  assert.equal(loaded.config.issuers.find((i) => i.name === as.resourceIssuer)?.facade?.validate, 'introspection')
  assert.equal(loaded.config.replay.store, 'redis')
  assert.deepEqual(
    loaded.partners?.entries.map((p) => [p.clientId, p.authentication.method, p.legacy === 'shared' ? 'shared' : p.legacy.clientId]),
    [
      ['fintech-one', 'private_key_jwt', 'gw-fintech-one'],
      ['fintech-two', 'tls_client_auth', 'gw-fintech-two'],
      ['fintech-three', 'tls_client_auth', 'shared'],
    ],
  )
  assert.deepEqual(
    loaded.routes.map((r) => [r.name, r.issuers]),
    [['accounts-read', ['legacy']]],
  )

  const partners = createPartnerRegistry(loaded, LEGACY_SECRETS)
  assert.equal(partners.size, 3)
  assert.equal(partners.get('fintech-one')?.legacy.secret, 'fintech-one-secret')
  assert.equal(partners.get('fintech-three')?.legacy.clientId, 'fapi-gateway')
  assert.equal(partners.get('fintech-three')?.legacy.secret, 'gateway-secret')
})

test('examples/legacy-authorization-server: a legacy secret its README names but the environment lacks is a start-up error', () => {
  const loaded = loadExample('legacy-authorization-server', LEGACY_SECRETS)
  const { LEGACY_SECRET_FINTECH_TWO: _, ...withoutOne } = LEGACY_SECRETS
  assert.throws(
    () => createPartnerRegistry(loaded, withoutOne),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.problems.length === 1 &&
      /partners\.yaml: partners\.1\.legacy\.secretEnv: environment variable LEGACY_SECRET_FINTECH_TWO is not set$/.test(error.problems[0]!),
  )
  const readme = readFileSync(join(EXAMPLES, 'legacy-authorization-server', 'README.md'), 'utf8')
  for (const variable of Object.keys(LEGACY_SECRETS)) assert.match(readme, new RegExp(`\\b${variable}\\b`), `README.md names ${variable}`)
})

test('the example files validate against the published JSON Schemas their modelines name', () => {
  const folder = join(EXAMPLES, 'legacy-authorization-server')
  const files: [string, string][] = [
    [join(folder, 'gateway.yaml'), SCHEMA_FILES.config],
    [join(folder, 'partners.yaml'), SCHEMA_FILES.partners],
    ...readdirSync(join(folder, 'policies')).map((name): [string, string] => [join(folder, 'policies', name), SCHEMA_FILES.policy]),
    [join(EXAMPLES, 'protect-your-api', 'gateway.yaml'), SCHEMA_FILES.config],
  ]
  for (const [file, schema] of files) {
    const validate = validator(schema)
    const text = readFileSync(file, 'utf8')
    assert.ok(validate(parse(text)), `${file}: ${JSON.stringify(validate.errors)}`)
    const modeline = /^# yaml-language-server: \$schema=(\S+)$/m.exec(text)?.[1]
    assert.ok(modeline, `${file} has a schema modeline`)
    assert.equal(join(dirname(file), modeline), schema, `${file}'s modeline names ${schema}`)
  }
})
