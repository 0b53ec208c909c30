import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runConformanceCommand } from '../../../src/conformance/cli.ts'

function io() {
  const out: string[] = []
  const err: string[] = []
  return { out, err, io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t), colour: false } }
}

describe('fapi-gateway conformance command line', () => {
  it('prints its usage with --help, labelled as a self-assessment', async () => {
    const { out, io: streams } = io()
    assert.equal(await runConformanceCommand(['--help'], streams), 0)
    assert.match(out.join(''), /--config FILE[\s\S]*not an OpenID Foundation certification/)
  })

  it('exits 2 on usage errors', async () => {
    for (const argv of [[], ['--config', 'a.yaml', '--dev'], ['--bogus'], ['--dev', '--mode', 'bearer'], ['--config', 'a.yaml', '--format', 'pdf']]) {
      const { err, io: streams } = io()
      assert.equal(await runConformanceCommand(argv, streams), 2, argv.join(' '))
      assert.ok(err.join('').length > 0)
    }
  })

  it('exits 2 on an invalid configuration, naming the problem', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'conformance-cli-'))
    try {
      const file = join(dir, 'runner.yaml')
      writeFileSync(file, 'mode: dpop\n')
      const { err, io: streams } = io()
      assert.equal(await runConformanceCommand(['--config', file], streams), 2)
      assert.match(err.join(''), /runner\.yaml: target: /)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('exits 2 when the development issuer is asked for without --dev', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'conformance-cli-'))
    try {
      const file = join(dir, 'runner.yaml')
      writeFileSync(file, 'mode: dpop\ntarget: { url: "https://127.0.0.1:1/x" }\nclients: { primary: {} }\ntokens: { source: devIssuer }\n')
      const { err, io: streams } = io()
      assert.equal(await runConformanceCommand(['--config', file], streams), 2)
      assert.match(err.join(''), /devIssuer needs the in-process development issuer/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
