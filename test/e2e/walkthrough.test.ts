// README "Protect your own API in five minutes", run as written: its commands in a shell, from a
// folder of their own (src/ linked in, so `node src/main.ts` works and certs/dev/ is the test's).
// Two substitutions only: the test's plain-HTTP API stands in for the one-liner (on a free port
// instead of 9000), and `dev` gets --port 0 --issuer-port 0 (the machine is shared).
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { REPO_ROOT } from '../../dev/environment.ts'
import { runShell, startShell, type LongRunning } from '../support/cli.ts'

function walkthroughBlocks(): string[] {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8')
  const start = readme.indexOf('### Protect your own API in five minutes')
  assert.ok(start >= 0, 'the README has the walkthrough')
  const section = readme.slice(start, readme.indexOf('\n## ', start))
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1]!.trim())
}

describe('the README walkthrough: protect your own API in five minutes', () => {
  const blocks = walkthroughBlocks()
  let folder: string
  let api: Server
  let apiPort: number
  const received: { url: string; clientId: string | undefined; authorization: string | undefined }[] = []
  let dev: LongRunning | undefined

  before(async () => {
    folder = mkdtempSync(join(tmpdir(), 'fapi-gateway-walkthrough-'))
    symlinkSync(join(REPO_ROOT, 'src'), join(folder, 'src'))
    api = createServer((req, res) => {
      received.push({ url: req.url ?? '', clientId: req.headers['x-fapi-gateway-client-id'] as string | undefined, authorization: req.headers.authorization })
      res.end('hello from my API\n')
    })
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve))
    apiPort = (api.address() as AddressInfo).port
  })

  after(async () => {
    await dev?.stop()
    api.closeAllConnections()
    await new Promise<void>((resolve) => api.close(() => resolve()))
    rmSync(folder, { recursive: true, force: true })
  })

  it('has three steps: your API, the development environment, the requests', () => {
    assert.equal(blocks.length, 3, blocks.join('\n---\n'))
    assert.match(blocks[0]!, /listen\(9000, '127\.0\.0\.1'\)/)
    assert.match(blocks[1]!, /^node src\/main\.ts dev --upstream http:\/\/127\.0\.0\.1:9000$/)
  })

  it("takes a newcomer to a legitimate DPoP request and a refused replay, with the project's commands only", async () => {
    const devCommand = `${blocks[1]!.replace('127.0.0.1:9000', `127.0.0.1:${apiPort}`)} --port 0 --issuer-port 0`
    dev = await startShell(devCommand, folder, 'next, in another terminal:')
    assert.match(dev.stdout(), /PKI created/)

    const requests = await runShell(blocks[2]!, folder)
    const answers = requests.stdout.split(/^(?=HTTP \d{3})/m)
    assert.equal(answers.length, 2, requests.stdout + requests.stderr)
    assert.match(answers[0]!, /^HTTP 200 OK\nx-fapi-interaction-id: [0-9a-f-]{36}\n\nhello from my API\n$/)
    assert.match(answers[1]!, /^HTTP 401 Unauthorized\n/)
    assert.match(answers[1]!, /^www-authenticate: DPoP error="invalid_dpop_proof"/m)
    assert.match(answers[1]!, /^x-fapi-interaction-id: [0-9a-f-]{36}$/m)
    assert.match(answers[1]!, /"code":"GW_DPOP_REPLAY"/)
    assert.equal(requests.code, 1, 'the refused request exits 1')
    assert.equal(requests.stderr, 'new DPoP key written to my-key.jwk\n')

    assert.deepEqual(
      received.map((r) => [r.url, r.clientId]),
      [['/hello', 'partner-a']],
      'your API saw the legitimate request only',
    )
    assert.equal(statSync(join(folder, 'my-key.jwk')).mode & 0o777, 0o600, 'the DPoP key is readable by its owner only')

    const stopped = await dev.stop()
    assert.equal(stopped.code, 0, stopped.stderr)
    assert.ok(!existsSync(join(folder, 'certs', 'dev', 'dev-env.json')), 'dev-env.json is removed when the environment stops')
  })
})
