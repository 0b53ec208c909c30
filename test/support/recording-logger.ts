import type { Logger } from '../../src/types.ts'

export interface RecordedLine {
  readonly level: 'info' | 'warn' | 'error'
  readonly obj: object
  readonly msg: string | undefined
}

/** A Logger that keeps what it is told, for tests that assert on log lines. */
export function recordingLogger(): Logger & { lines: RecordedLine[] } {
  const lines: RecordedLine[] = []
  return {
    lines,
    info: (obj, msg) => void lines.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => void lines.push({ level: 'warn', obj, msg }),
    error: (obj, msg) => void lines.push({ level: 'error', obj, msg }),
  }
}
