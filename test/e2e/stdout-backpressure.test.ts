// A stdout nobody reads (a stuck log shipper) must not stall requests: log lines and security
// events queue up to log.stdoutBufferBytes, then are dropped and counted. At shutdown the queue
// is written whole, or given up on when nobody reads.
import { after, before, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { freePort } from '../../dev/environment.ts'
import { createPartnerClient } from '../../src/client/partner-client.ts'
import { STDOUT_CLOSE_TIMEOUT_MS } from '../../src/observability/stdout.ts'
import { MAIN, waitForReady } from '../support/gateway-process.ts'
import { startTestGateway, testPki, type TestGateway } from '../support/gateway.ts'

let env: TestGateway
let caPem: string
before(async () => {
  env = await startTestGateway({})
  caPem = (await testPki()).root.certPem
})
after(() => env.close())

async function metric(adminPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return line === undefined ? Number.NaN : Number(line.split(' ')[1])
}

/** Reads what the pipe holds now, at most `size` bytes, without blocking. */
function readSome(fd: number, size: number): string {
  const buffer = Buffer.alloc(size)
  try {
    return buffer.subarray(0, readSync(fd, buffer)).toString('latin1')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EAGAIN') return ''
    throw error
  }
}

interface StuckStdoutGateway {
  readonly child: ChildProcess
  /** The read end of the gateway's stdout, not read until a test says so. */
  readonly readEnd: number
  readonly adminPort: number
  /** Sends `count` requests without credentials (each one a refusal, a security event of about 1 KB and an access-log line). */
  refuse(count: number): Promise<void>
  close(): Promise<void>
}

async function startWithStuckStdout(): Promise<StuckStdoutGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'fapigw-stdout-'))
  const fifo = join(dir, 'stdout')
  execFileSync('mkfifo', [fifo])
  const readEnd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK)
  const writeEnd = openSync(fifo, constants.O_WRONLY)
  const port = await freePort()
  const adminPort = await freePort()
  const child = spawn(process.execPath, [MAIN, 'start', '--config', env.configFile], {
    env: {
      ...process.env,
      FAPI_GATEWAY__LISTENER__PORT: String(port),
      FAPI_GATEWAY__ADMIN__PORT: String(adminPort),
      FAPI_GATEWAY__LOG__LEVEL: 'info',
      FAPI_GATEWAY__LOG__STDOUT_BUFFER_BYTES: '65536',
    },
    stdio: ['ignore', writeEnd, 'inherit'],
  })
  closeSync(writeEnd)
  const client = createPartnerClient({ baseUrl: `https://127.0.0.1:${port}`, caPem })
  const close = async () => {
    await client.close().catch(() => undefined)
    if (child.exitCode === null) child.kill('SIGKILL')
    closeSync(readEnd)
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    await waitForReady(adminPort)
  } catch (error) {
    await close()
    throw error
  }
  return {
    child,
    readEnd,
    adminPort,
    async refuse(count) {
      for (let sent = 0; sent < count; sent += 50) {
        const answers = await Promise.all(Array.from({ length: 50 }, () => client.send('GET', '/accounts/1', [])))
        for (const answer of answers) assert.equal(answer.status, 401)
      }
      await client.close()
    },
    close,
  }
}

it('keeps answering while nobody reads stdout, counts what it dropped, and writes only whole lines', async () => {
  const gateway = await startWithStuckStdout()
  try {
    const refusals = 600 // far more than the pipe and the 64 KiB buffer hold
    await gateway.refuse(refusals)
    const dropped = await metric(gateway.adminPort, 'fapi_gateway_stdout_dropped_lines_total')
    // Each refusal writes two lines: its security event and its access-log line.
    assert.ok(dropped > 0 && dropped < 2 * refusals, `dropped ${dropped} lines`)

    gateway.child.kill('SIGTERM')
    const exited = once(gateway.child, 'exit')
    // Shutdown starts with the pipe full and a write waiting on it. Read back in page-sized bites,
    // so that two writers on the pipe would show as lines cut in half (a synchronous flush at exit
    // used to write beside the write still in flight).
    await delay(1_000)
    let written = ''
    while (gateway.child.exitCode === null) {
      written += readSome(gateway.readEnd, 4096)
      await delay(1)
    }
    assert.deepEqual((await exited)[0], 0)
    for (let more = readSome(gateway.readEnd, 65_536); more !== ''; more = readSome(gateway.readEnd, 65_536)) written += more
    const lines = written.trim().split('\n')
    for (const line of lines) JSON.parse(line)
    const events = lines.filter((line) => line.includes('GW_TOKEN_MISSING'))
    assert.ok(events.length >= 50, `${events.length} events written`)
    assert.ok(events.length + dropped >= refusals, `${events.length} written + ${dropped} dropped < ${refusals}`)
    assert.match(written, /"msg":"fapi-gateway stopped"/, 'the last log line is flushed at exit')
  } finally {
    await gateway.close()
  }
})

it('still exits on SIGTERM when stdout is never read, after giving up on what is queued', async () => {
  const gateway = await startWithStuckStdout()
  try {
    await gateway.refuse(200)
    const stoppedAt = Date.now()
    gateway.child.kill('SIGTERM')
    const [code] = await once(gateway.child, 'exit')
    assert.equal(code, 0)
    // Not a speed claim: it shows that the exit came from giving up, not from a reader.
    assert.ok(Date.now() - stoppedAt >= STDOUT_CLOSE_TIMEOUT_MS - 100, 'waited for the reader first')
  } finally {
    await gateway.close()
  }
})
