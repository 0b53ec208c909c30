// File primitives of the CA store: atomic replacement (write a temporary file, fsync,
// rename), files that must not already exist, and a lock file so two commands never
// update the same index at once.
import { randomBytes } from 'node:crypto'
import { chmodSync, closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { CaError } from './ca-error.ts'

export const PRIVATE_FILE_MODE = 0o600
export const PUBLIC_FILE_MODE = 0o644

/** Replaces `path` with `data` so a reader sees either the old or the new content, never a mix. */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode: number = PUBLIC_FILE_MODE): void {
  const temp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`)
  try {
    const fd = openSync(temp, 'wx', mode)
    try {
      writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    chmodSync(temp, mode)
    renameSync(temp, path)
  } catch (error) {
    rmSync(temp, { force: true })
    throw new CaError(`${path}: cannot write (${(error as NodeJS.ErrnoException).code ?? String(error)})`, { cause: error })
  }
}

/** Writes a file that must not exist yet (never overwrites a key). */
export function writeNewFile(path: string, data: string, mode: number): void {
  let fd: number
  try {
    fd = openSync(path, 'wx', mode)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new CaError(code === 'EEXIST' ? `${path}: already exists; refusing to overwrite it` : `${path}: cannot create (${code ?? String(error)})`)
  }
  try {
    writeSync(fd, data)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  chmodSync(path, mode)
}

export function readTextFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    throw new CaError(`${path}: cannot read ${what} (${(error as NodeJS.ErrnoException).code ?? String(error)})`)
  }
}

function lockHolderIsGone(lockPath: string): boolean {
  let pid: number
  try {
    pid = Number(readFileSync(lockPath, 'utf8').trim())
  } catch {
    return false
  }
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return false
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

/** Runs `task` holding `<dir>/.lock`; a lock left by a process that no longer exists is taken over. */
export async function withStoreLock<T>(dir: string, task: () => Promise<T> | T, timeoutMs = 10_000): Promise<T> {
  const lockPath = join(dir, '.lock')
  const deadline = performance.now() + timeoutMs
  for (;;) {
    try {
      const fd = openSync(lockPath, 'wx', PRIVATE_FILE_MODE)
      writeSync(fd, String(process.pid))
      closeSync(fd)
      break
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new CaError(`${lockPath}: cannot create the lock (${(error as NodeJS.ErrnoException).code ?? String(error)})`)
      if (lockHolderIsGone(lockPath)) {
        rmSync(lockPath, { force: true })
        continue
      }
      if (performance.now() > deadline) throw new CaError(`${lockPath}: the CA store is locked by another command; if none is running, remove this file`)
      await sleep(50)
    }
  }
  try {
    return await task()
  } finally {
    rmSync(lockPath, { force: true })
  }
}
