// A gateway process for the benchmarks: ready when its /readyz answers 200, stopped with SIGTERM
// (SIGKILL after 5 s).
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'

export async function untilReady(child: ChildProcess, adminPort: number, limitMs = 20_000): Promise<ChildProcess> {
  const deadline = Date.now() + limitMs
  for (;;) {
    try {
      const response = await fetch(`http://127.0.0.1:${adminPort}/readyz`)
      await response.body?.cancel()
      if (response.ok) return child
    } catch {
      // not yet
    }
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('gateway did not become ready')
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await once(child, 'exit')
  clearTimeout(timer)
}
