// Settings a running gateway cannot change: the listening socket and its server-level
// options, the processes, the admin listener, the replay store, the event sinks, the logger
// and the reload settings themselves. A reload keeps their running values, applies the rest,
// and names them in a config.refused event (docs/operations.md, "Rotation and reload").
import type { LoadedConfig } from '../config/load.ts'
import type { GatewayConfig } from '../config/schema.ts'

export const RESTART_REQUIRED: readonly (readonly string[])[] = [
  ['workers'],
  ['listener', 'host'],
  ['listener', 'port'],
  ['listener', 'limits'],
  ['listener', 'tls', 'clientCertificate'],
  ['admin'],
  ['replay'],
  ['caches', 'proofKeys'],
  ['log'],
  ['events'],
  ['reload'],
]

type Node = unknown

function child(node: Node, key: string): Node {
  return typeof node === 'object' && node !== null ? (node as Record<string, Node>)[key] : undefined
}

function at(config: Node, path: readonly string[]): Node {
  return path.reduce(child, config)
}

/** Leaf keys under `prefix` whose values differ, as dotted paths (`listener.limits.maxConnections`). */
function differingLeaves(a: Node, b: Node, prefix: string): string[] {
  const isObject = (v: Node) => typeof v === 'object' && v !== null && !Array.isArray(v)
  if (isObject(a) && isObject(b)) {
    const keys = [...new Set([...Object.keys(a as object), ...Object.keys(b as object)])].sort()
    return keys.flatMap((key) => differingLeaves(child(a, key), child(b, key), `${prefix}.${key}`))
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [prefix]
}

/** The keys that differ between the running and the new configuration but need a restart. */
export function restartRequiredKeys(running: GatewayConfig, next: GatewayConfig): string[] {
  return RESTART_REQUIRED.flatMap((path) => differingLeaves(at(running, path), at(next, path), path.join('.')))
}

/** `next` with the running values of the settings that need a restart. */
export function keepRunningValues(next: LoadedConfig, running: GatewayConfig): LoadedConfig {
  const config = structuredClone(next.config) as Record<string, Node>
  for (const path of RESTART_REQUIRED) {
    const parent = at(config, path.slice(0, -1)) as Record<string, Node> | undefined
    const value = at(running, path)
    if (parent === undefined) continue
    if (value === undefined) delete parent[path.at(-1)!]
    else parent[path.at(-1)!] = structuredClone(value)
  }
  return { ...next, config: config as unknown as GatewayConfig }
}
