// Log lines and security events share one asynchronous writer on stdout. Node writes to a pipe
// or a file synchronously on Linux, so a slow log reader, or a flood of refusals (one event
// each), would stall every request on the event loop. Here lines queue in memory up to a bound;
// past it they are dropped and counted, never blocking and never growing without limit.
import { pino } from 'pino'

export interface StdoutWriter {
  readonly stream: NodeJS.WritableStream
  /** Called with the number of lines each time lines are dropped. */
  onDrop(listener: (lines: number) => void): void
  /** Writes what is queued, synchronously (at exit). */
  flush(): void
}

export function createStdoutWriter(maxBufferedBytes: number, fd = 1): StdoutWriter {
  // pino.destination flushes at process exit and ignores a closed pipe (EPIPE).
  const stream = pino.destination({ dest: fd, sync: false, maxLength: maxBufferedBytes })
  const listeners: ((lines: number) => void)[] = []
  stream.on('drop', (data: string) => {
    let lines = 0
    for (let at = data.indexOf('\n'); at !== -1; at = data.indexOf('\n', at + 1)) lines++
    for (const listener of listeners) listener(Math.max(lines, 1))
  })
  return {
    stream: stream as unknown as NodeJS.WritableStream,
    onDrop: (listener) => void listeners.push(listener),
    flush() {
      try {
        stream.flushSync()
      } catch {
        // Not open yet, or the reader is gone: nothing more can be written.
      }
    },
  }
}
