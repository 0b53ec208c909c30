// A stdout nobody reads (a stuck log shipper) must not stall requests: log lines and security
// events queue up to log.stdoutBufferBytes, then are dropped and counted.
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { freePort } from '../../src/dev/environment.ts'
import { createPartnerClient } from '../../src/dev/partner-client.ts'
import { MAIN, waitForReady } from '../support/gateway-process.ts'
import { startTestGateway, testPki } from '../support/gateway.ts'

async function metric(adminPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return line === undefined ? Number.NaN : Number(line.split(' ')[1])
}

/** Reads whatever the pipe holds now, without blocking. */
function drain(fd: number): string {
  const chunks: Buffer[] = []
  const buffer = Buffer.alloc(65_536)
  for (;;) {
    let read: number
    try {
      read = readSync(fd, buffer)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') break
      throw error
    }
    if (read === 0) break
    chunks.push(Buffer.from(buffer.subarray(0, read)))
  }
  return Buffer.concat(chunks).toString('utf8')
}

it('keeps answering while nobody reads stdout, counts what it dropped, and writes only whole lines', async () => {
  const env = await startTestGateway({})
  const dir = mkdtempSync(join(tmpdir(), 'fapigw-stdout-'))
  const fifo = join(dir, 'stdout')
  execFileSync('mkfifo', [fifo])
  // The test holds the read end and does not read it until the end: the pipe fills and stays full.
  const readEnd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK)
  const writeEnd = openSync(fifo, constants.O_WRONLY)
  const port = await freePort()
  const adminPort = await freePort()
  const child = spawn(process.execPath, [MAIN, 'start', '--config', env.configFile], {
    env: { ...process.env, FAPI_GATEWAY__LISTENER__PORT: String(port), FAPI_GATEWAY__ADMIN__PORT: String(adminPort), FAPI_GATEWAY__LOG__LEVEL: 'info', FAPI_GATEWAY__LOG__STDOUT_BUFFER_BYTES: '65536' },
    stdio: ['ignore', writeEnd, 'inherit'],
  })
  closeSync(writeEnd)
  const client = createPartnerClient({ baseUrl: `https://127.0.0.1:${port}`, caPem: (await testPki()).root.certPem })
  let written = ''
  try {
    await waitForReady(adminPort)
    const refusals = 600 // each a security event of about 1 KB: far more than the pipe and the buffer hold
    for (let sent = 0; sent < refusals; sent += 50) {
      const answers = await Promise.all(Array.from({ length: 50 }, () => client.send('GET', '/accounts/1', [])))
      for (const answer of answers) assert.equal(answer.status, 401)
    }
    const dropped = await metric(adminPort, 'fapi_gateway_stdout_dropped_lines_total')
    assert.ok(dropped > 0 && dropped < refusals, `dropped ${dropped} lines`)

    await client.close()
    child.kill('SIGTERM')
    const exited = once(child, 'exit')
    while (child.exitCode === null) {
      written += drain(readEnd)
      await delay(20)
    }
    assert.deepEqual((await exited)[0], 0)
    written += drain(readEnd)
    const lines = written.trim().split('\n')
    for (const line of lines) JSON.parse(line)
    const events = lines.filter((line) => line.includes('GW_TOKEN_MISSING'))
    assert.ok(events.length >= 50, `${events.length} events written`)
    assert.ok(events.length + dropped >= refusals, `${events.length} written + ${dropped} dropped < ${refusals}`)
    assert.match(written, /"msg":"fapi-gateway stopped"/, 'the last log line is flushed at exit')
  } finally {
    await client.close().catch(() => undefined)
    if (child.exitCode === null) child.kill('SIGKILL')
    closeSync(readEnd)
    rmSync(dir, { recursive: true, force: true })
    await env.close()
  }
})
