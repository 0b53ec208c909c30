// Validates security events against the documented schema (docs/security-event.schema.json) with ajv.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Ajv } from 'ajv'

export const EVENT_SCHEMA_FILE = fileURLToPath(new URL('../../docs/security-event.schema.json', import.meta.url))

export function securityEventValidator(): (document: unknown) => string[] {
  const ajv = new Ajv({ allErrors: true, strictTypes: false })
  const validate = ajv.compile(JSON.parse(readFileSync(EVENT_SCHEMA_FILE, 'utf8')) as object)
  return (document) => (validate(document) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`))
}
