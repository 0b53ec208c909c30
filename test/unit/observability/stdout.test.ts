// The stdout writer: whole lines, batches a pipe writes atomically, a bound on what waits for a
// slow reader, and a shutdown that neither cuts lines nor waits forever.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { setTimeout as delay } from 'node:timers/promises'
import { PIPE_BUF, createStdoutWriter } from '../../../src/observability/stdout.ts'

/** A stream that records each write and completes it when `release` says so. */
function recordingStream(release: (done: () => void) => void = setImmediate) {
  const writes: string[] = []
  let inFlight = 0
  let mostInFlight = 0
  const stream = new Writable({
    decodeStrings: false,
    write(chunk: string, _encoding, callback) {
      writes.push(chunk)
      mostInFlight = Math.max(mostInFlight, ++inFlight)
      release(() => {
        inFlight--
        callback()
      })
    },
  })
  return { stream, writes, mostInFlight: () => mostInFlight }
}

const line = (n: number, size = 200) => `${JSON.stringify({ n, pad: 'x'.repeat(size) })}\n`

async function settled(writer: { close(timeoutMs?: number): Promise<void> }) {
  await writer.close(1_000)
}

describe('stdout writer', () => {
  it('writes whole lines in order, in batches of at most PIPE_BUF bytes, one at a time', async () => {
    const out = recordingStream()
    const writer = createStdoutWriter(1 << 20, out.stream)
    const sent = Array.from({ length: 300 }, (_, n) => line(n, n % 7 === 0 ? 1500 : 150))
    for (const l of sent) writer.stream.write(l)
    await settled(writer)
    assert.equal(out.writes.join(''), sent.join(''))
    assert.ok(out.writes.length < sent.length / 2, `${out.writes.length} writes for ${sent.length} lines: lines are batched`)
    for (const chunk of out.writes) {
      assert.ok(Buffer.byteLength(chunk) <= PIPE_BUF, `a write of ${Buffer.byteLength(chunk)} bytes`)
      assert.ok(chunk.endsWith('\n'))
    }
    assert.equal(out.mostInFlight(), 1)
  })

  it('counts bytes, not characters, against PIPE_BUF', async () => {
    const out = recordingStream()
    const writer = createStdoutWriter(1 << 20, out.stream)
    for (let n = 0; n < 40; n++) writer.stream.write(`${JSON.stringify({ n, text: 'é€'.repeat(100) })}\n`)
    await settled(writer)
    for (const chunk of out.writes) assert.ok(Buffer.byteLength(chunk) <= PIPE_BUF, `a write of ${Buffer.byteLength(chunk)} bytes`)
  })

  it('writes a line longer than PIPE_BUF alone and whole', async () => {
    const out = recordingStream()
    const writer = createStdoutWriter(1 << 20, out.stream)
    const long = line(1, 10_000)
    writer.stream.write(line(0))
    writer.stream.write(long)
    writer.stream.write(line(2))
    await settled(writer)
    assert.ok(out.writes.includes(long))
    assert.equal(out.writes.join(''), line(0) + long + line(2))
  })

  it('holds at most maxBufferedBytes for a reader that does not read, then drops and counts', async () => {
    const out = recordingStream(() => undefined) // the first write never completes
    const writer = createStdoutWriter(10_000, out.stream)
    let dropped = 0
    writer.onDrop((count) => (dropped += count))
    const same = line(0)
    const size = Buffer.byteLength(same)
    for (let n = 0; n < 200; n++) writer.stream.write(same)
    // One line is in the stream's hands; the queue holds what fits in 10,000 bytes.
    assert.equal(dropped, 200 - 1 - Math.floor(10_000 / size))
    assert.equal(out.writes.length, 1)
  })

  it('when full, drops the oldest queued lines, so the newest (a shutdown, an attack under way) are the ones kept', async () => {
    // The first write is held until the queue has overflowed; every later one completes at once.
    let held = true
    let release: () => void = () => undefined
    const out = recordingStream((done) => (held ? (release = done) : setImmediate(done)))
    const writer = createStdoutWriter(10_000, out.stream)
    let dropped = 0
    writer.onDrop((count) => (dropped += count))
    for (let n = 0; n < 200; n++) writer.stream.write(line(n))
    writer.stream.write('{"msg":"fapi-gateway stopped"}\n')
    assert.ok(dropped > 0)
    const closed = writer.close()
    held = false
    release()
    await closed
    const written = out.writes.join('')
    assert.ok(written.endsWith('{"msg":"fapi-gateway stopped"}\n'), 'the last line written is kept')
    assert.ok(written.startsWith(line(0)), "the line already in the stream's hands is written")
    assert.ok(!written.includes(line(1)), 'the oldest queued line made room')
  })

  it('close() gives up on a reader that does not read, counting what it discards; later lines are dropped', async () => {
    const out = recordingStream(() => undefined)
    const writer = createStdoutWriter(1 << 20, out.stream)
    let dropped = 0
    writer.onDrop((count) => (dropped += count))
    for (let n = 0; n < 30; n++) writer.stream.write(line(n))
    const queued = 30 - out.writes[0]!.split('\n').length + 1
    await writer.close(50)
    assert.equal(dropped, queued)
    writer.stream.write(line(99))
    assert.equal(dropped, queued + 1)
    assert.equal(out.writes.length, 1)
  })

  it('close() waits for a slow reader that does read', async () => {
    const out = recordingStream((done) => setTimeout(done, 5))
    const writer = createStdoutWriter(1 << 20, out.stream)
    const sent = Array.from({ length: 100 }, (_, n) => line(n))
    for (const l of sent) writer.stream.write(l)
    await writer.close(10_000)
    assert.equal(out.writes.join(''), sent.join(''))
  })

  it('a stream that fails (the reader went away) drops lines from then on, without throwing', async () => {
    const stream = new Writable({
      write: (_chunk, _encoding, callback) => setImmediate(() => callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }))),
    })
    const writer = createStdoutWriter(1 << 20, stream)
    let dropped = 0
    writer.onDrop((count) => (dropped += count))
    writer.stream.write(line(0))
    writer.stream.write(line(1))
    await once(stream, 'error')
    writer.stream.write(line(2))
    assert.equal(dropped, 1 + 1, 'the queued line and the one after the failure')
    await writer.close(10_000)
  })
})

