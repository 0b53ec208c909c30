// JSON Schema (draft-7) from a zod schema, in the form editors and Helm's validators accept.
import { z } from 'zod'

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

/** Drops what Helm's validators do not need or know: $schema, formats, the MAX_SAFE_INTEGER bounds zod adds. */
function portable(node: Json): Json {
  if (Array.isArray(node)) return node.map(portable)
  if (node === null || typeof node !== 'object') return node
  const out: { [key: string]: Json } = {}
  for (const [key, value] of Object.entries(node)) {
    if (key === '$schema' || key === 'format') continue
    if (key === 'maximum' && value === Number.MAX_SAFE_INTEGER) continue
    out[key] = portable(value)
  }
  return out
}

export function jsonSchema(schema: z.ZodType): Json {
  return portable(z.toJSONSchema(schema, { target: 'draft-7', io: 'input', unrepresentable: 'any' }) as Json)
}
