// The command line as a user runs it, in its own process: one-shot commands, and long-running
// ones (`dev`) that are awaited until they print what says they are up, then stopped with SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

export const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url))

/** The environment of a child: this Node first on PATH (the commands say `node`), no FAPI_GATEWAY* variables. */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('FAPI_GATEWAY')))
  return { ...base, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`, ...extra }
}

export interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

function collect(child: ChildProcess): { stdout: () => string; stderr: () => string } {
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  return { stdout: () => stdout, stderr: () => stderr }
}

async function finished(child: ChildProcess, output: ReturnType<typeof collect>): Promise<Run> {
  const [code] = (await once(child, 'close')) as [number | null]
  return { code, stdout: output.stdout(), stderr: output.stderr() }
}

/** `node src/main.ts ARGS` to the end. */
export function runCli(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  const child = spawn(process.execPath, [MAIN, ...args], { cwd: options.cwd, env: childEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] })
  return finished(child, collect(child))
}

/** A shell script (the README's commands) to the end. */
export function runShell(script: string, cwd: string): Promise<Run> {
  const child = spawn('bash', ['-c', script], { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  return finished(child, collect(child))
}

export interface LongRunning {
  readonly stdout: () => string
  readonly stderr: () => string
  /** SIGTERM, then the exit. */
  stop(): Promise<Run>
}

/** Starts a shell command (exec'd, so that signals reach it) and resolves once its stdout contains `ready`. */
export async function startShell(command: string, cwd: string, ready: string): Promise<LongRunning> {
  const child = spawn('bash', ['-c', `exec ${command}`], { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  const output = collect(child)
  const exit = finished(child, output)
  await new Promise<void>((resolve, reject) => {
    const check = () => {
      if (!output.stdout().includes(ready)) return
      child.stdout!.off('data', check)
      resolve()
    }
    child.stdout!.on('data', check)
    void exit.then((run) => reject(new Error(`${command} exited with ${run.code} before it was ready: ${run.stderr}`)))
  })
  return {
    stdout: output.stdout,
    stderr: output.stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      return exit
    },
  }
}
