// Schema problems in the user's words: `key: what is wrong`, one line each. An unknown key comes
// first, with the key it was probably meant to be; the "required" complaint about that key is
// then dropped, since it is the same mistake.
import type { z } from 'zod'

export interface Problem {
  /** Dotted path from the top of the file: `listener.tls.certFile`. */
  readonly key: string
  readonly message: string
}

type Path = readonly PropertyKey[]

interface SchemaDef {
  readonly type: string
  readonly shape?: Record<string, z.ZodType>
  readonly innerType?: z.ZodType
  readonly element?: z.ZodType
  readonly valueType?: z.ZodType
  readonly options?: readonly z.ZodType[]
  readonly in?: z.ZodType
}

function defOf(schema: z.ZodType): SchemaDef {
  return (schema as unknown as { _zod: { def: SchemaDef } })._zod.def
}

/** The keys an object at `path` may have, as far as the schema says (unions: all options'). */
function keysAt(schema: z.ZodType | undefined, path: Path): string[] {
  if (!schema) return []
  const def = defOf(schema)
  switch (def.type) {
    case 'optional':
    case 'default':
    case 'prefault':
    case 'nullable':
    case 'readonly':
    case 'catch':
      return keysAt(def.innerType, path)
    case 'pipe':
      return keysAt(def.in, path)
    case 'union':
      return [...new Set((def.options ?? []).flatMap((option) => keysAt(option, path)))]
    case 'object':
      if (path.length === 0) return Object.keys(def.shape ?? {})
      return keysAt(def.shape?.[String(path[0])], path.slice(1))
    case 'array':
      return path.length === 0 ? [] : keysAt(def.element, path.slice(1))
    case 'record':
      return path.length === 0 ? [] : keysAt(def.valueType, path.slice(1))
    default:
      return []
  }
}

function valueAt(raw: unknown, path: Path): unknown {
  let node = raw
  for (const segment of path) {
    if (typeof node !== 'object' || node === null) return undefined
    node = (node as Record<PropertyKey, unknown>)[segment]
  }
  return node
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!
      row[j] = Math.min(above + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1))
      diagonal = above
    }
  }
  return row[b.length]!
}

/** The known key a misspelt one was most likely meant to be, if any is close. */
export function closestKey(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of known) {
    const d = candidate.toLowerCase() === name.toLowerCase() ? 0 : distance(name, candidate)
    if (d < bestDistance) [best, bestDistance] = [candidate, d]
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 4)) ? best : undefined
}

function typeName(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'object') return 'a mapping'
  if (typeof value === 'string') return `the text ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`
  return `${typeof value} ${String(value)}`
}

const EXPECTED: Record<string, string> = { object: 'a mapping', array: 'a list', string: 'text', number: 'a number', boolean: 'true or false' }

function join(path: Path): string {
  return path.map(String).join('.') || '(top level)'
}

export function describeIssues(issues: readonly z.core.$ZodIssue[], raw: unknown, schema: z.ZodType): Problem[] {
  const unknown: Problem[] = []
  const meant = new Set<string>()
  for (const issue of issues) {
    if (issue.code !== 'unrecognized_keys') continue
    const known = keysAt(schema, issue.path)
    for (const key of issue.keys) {
      const guess = closestKey(key, known)
      if (guess) meant.add(join([...issue.path, guess]))
      unknown.push({ key: join([...issue.path, key]), message: `unknown key${guess ? `; did you mean "${guess}"?` : ''}` })
    }
  }
  const rest: Problem[] = []
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') continue
    const key = join(issue.path)
    const value = valueAt(raw, issue.path)
    if (value === undefined && issue.code !== 'custom') {
      if (!meant.has(key)) rest.push({ key, message: 'is required' })
      continue
    }
    if (issue.code === 'invalid_type') {
      rest.push({ key, message: `must be ${EXPECTED[issue.expected] ?? issue.expected}, not ${typeName(value)}` })
      continue
    }
    rest.push({ key, message: issue.message.replace(/^Invalid input: /, '').replace(/\s*\n\s*/g, ' ') })
  }
  return [...unknown, ...rest]
}
