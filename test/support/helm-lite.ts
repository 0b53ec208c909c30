// A small renderer for the subset of Helm's Go templates this chart uses, so the tests can
// render the chart without the helm binary (which our machines do not have). It follows
// text/template and Helm where the chart depends on them: whitespace trimming, truthiness,
// values as float64 (so 1000000 prints as 1e+06 unless piped through int64), sorted map keys,
// errors on a field of a missing value, `required` and `fail`. It is no substitute for
// `helm template`; it exists to catch mistakes in our templates early.
import { createHash } from 'node:crypto'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml'

export class TemplateError extends Error {}

type Value = unknown

/** A Go int (template literals, `int`, `int64`); plain JS numbers are Go float64 values. */
class GoInt {
  readonly n: number
  constructor(n: number) {
    this.n = Math.trunc(n)
  }
}

const num = (v: Value): number => (v instanceof GoInt ? v.n : typeof v === 'number' ? v : Number(v ?? 0))

// ---- lexing: text and actions, with {{- and -}} trimming ------------------------------------

type Piece = { kind: 'text'; text: string } | { kind: 'action'; src: string; line: number }

function lex(source: string): Piece[] {
  const pieces: Piece[] = []
  let at = 0
  while (at < source.length) {
    const open = source.indexOf('{{', at)
    if (open < 0) {
      pieces.push({ kind: 'text', text: source.slice(at) })
      break
    }
    let text = source.slice(at, open)
    let start = open + 2
    if (source.startsWith('- ', start) || source.startsWith('-\n', start)) {
      text = text.replace(/\s+$/, '')
      start += 1
    }
    pieces.push({ kind: 'text', text })
    let close = start
    // Skip over string literals and comments when looking for the closing braces.
    for (;;) {
      if (close >= source.length) fail('unclosed action')
      const c = source[close]
      if (c === '"') {
        close++
        while (source[close] !== '"') {
          if (close >= source.length) fail('unclosed string')
          close += source[close] === '\\' ? 2 : 1
        }
        close++
      } else if (c === '`') {
        const j = source.indexOf('`', close + 1)
        if (j < 0) fail('unclosed raw string')
        close = j + 1
      } else if (source.startsWith('/*', close)) {
        const j = source.indexOf('*/', close)
        if (j < 0) fail('unclosed comment')
        close = j + 2
      } else if (source.startsWith('}}', close)) {
        break
      } else {
        close++
      }
    }
    let body = source.slice(start, close)
    let end = close + 2
    if (/\s-$/.test(body)) {
      body = body.slice(0, -1)
      const rest = source.slice(end)
      end += rest.length - rest.replace(/^\s+/, '').length
    }
    pieces.push({ kind: 'action', src: body.trim(), line: source.slice(0, open).split('\n').length })
    at = end
  }
  return pieces
}

function fail(message: string): never {
  throw new TemplateError(message)
}

// ---- expressions ----------------------------------------------------------------------------

type Token = { t: 'str' | 'num' | 'ident' | 'field' | 'var' | '(' | ')' | '|' | ':=' | ','; v: string }

function tokenize(src: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  while (i < src.length) {
    const c = src[i]!
    if (/\s/.test(c)) {
      i++
      continue
    }
    if (c === '"') {
      let j = i + 1
      while (src[j] !== '"') j += src[j] === '\\' ? 2 : 1
      tokens.push({ t: 'str', v: JSON.parse(src.slice(i, j + 1)) as string })
      i = j + 1
    } else if (c === '`') {
      const j = src.indexOf('`', i + 1)
      tokens.push({ t: 'str', v: src.slice(i + 1, j) })
      i = j + 1
    } else if ('()|,'.includes(c)) {
      tokens.push({ t: c as '(' | ')' | '|' | ',', v: c })
      i++
    } else if (src.startsWith(':=', i)) {
      tokens.push({ t: ':=', v: ':=' })
      i += 2
    } else {
      const m = /^[^\s()|,]+/.exec(src.slice(i))!
      const word = m[0]
      i += word.length
      if (/^-?\d+(\.\d+)?$/.test(word)) tokens.push({ t: 'num', v: word })
      else if (word.startsWith('.')) tokens.push({ t: 'field', v: word })
      else if (word.startsWith('$')) tokens.push({ t: 'var', v: word })
      else tokens.push({ t: 'ident', v: word })
    }
  }
  return tokens
}

type Scope = { dot: Value; vars: Map<string, Value> }

interface Renderer {
  include(name: string, dot: Value): string
}

