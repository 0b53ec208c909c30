// Keeps the gateway sections of helm/fapi-gateway/values.schema.json in step with the zod
// configuration schema (src/config/schema.ts): the chart passes gateway.issuers, upstreams,
// limits, dpop, forwarding, caches, events, reload, ocspStapling, authorizationServer, the policy
// files and the partner file through to the gateway, so `helm install` validates them with the
// same rules the gateway's loader applies (refinements that JSON Schema cannot express are still
// checked by the gateway at start-up).
//   node scripts/chart-schema.ts           rewrite the definitions
//   node scripts/chart-schema.ts --check   exit 1 when they are stale (test/unit/helm does this too)
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { gatewayConfigSchema, partnerFileSchema, policyFileSchema } from '../src/config/schema.ts'
import { jsonSchema, type Json } from './zod-json-schema.ts'

export const VALUES_SCHEMA_FILE = fileURLToPath(new URL('../helm/fapi-gateway/values.schema.json', import.meta.url))

export function generatedDefinitions(): Record<string, Json> {
  const config = gatewayConfigSchema.shape
  return {
    gatewayLimits: jsonSchema(config.listener.shape.limits),
    gatewayIssuers: jsonSchema(config.issuers),
    gatewayUpstreams: jsonSchema(config.upstreams),
    gatewayDpop: jsonSchema(config.dpop),
    gatewayForwarding: jsonSchema(config.forwarding),
    gatewayCaches: jsonSchema(config.caches),
    gatewayEvents: jsonSchema(config.events),
    gatewayRevocation: jsonSchema(config.revocation),
    gatewayClientCertificateHeader: jsonSchema(config.listener.shape.clientCertificateHeader),
    gatewayWorkers: jsonSchema(config.workers),
    gatewayReload: jsonSchema(config.reload),
    gatewayOcspStapling: jsonSchema(config.listener.shape.tls.shape.ocspStapling),
    gatewayAuthorizationServer: jsonSchema(config.authorizationServer),
    policyFile: jsonSchema(policyFileSchema),
    partnerFile: jsonSchema(partnerFileSchema),
  }
}

export function withGeneratedDefinitions(valuesSchema: { definitions?: Record<string, Json> }): object {
  return { ...valuesSchema, definitions: { ...valuesSchema.definitions, ...generatedDefinitions() } }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const current = readFileSync(VALUES_SCHEMA_FILE, 'utf8')
  const next = `${JSON.stringify(withGeneratedDefinitions(JSON.parse(current) as object), null, 2)}\n`
  if (process.argv.includes('--check')) {
    if (next !== current) {
      console.error(`${VALUES_SCHEMA_FILE} is stale: run node scripts/chart-schema.ts`)
      process.exit(1)
    }
  } else {
    writeFileSync(VALUES_SCHEMA_FILE, next)
  }
}
