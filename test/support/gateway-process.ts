// The gateway as an operator runs it: `node src/main.ts start --config FILE` in its own process.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { freePort } from '../../dev/environment.ts'

export const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url))

// Generous: three Node processes (a primary and two workers) load the TypeScript sources, and on a busy two-core machine that took over 15 s.
export async function waitForReady(adminPort: number, want = 200, limitMs = 60_000): Promise<void> {
  const deadline = Date.now() + limitMs
  for (;;) {
    try {
      const response = await fetch(`http://127.0.0.1:${adminPort}/readyz`)
      await response.body?.cancel()
      if (response.status === want) return
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`admin port ${adminPort} never answered ${want} on /readyz`)
    await delay(50)
  }
}

/** POST /revoked-tokens on an admin listener; resolves to the answer's status. */
export async function revokeThroughAdmin(adminPort: number, token: string, adminToken = 'admin-secret'): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${adminPort}/revoked-tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}` },
    body: JSON.stringify({ token }),
  })
  await response.body?.cancel()
  return response.status
}

export interface GatewayProcess {
  readonly port: number
  readonly adminPort: number
  readonly child: ChildProcess
  /** What the process wrote to stdout so far (JSON log lines). */
  readonly stdout: () => string
  /** SIGTERM, then waits for the exit; resolves to the exit code. */
  stop(): Promise<number | null>
}

export async function spawnGateway(configFile: string, env: NodeJS.ProcessEnv = {}): Promise<GatewayProcess> {
  const port = await freePort()
  const adminPort = await freePort()
  const child = spawn(process.execPath, [MAIN, 'start', '--config', configFile], {
    env: { ...process.env, FAPI_GATEWAY__LISTENER__PORT: String(port), FAPI_GATEWAY__ADMIN__PORT: String(adminPort), FAPI_GATEWAY__LOG__LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk))
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk))
  try {
    await waitForReady(adminPort)
  } catch (error) {
    child.kill('SIGKILL')
    throw new Error(`gateway process did not start: ${stderr}`, { cause: error })
  }
  return {
    port,
    adminPort,
    child,
    stdout: () => stdout,
    async stop() {
      if (child.exitCode !== null) return child.exitCode
      child.kill('SIGTERM')
      const [code] = (await once(child, 'exit')) as [number | null]
      return code
    },
  }
}