function truthy(v: Value): boolean {
  if (v === null || v === undefined || v === false || v === '') return false
  if (v instanceof GoInt) return v.n !== 0
  if (typeof v === 'number') return v !== 0
  if (Array.isArray(v)) return v.length > 0
  if (typeof v === 'object') return Object.keys(v as object).length > 0
  return true
}

function field(base: Value, path: string[], what: string): Value {
  let v = base
  for (const key of path) {
    if (v === null || v === undefined) fail(`nil pointer evaluating ${what}`)
    v = (v as Record<string, Value>)[key]
  }
  return v
}

/** Go's %v: a float64 prints as strconv 'g' shortest, in exponent form when exp < -4 or exp >= 6 (1000000 → 1e+06). */
export function goFormat(v: Value): string {
  if (v === null || v === undefined) return '<no value>'
  if (v instanceof GoInt) return String(v.n)
  if (typeof v === 'number') {
    if (v === 0) return '0'
    const exp = Math.floor(Math.log10(Math.abs(v)))
    if (exp < -4 || exp >= 6) {
      const [mantissa, e] = v.toExponential().split('e') as [string, string]
      const sign = e.startsWith('-') ? '-' : '+'
      return `${mantissa}e${sign}${e.replace(/^[+-]/, '').padStart(2, '0')}`
    }
    return String(v)
  }
  if (typeof v === 'string') return v
  if (typeof v === 'boolean') return String(v)
  if (Array.isArray(v)) return `[${v.map(goFormat).join(' ')}]`
  return `map[${Object.keys(v as object)
    .sort()
    .map((k) => `${k}:${goFormat((v as Record<string, Value>)[k])}`)
    .join(' ')}]`
}

function toYaml(v: Value): string {
  if (v === null || v === undefined) return 'null'
  return stringifyYaml(v, { sortMapEntries: true, lineWidth: 0 }).replace(/\n$/, '')
}

function indentLines(text: string, n: number): string {
  const pad = ' '.repeat(n)
  return text
    .split('\n')
    .map((line) => pad + line)
    .join('\n')
}

function sprintf(format: string, args: Value[]): string {
  let i = 0
  return format.replace(/%[sdvq%]/g, (verb) => (verb === '%%' ? '%' : verb === '%q' ? JSON.stringify(goFormat(args[i++])) : goFormat(args[i++])))
}

function functions(renderer: Renderer): Record<string, (...args: Value[]) => Value> {
  return {
    include: (name, dot) => renderer.include(String(name), dot),
    default: (fallback, value) => (truthy(value) ? value : fallback),
    required: (message, value) => (value === null || value === undefined || value === '' ? fail(`required: ${String(message)}`) : value),
    fail: (message) => fail(`fail: ${String(message)}`),
    trunc: (n, s) => String(s).slice(0, num(n)),
    trimSuffix: (suffix, s) => (String(s).endsWith(String(suffix)) ? String(s).slice(0, -String(suffix).length) : String(s)),
    contains: (needle, s) => String(s).includes(String(needle)),
    replace: (from, to, s) => String(s).split(String(from)).join(String(to)),
    printf: (format, ...args) => sprintf(String(format), args),
    print: (...args) => args.map(goFormat).join(''),
    toString: (v: Value) => goFormat(v),
    quote: (...args) => args.map((a) => JSON.stringify(goFormat(a ?? ''))).join(' '),
    toYaml,
    nindent: (n, s) => `\n${indentLines(String(s), num(n))}`,
    indent: (n, s) => indentLines(String(s), num(n)),
    sha256sum: (s) => createHash('sha256').update(String(s)).digest('hex'),
    eq: (a, b) => (a instanceof GoInt || b instanceof GoInt ? num(a) === num(b) : a === b),
    ne: (a, b) => (a instanceof GoInt || b instanceof GoInt ? num(a) !== num(b) : a !== b),
    gt: (a, b) => num(a) > num(b),
    lt: (a, b) => num(a) < num(b),
    not: (a) => !truthy(a),
    and: (...args) => args.find((a) => !truthy(a)) ?? args.at(-1),
    or: (...args) => args.find((a) => truthy(a)) ?? args.at(-1),
    int: (a) => new GoInt(num(a)),
    int64: (a) => new GoInt(num(a)),
    hasKey: (map, key) => isObject(map) && Object.hasOwn(map, String(key)),
    index: (v, ...keys) => keys.reduce((at: Value, key) => (isObject(at) ? at[String(key)] : Array.isArray(at) ? at[num(key)] : undefined), v),
    kindIs: (kind, v) =>
      kind === 'invalid'
        ? v === null || v === undefined
        : kind === 'string'
          ? typeof v === 'string'
          : kind === 'map'
            ? typeof v === 'object' && v !== null && !Array.isArray(v)
            : kind === 'slice'
              ? Array.isArray(v)
              : false,
  }
}