describe('stdout writer on a file', () => {
  it('stdout redirected to a file (written synchronously by Node) gets every line, in order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fapigw-file-'))
    const file = join(dir, 'out.log')
    const out = openSync(file, 'w')
    const writerModule = new URL('../../../src/observability/stdout.ts', import.meta.url).href
    const script = `
      import { createStdoutWriter } from ${JSON.stringify(writerModule)}
      const writer = createStdoutWriter(16 << 20)
      for (let n = 0; n < 2000; n++) writer.stream.write(JSON.stringify({ n }) + '\\n')
      await writer.close(10_000)
    `
    try {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', out, 'inherit'] })
      const [code] = await once(child, 'exit')
      assert.equal(code, 0)
      const lines = readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { n: number }).n)
      assert.deepEqual(
        lines,
        Array.from({ length: 2000 }, (_, n) => n),
      )
    } finally {
      closeSync(out)
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('stdout writer on a pipe shared by processes', () => {
  it('lines from two processes writing at once under back-pressure never cut into each other', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fapigw-pipe-'))
    const fifo = join(dir, 'out')
    execFileSync('mkfifo', [fifo])
    const readEnd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK)
    const writeEnd = openSync(fifo, constants.O_WRONLY)
    const writerModule = new URL('../../../src/observability/stdout.ts', import.meta.url).href
    // Each process writes 400 lines of 300 to 2,300 bytes as fast as it can, then closes the writer.
    const script = `
      import { createStdoutWriter } from ${JSON.stringify(writerModule)}
      const writer = createStdoutWriter(16 << 20)
      for (let n = 0; n < 400; n++) writer.stream.write(JSON.stringify({ who: process.argv[1], n, pad: 'x'.repeat(300 + (n * 37) % 2000) }) + '\\n')
      await writer.close(60_000)
    `
    const children = ['a', 'b'].map((who) => spawn(process.execPath, ['--input-type=module', '-e', script, who], { stdio: ['ignore', writeEnd, 'inherit'] }))
    closeSync(writeEnd)
    let received = ''
    const buffer = Buffer.alloc(PIPE_BUF)
    try {
      const exits = children.map((child) => once(child, 'exit'))
      await delay(300) // both processes now wait on a full pipe
      for (;;) {
        let read = 0
        try {
          read = readSync(readEnd, buffer)
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error
          if (children.every((child) => child.exitCode !== null)) break
          await delay(1)
          continue
        }
        if (read === 0) break
        received += buffer.subarray(0, read).toString('latin1')
        await delay(0)
      }
      for (const [code] of await Promise.all(exits)) assert.equal(code, 0)
      const lines = received.trim().split('\n')
      const seen = { a: new Set<number>(), b: new Set<number>() }
      for (const text of lines) {
        const parsed = JSON.parse(text) as { who: 'a' | 'b'; n: number }
        seen[parsed.who].add(parsed.n)
      }
      assert.equal(seen.a.size, 400)
      assert.equal(seen.b.size, 400)
    } finally {
      for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
      closeSync(readEnd)
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
