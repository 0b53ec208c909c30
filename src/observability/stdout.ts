// Log lines and security events share one writer on stdout. A slow log reader, or a flood of
// refusals (one event each), must never stall requests, so lines queue in memory up to a bound;
// past it the oldest queued lines are dropped and counted, never blocking and never growing without limit.
//
// In a container stdout is a pipe, shared by every worker process. Node writes to it without
// blocking (the pipe is put in non-blocking mode, writes wait for the event loop), and this
// writer hands it one batch of whole lines at a time, at most PIPE_BUF bytes: the kernel writes
// such a batch at once or not at all, so lines from different workers never cut into each other.

/** POSIX guarantees writes of up to this many bytes to a pipe are atomic (Linux: 4096). */
export const PIPE_BUF = 4096

/** How long shutdown waits for a slow stdout reader before giving up on what is queued. */
export const STDOUT_CLOSE_TIMEOUT_MS = 5_000

export interface StdoutWriter {
  readonly stream: NodeJS.WritableStream
  /** Called with the number of lines each time lines are dropped. */
  onDrop(listener: (lines: number) => void): void
  /**
   * Writes what is queued. Gives up after `timeoutMs` when nobody reads; lines written after
   * close() are dropped.
   */
  close(timeoutMs?: number): Promise<void>
}

export function createStdoutWriter(maxBufferedBytes: number, out: NodeJS.WritableStream = process.stdout): StdoutWriter {
  const lines: string[] = []
  const sizes: number[] = []
  let first = 0
  let queuedBytes = 0
  let writing = false
  let broken = false
  let closing = false
  const dropListeners: ((lines: number) => void)[] = []
  const idleListeners: (() => void)[] = []

  const drop = (count: number) => {
    for (const listener of dropListeners) listener(count)
  }
  const discardQueue = () => {
    const count = lines.length - first
    lines.length = sizes.length = first = queuedBytes = 0
    if (count > 0) drop(count)
  }
  const becameIdle = () => {
    for (const listener of idleListeners.splice(0)) listener()
  }

  // A reader that went away (EPIPE) or any other write error: nothing more can be written.
  const fail = () => {
    broken = true
    writing = false
    discardQueue()
    becameIdle()
  }
  out.on('error', fail)

  const pump = () => {
    if (writing || broken) return
    if (first === lines.length) {
      lines.length = sizes.length = first = 0
      return becameIdle()
    }
    let batch = lines[first]!
    let batchBytes = sizes[first++]!
    while (first < lines.length && batchBytes + sizes[first]! <= PIPE_BUF) {
      batch += lines[first]
      batchBytes += sizes[first++]!
    }
    queuedBytes -= batchBytes
    if (first > 1024 && first * 2 > lines.length) {
      lines.splice(0, first)
      sizes.splice(0, first)
      first = 0
    }
    writing = true
    try {
      out.write(batch, (error) => {
        if (error) return fail()
        writing = false
        pump()
      })
    } catch {
      fail()
    }
  }

  const stream = {
    write(line: string): boolean {
      const bytes = Buffer.byteLength(line)
      if (closing || broken || bytes > maxBufferedBytes) {
        drop(Math.max(countLines(line), 1))
        return true
      }
      // Full: the oldest queued lines make room, so that what is written last (the events of an
      // attack under way, the lines of a shutdown) is what a reader that comes back finds.
      let evicted = 0
      while (queuedBytes + bytes > maxBufferedBytes && first < lines.length) {
        queuedBytes -= sizes[first]!
        evicted += Math.max(countLines(lines[first]!), 1)
        first++
      }
      if (evicted > 0) drop(evicted)
      lines.push(line)
      sizes.push(bytes)
      queuedBytes += bytes
      pump()
      return true
    },
  }

  return {
    stream: stream as unknown as NodeJS.WritableStream,
    onDrop: (listener) => void dropListeners.push(listener),
    close(timeoutMs = STDOUT_CLOSE_TIMEOUT_MS) {
      closing = true
      if (broken || (!writing && first === lines.length)) return Promise.resolve()
      return new Promise<void>((resolve) => {
        const giveUp = setTimeout(() => {
          discardQueue()
          resolve()
        }, timeoutMs)
        idleListeners.push(() => {
          clearTimeout(giveUp)
          resolve()
        })
      })
    },
  }
}

function countLines(data: string): number {
  let count = 0
  for (let at = data.indexOf('\n'); at !== -1; at = data.indexOf('\n', at + 1)) count++
  return count
}