function evalPipeline(tokens: Token[], scope: Scope, fns: Record<string, (...args: Value[]) => Value>): Value {
  let pos = 0
  const peek = () => tokens[pos]

  function operand(): Value {
    const tok = tokens[pos++]
    if (!tok) fail('unexpected end of expression')
    switch (tok.t) {
      case 'str':
        return tok.v
      case 'num':
        return tok.v.includes('.') ? Number(tok.v) : new GoInt(Number(tok.v))
      case 'field':
        return tok.v === '.' ? scope.dot : field(scope.dot, tok.v.slice(1).split('.'), tok.v)
      case 'var': {
        const [name, ...path] = tok.v.split('.')
        if (!scope.vars.has(name!)) fail(`undefined variable ${name}`)
        return field(scope.vars.get(name!), path, tok.v)
      }
      case '(': {
        const value = pipeline()
        if (tokens[pos++]?.t !== ')') fail('missing )')
        return value
      }
      case 'ident':
        if (tok.v === 'true') return true
        if (tok.v === 'false') return false
        if (tok.v === 'nil') return null
        fail(`function ${tok.v} used as a value`)
      default:
        fail(`unexpected ${tok.v}`)
    }
  }

  function command(piped: Value, hasPiped: boolean): Value {
    const first = peek()
    if (first?.t === 'ident' && !['true', 'false', 'nil'].includes(first.v)) {
      pos++
      const fn = fns[first.v] ?? fail(`unknown function ${first.v}`)
      const args: Value[] = []
      while (peek() && peek()!.t !== '|' && peek()!.t !== ')') args.push(operand())
      if (hasPiped) args.push(piped)
      return fn(...args)
    }
    const value = operand()
    const args: Value[] = []
    while (peek() && peek()!.t !== '|' && peek()!.t !== ')') args.push(operand())
    if (hasPiped) args.push(piped)
    if (typeof value === 'function') return (value as (...a: Value[]) => Value)(...args)
    if (args.length > 0) fail('arguments to a non-function')
    return value
  }

  function pipeline(): Value {
    let value = command(undefined, false)
    while (peek()?.t === '|') {
      pos++
      value = command(value, true)
    }
    return value
  }

  const value = pipeline()
  if (pos !== tokens.length) fail(`unexpected ${tokens[pos]!.v}`)
  return value
}

// ---- the tree -------------------------------------------------------------------------------

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'output'; src: string }
  | { kind: 'if'; branches: { cond: string | undefined; body: Node[] }[] }
  | { kind: 'with'; src: string; body: Node[]; orElse: Node[] }
  | { kind: 'range'; vars: string[]; src: string; body: Node[] }

function parseTree(pieces: Piece[], defines: Map<string, Node[]>): Node[] {
  let at = 0
  function block(stopAt: string[]): { nodes: Node[]; stop: string } {
    const nodes: Node[] = []
    while (at < pieces.length) {
      const piece = pieces[at++]!
      if (piece.kind === 'text') {
        nodes.push({ kind: 'text', text: piece.text })
        continue
      }
      const src = piece.src
      if (src.startsWith('/*')) continue
      const keyword = /^(if|else if|else|end|with|range|define)\b/.exec(src)?.[1]
      if (keyword === 'end' || keyword === 'else' || keyword === 'else if') {
        if (!stopAt.includes(keyword)) fail(`unexpected {{${src}}} at line ${piece.line}`)
        return { nodes, stop: src }
      }
      if (keyword === 'define') {
        const name = JSON.parse(src.slice('define'.length).trim()) as string
        defines.set(name, block(['end']).nodes)
      } else if (keyword === 'if') {
        const branches: { cond: string | undefined; body: Node[] }[] = []
        let cond: string | undefined = src.slice(2).trim()
        for (;;) {
          const { nodes: body, stop } = block(['else', 'else if', 'end'])
          branches.push({ cond, body })
          if (stop === 'end') break
          cond = stop === 'else' ? undefined : stop.slice('else if'.length).trim()
        }
        nodes.push({ kind: 'if', branches })
      } else if (keyword === 'with') {
        const { nodes: body, stop } = block(['else', 'end'])
        const orElse = stop === 'else' ? block(['end']).nodes : []
        nodes.push({ kind: 'with', src: src.slice(4).trim(), body, orElse })
      } else if (keyword === 'range') {
        const rest = src.slice(5).trim()
        const m = /^(\$\w+)\s*(?:,\s*(\$\w+))?\s*:=\s*(.+)$/.exec(rest)
        const { nodes: body } = block(['end'])
        nodes.push({ kind: 'range', vars: m ? [m[1]!, ...(m[2] ? [m[2]] : [])] : [], src: m ? m[3]! : rest, body })
      } else {
        nodes.push({ kind: 'output', src })
      }
    }
    if (stopAt.length > 0) fail(`missing {{end}}`)
    return { nodes, stop: '' }
  }
  return block([]).nodes
}

