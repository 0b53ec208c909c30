// Publishes the JSON Schema of the configuration file, the policy files and the partner file of the
// authorization-server façade, generated from the zod schema the gateway itself loads with
// (src/config/schema.ts), so that a YAML editor validates fapi-gateway.yaml, policies/*.yaml and
// partners.yaml as they are typed (docs/configuration.md, "Editor support").
//   node scripts/config-schema.ts           rewrite docs/schema/*.json
//   node scripts/config-schema.ts --check   exit 1 when they are stale (test/unit/config/json-schema.test.ts does this too)
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { gatewayConfigSchema, partnerFileSchema, policyFileSchema } from '../src/config/schema.ts'
import { jsonSchema, type Json } from './zod-json-schema.ts'

export const SCHEMA_FILES = {
  config: fileURLToPath(new URL('../docs/schema/fapi-gateway.schema.json', import.meta.url)),
  policy: fileURLToPath(new URL('../docs/schema/policy.schema.json', import.meta.url)),
  partners: fileURLToPath(new URL('../docs/schema/partners.schema.json', import.meta.url)),
}

function published(title: string, schema: Json): string {
  const document = { $schema: 'http://json-schema.org/draft-07/schema#', title, ...(schema as Record<string, Json>) }
  return `${JSON.stringify(document, null, 2)}\n`
}

export function generatedSchemas(): Record<keyof typeof SCHEMA_FILES, string> {
  return {
    config: published('fapi-gateway configuration file', jsonSchema(gatewayConfigSchema)),
    policy: published('fapi-gateway route policy file', jsonSchema(policyFileSchema)),
    partners: published('fapi-gateway partner file (authorization-server façade)', jsonSchema(partnerFileSchema)),
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const generated = generatedSchemas()
  let stale = false
  for (const [name, file] of Object.entries(SCHEMA_FILES) as [keyof typeof SCHEMA_FILES, string][]) {
    let current = ''
    try {
      current = readFileSync(file, 'utf8')
    } catch {
      // written below
    }
    if (current === generated[name]) continue
    if (process.argv.includes('--check')) {
      console.error(`${file} is stale: run node scripts/config-schema.ts`)
      stale = true
    } else writeFileSync(file, generated[name])
  }
  if (stale) process.exit(1)
}
