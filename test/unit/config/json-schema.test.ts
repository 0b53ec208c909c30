// The published JSON Schemas (docs/schema/) are generated from the zod schema the loader uses, and
// an editor validating against them flags what the loader refuses for the same reason.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { Ajv } from 'ajv'
import { parse } from 'yaml'
import { generatedSchemas, SCHEMA_FILES } from '../../../scripts/config-schema.ts'

const PROJECT = join(import.meta.dirname, '..', '..', '..')

function validator(file: string) {
  const ajv = new Ajv({ allErrors: true, strict: false })
  return ajv.compile(JSON.parse(readFileSync(file, 'utf8')) as object)
}

const valid = {
  listener: { publicBaseUrl: 'https://api.bank.example', tls: { certFile: 'tls/server.crt', keyFile: 'tls/server.key', clientCaFile: 'tls/partners.pem' } },
  issuers: [{ name: 'bank', issuer: 'https://as.bank.example', jwksUri: 'https://as.bank.example/jwks', audience: 'https://api.bank.example' }],
  upstreams: { 'data-api': { url: 'http://127.0.0.1:9000' } },
}

test('docs/schema/*.json are generated from src/config/schema.ts (node scripts/config-schema.ts)', () => {
  const generated = generatedSchemas()
  assert.equal(readFileSync(SCHEMA_FILES.config, 'utf8'), generated.config, 'run node scripts/config-schema.ts')
  assert.equal(readFileSync(SCHEMA_FILES.policy, 'utf8'), generated.policy, 'run node scripts/config-schema.ts')
  assert.equal(readFileSync(SCHEMA_FILES.partners, 'utf8'), generated.partners, 'run node scripts/config-schema.ts')
})

test('the partner file schema flags a partner without a legacy client and an unknown authentication method', () => {
  const validate = validator(SCHEMA_FILES.partners)
  const partner = { clientId: 'fintech-one', authentication: { method: 'tls_client_auth', subjectDn: 'CN=fintech-one' }, grantTypes: ['client_credentials'] }
  assert.ok(validate({ partners: [{ ...partner, legacy: 'shared' }] }), JSON.stringify(validate.errors))
  assert.equal(validate({ partners: [partner] }), false)
  assert.ok(
    validate.errors?.some((e) => e.instancePath === '/partners/0' && e.keyword === 'required' && e.params.missingProperty === 'legacy'),
    JSON.stringify(validate.errors),
  )
  assert.equal(validate({ partners: [{ ...partner, legacy: 'shared', authentication: { method: 'client_secret_basic' } }] }), false)
})

test('the configuration schema accepts a valid file and flags a misspelt key and a wrong type, with their paths', () => {
  const validate = validator(SCHEMA_FILES.config)
  assert.ok(validate(valid), JSON.stringify(validate.errors))
  const typo = structuredClone(valid) as typeof valid & { listener: { tls: Record<string, unknown> } }
  typo.listener.tls.clientCertifcate = 'require'
  assert.equal(validate(typo), false)
  assert.ok(
    validate.errors?.some(
      (e) => e.instancePath === '/listener/tls' && e.keyword === 'additionalProperties' && e.params.additionalProperty === 'clientCertifcate',
    ),
    JSON.stringify(validate.errors),
  )
  const wrongType = { ...valid, workers: 'many' }
  assert.equal(validate(wrongType), false)
  assert.ok(
    validate.errors?.some((e) => e.instancePath === '/workers'),
    JSON.stringify(validate.errors),
  )
})

test('the policy schema accepts the policies shipped in policies/ and flags a route without an upstream', () => {
  const validate = validator(SCHEMA_FILES.policy)
  for (const name of readdirSync(join(PROJECT, 'policies'))) {
    const policy = parse(readFileSync(join(PROJECT, 'policies', name), 'utf8')) as unknown
    assert.ok(validate(policy), `${name}: ${JSON.stringify(validate.errors)}`)
  }
  assert.equal(validate({ routes: [{ name: 'r', path: '/r', methods: ['GET'] }] }), false)
  assert.ok(
    validate.errors?.some((e) => e.instancePath === '/routes/0' && e.keyword === 'required' && e.params.missingProperty === 'upstream'),
    JSON.stringify(validate.errors),
  )
})