// ---- the chart --------------------------------------------------------------------------------

export interface RenderOptions {
  readonly releaseName?: string
  readonly namespace?: string
}

export interface RenderedChart {
  /** Template file (templates/x.yaml) → rendered text. */
  readonly files: Map<string, string>
  /** Every rendered YAML document (NOTES.txt excluded), parsed. */
  readonly documents: Record<string, unknown>[]
}

function isObject(v: Value): v is Record<string, Value> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Helm's coalescing of user values over the chart's defaults: maps merge, null deletes a key, anything else replaces. */
export function mergeValues(base: Value, over: Value): Value {
  if (!isObject(base) || !isObject(over)) return over === undefined ? base : over
  const merged: Record<string, Value> = { ...base }
  for (const [key, value] of Object.entries(over)) {
    if (value === null) delete merged[key]
    else merged[key] = mergeValues(base[key], value)
  }
  return merged
}

export function renderChart(chartDir: string, values: Value, options: RenderOptions = {}): RenderedChart {
  const chart = parseYaml(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as { name: string; version: string; appVersion: string }
  const templatesDir = join(chartDir, 'templates')
  const defines = new Map<string, Node[]>()
  const trees = new Map<string, Node[]>()
  for (const name of readdirSync(templatesDir).sort()) {
    const tree = parseTree(lex(readFileSync(join(templatesDir, name), 'utf8')), defines)
    if (!name.startsWith('_')) trees.set(`${chart.name}/templates/${name}`, tree)
  }
  const root = {
    Values: values,
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion },
    Release: { Name: options.releaseName ?? 'fapi-gateway', Namespace: options.namespace ?? 'default', Service: 'Helm' },
    Template: { BasePath: `${chart.name}/templates` },
    Files: { Get: (path: Value) => readFileSync(join(chartDir, String(path)), 'utf8') },
  }
  const renderer: Renderer = {
    include(name, dot) {
      const tree = defines.get(name) ?? trees.get(name) ?? fail(`no template ${name}`)
      return run(tree, { dot, vars: new Map([['$', root]]) })
    },
  }
  const fns = functions(renderer)
  const evaluate = (src: string, scope: Scope) => evalPipeline(tokenize(src), scope, fns)

  function run(nodes: Node[], scope: Scope): string {
    let out = ''
    for (const node of nodes) {
      switch (node.kind) {
        case 'text':
          out += node.text
          break
        case 'output': {
          const declaration = /^(\$\w+)\s*:?=\s*(.+)$/s.exec(node.src)
          if (declaration) {
            scope.vars.set(declaration[1]!, evaluate(declaration[2]!, scope))
            break
          }
          const value = evaluate(node.src, scope)
          out += value === null || value === undefined ? '' : goFormat(value)
          break
        }
        case 'if': {
          const branch = node.branches.find((b) => b.cond === undefined || truthy(evaluate(b.cond, scope)))
          if (branch) out += run(branch.body, scope)
          break
        }
        case 'with': {
          const value = evaluate(node.src, scope)
          out += truthy(value) ? run(node.body, { ...scope, dot: value }) : run(node.orElse, scope)
          break
        }
        case 'range': {
          const value = evaluate(node.src, scope)
          const entries: [Value, Value][] = Array.isArray(value)
            ? value.map((v, i) => [new GoInt(i), v])
            : isObject(value)
              ? Object.keys(value)
                  .sort()
                  .map((k) => [k, value[k]])
              : []
          for (const [key, item] of entries) {
            const vars = new Map(scope.vars)
            if (node.vars.length === 1) vars.set(node.vars[0]!, item)
            if (node.vars.length === 2) {
              vars.set(node.vars[0]!, key)
              vars.set(node.vars[1]!, item)
            }
            out += run(node.body, { dot: item, vars })
          }
          break
        }
      }
    }
    return out
  }

  const files = new Map<string, string>()
  const documents: Record<string, unknown>[] = []
  for (const [name, tree] of trees) {
    const text = run(tree, { dot: root, vars: new Map([['$', root]]) })
    const file = name.slice(chart.name.length + 1)
    files.set(file, text)
    if (!file.endsWith('.yaml')) continue
    for (const doc of text.split(/^---\s*$/m)) {
      const parsed = parseYaml(doc) as Record<string, unknown> | null
      if (parsed) documents.push(parsed)
    }
  }
  return { files, documents }
}
