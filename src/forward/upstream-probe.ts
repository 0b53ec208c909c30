// Upstream health for /readyz: a TCP connection to each upstream every few seconds, in the
// background, so that readiness answers from what was last seen and never waits on an upstream.
// A connection is what the gateway needs first; whether the API behind it is healthy is the
// upstream's own readiness to tell.
import { connect } from 'node:net'

export interface UpstreamProbeOptions {
  /** The upstreams in force now (a reload may change them): name → url. */
  readonly upstreams: () => Readonly<Record<string, { readonly url: string }>>
  readonly intervalMs: number
  readonly timeoutMs: number
}

export interface UpstreamProbe {
  /** `upstream:<name>` → whether the last connection attempt succeeded (false until one did). */
  status(): Record<string, boolean>
  close(): void
}

function endpoint(url: string): { host: string; port: number } {
  const parsed = new URL(url)
  return { host: parsed.hostname.replace(/^\[|\]$/g, ''), port: Number(parsed.port) || (parsed.protocol === 'https:' ? 443 : 80) }
}

function reachable(url: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(endpoint(url))
    const settle = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(timeoutMs, () => settle(false))
    socket.once('connect', () => settle(true))
    socket.once('error', () => settle(false))
  })
}

export function startUpstreamProbe(options: UpstreamProbeOptions): UpstreamProbe {
  const last = new Map<string, boolean>()
  let running = false

  async function probeAll(): Promise<void> {
    if (running) return
    running = true
    try {
      const upstreams = Object.entries(options.upstreams())
      const results = await Promise.all(upstreams.map(async ([name, { url }]) => [name, await reachable(url, options.timeoutMs)] as const))
      last.clear()
      for (const [name, ok] of results) last.set(name, ok)
    } finally {
      running = false
    }
  }

  void probeAll()
  const timer = setInterval(() => void probeAll(), options.intervalMs)
  timer.unref()
  return {
    status: () => Object.fromEntries(Object.keys(options.upstreams()).map((name) => [`upstream:${name}`, last.get(name) ?? false])),
    close: () => clearInterval(timer),
  }
}
