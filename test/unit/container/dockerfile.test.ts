// The container image, checked statically: there is no Docker engine on our machines, so the
// Dockerfile is parsed and held to what the image promises (docs/deploying.md, "The container image").
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))

interface Instruction {
  readonly keyword: string
  readonly args: string
}
interface Stage {
  readonly from: string
  readonly name: string | undefined
  readonly instructions: Instruction[]
}

/** Dockerfile instructions with line continuations joined and comments dropped, grouped by stage. */
function stages(): Stage[] {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\r?\n/g, ' ')
  const result: Stage[] = []
  for (const line of text.split('\n')) {
    const trimmed = line.trim()
    if (trimmed === '' || trimmed.startsWith('#')) continue
    const [, keyword, args] = /^(\S+)\s*(.*)$/.exec(trimmed)!
    const instruction = { keyword: keyword!.toUpperCase(), args: args!.replace(/\s+/g, ' ').trim() }
    if (instruction.keyword === 'FROM') {
      const [, from, name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args)!
      result.push({ from: from!, name, instructions: [] })
    } else {
      assert.ok(result.length > 0, `${instruction.keyword} before FROM`)
      result.at(-1)!.instructions.push(instruction)
    }
  }
  return result
}

const all = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword)

test('multi-stage: a build stage that runs npm ci and drops the dev dependencies, then a Node 24 runtime', () => {
  const [build, runtime, ...rest] = stages()
  assert.ok(build && runtime, 'two stages')
  assert.deepEqual(rest, [])
  assert.match(build.from, /^node:24[-.\w]*$/)
  const run = all(build, 'RUN')
    .map((i) => i.args)
    .join(' && ')
  assert.match(run, /\bnpm ci\b/)
  assert.match(run, /\bnpm prune --omit=dev\b/)
  assert.match(runtime.from, /^(gcr\.io\/distroless\/nodejs24-debian1[23](:[\w.-]+)?|node:24(\.\d+)*-(bookworm-|trixie-)?slim)$/)
})

test('the runtime stage: non-root user, no HEALTHCHECK, OCI labels, only what runs, the gateway as command', () => {
  const runtime = stages().at(-1)!
  const user = all(runtime, 'USER').at(-1)?.args
  assert.ok(user, 'USER is set')
  assert.doesNotMatch(user, /^(root|0)(:|$)/, 'not root')
  const values = parseYaml(readFileSync(join(ROOT, 'helm/fapi-gateway/values.yaml'), 'utf8')) as {
    podSecurityContext: { runAsUser: number }
    containerPorts: { https: number; admin: number }
  }
  assert.equal(user.split(':')[0], String(values.podSecurityContext.runAsUser), 'the chart runs the image as the same user')

  assert.equal(stages().flatMap((s) => all(s, 'HEALTHCHECK')).length, 0, 'no HEALTHCHECK: Kubernetes probes do it')

  const labels = all(runtime, 'LABEL')
    .map((i) => i.args)
    .join(' ')
  for (const key of ['title', 'description', 'licenses', 'version', 'revision', 'created', 'source'])
    assert.match(labels, new RegExp(`org\\.opencontainers\\.image\\.${key}=`), key)

  const copies = all(runtime, 'COPY').map((i) => i.args)
  assert.ok(
    copies.every((args) => args.includes('--from=build')),
    'the runtime copies only from the build stage',
  )
  assert.deepEqual(copies.map((args) => args.split(' ').at(-2)).sort(), ['/app/node_modules', '/app/package.json', '/app/src'])
  assert.equal(all(runtime, 'RUN').length, 0, 'nothing runs in the runtime stage (no shell in distroless)')
  assert.equal(all(runtime, 'VOLUME').length, 0)

  const cmd = JSON.parse(all(runtime, 'CMD').at(-1)!.args) as string[]
  assert.deepEqual(cmd.slice(0, 2), ['src/main.ts', 'start'])
  assert.deepEqual(all(runtime, 'EXPOSE').at(-1)!.args.split(' ').map(Number), [values.containerPorts.https, values.containerPorts.admin])
})

test('.dockerignore lets only package.json, the lock file and src/ into the build context', () => {
  const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
  assert.equal(lines[0], '*', 'an allow-list')
  for (const allowed of ['!package.json', '!package-lock.json', '!src/']) assert.ok(lines.includes(allowed), allowed)
  assert.ok(!lines.some((l) => /^!(test|node_modules|certs|\.git|bench)/.test(l)))
})

test('src/ imports only production dependencies, so the image without dev dependencies runs', () => {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
  const offenders: string[] = []
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name)
      if (statSync(path).isDirectory()) walk(path)
      else if (name.endsWith('.ts')) {
        for (const match of readFileSync(path, 'utf8').matchAll(/(?:\bfrom|\bimport\(?)\s*'([^'.][^']*)'/g)) {
          const specifier = match[1]!
          if (specifier.startsWith('node:')) continue
          const pkg = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!
          if (!(pkg in manifest.dependencies)) offenders.push(`${relative(ROOT, path)} imports ${specifier}`)
        }
      }
    }
  }
  walk(join(ROOT, 'src'))
  assert.deepEqual(offenders, [])
})

test('the image carries no development code: src/ loads nothing outside src/ at start, dev/ only through loadDevelopmentModule', () => {
  const offenders: string[] = []
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name)
      if (statSync(path).isDirectory()) walk(path)
      else if (name.endsWith('.ts')) {
        const text = readFileSync(path, 'utf8')
        // Static imports and re-exports (type-only ones are erased), and dynamic imports.
        const statements = [
          ...text.matchAll(/^(?:import|export)\s+(?!type\b)[^;'"]*?from\s+'(\.[^']*)'|(loadDevelopmentModule\(\(\) => )?import\('(\.[^']*)'\)/gm),
        ]
        for (const match of statements) {
          const target = match[1] ?? match[3]!
          const outside = relative(join(ROOT, 'src'), join(dir, target)).startsWith('..')
          if (outside && match[2] === undefined) offenders.push(`${relative(ROOT, path)}: ${match[0].replace(/\s+/g, ' ')}`)
        }
      }
    }
  }
  walk(join(ROOT, 'src'))
  assert.deepEqual(offenders, [])
})

test("the image's Node major version satisfies package.json engines", () => {
  const engines = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node
  const [, major] = /^>=(\d+)/.exec(engines)!
  assert.ok(24 >= Number(major))
  assert.match(stages().at(-1)!.from, /nodejs24|node:24/)
})
