// Helpers for the CA tests: temporary directories and the real openssl binary.
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
  /** stdout and stderr together, for assertions that do not care which. */
  readonly output: string
}

export function run(command: string, args: readonly string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(command, [...args], { cwd: options.cwd, timeout: options.timeoutMs ?? 30_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') {
        reject(error)
        return
      }
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr, output: stdout + stderr })
    })
  })
}

export function openssl(...args: string[]): Promise<Run> {
  return run('openssl', args)
}

export interface TempDir {
  readonly path: string
  file(name: string): string
  remove(): void
}

export function tempDir(prefix = 'fapi-ca-'): TempDir {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, file: (name) => join(path, name), remove: () => rmSync(path, { recursive: true, force: true }) }
}

/** A fixed clock for deterministic certificates: now, in whole seconds. */
export function fixedNow(): number {
  return Math.floor(Date.now() / 1000) * 1000
}
