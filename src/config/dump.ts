// `fapi-gateway config`: the configuration the gateway would run with (defaults and environment
// overrides applied) and its policies, as YAML, with anything that could be a secret masked.
import { stringify } from 'yaml'
import type { LoadedConfig } from './load.ts'

const MASK = '********'
// Keys whose value names where a secret lives (an environment variable, a file) stay readable.
const SECRET_KEY = /(secret|password|passphrase|token|credential|apikey|api_key)$/i

function maskUrl(value: string): string {
  try {
    const url = new URL(value)
    if (url.password === '' && url.username === '') return value
    url.username = url.username === '' ? '' : MASK
    url.password = url.password === '' ? '' : MASK
    return url.toString()
  } catch {
    return value
  }
}

function mask(value: unknown, key: string | undefined, inHeaders: boolean): unknown {
  if (typeof value === 'string') {
    if (inHeaders || (key !== undefined && SECRET_KEY.test(key))) return MASK
    return /^[a-z][a-z0-9+.-]*:\/\/[^/]*@/i.test(value) ? maskUrl(value) : value
  }
  if (Array.isArray(value)) return value.map((item) => mask(item, undefined, false))
  if (typeof value === 'object' && value !== null) {
    // Header values sent to collectors may carry API keys.
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mask(v, k, key === 'headers')]))
  }
  return value
}

export function dumpConfig(loaded: LoadedConfig): string {
  const lines = [`# ${loaded.file}`]
  for (const { key, variable } of loaded.overrides) lines.push(`# ${key}: from the environment (${variable})`)
  lines.push(stringify(mask(loaded.config, undefined, false)).trimEnd())
  const bySource = new Map<string, unknown[]>()
  for (const { source, ...route } of loaded.routes) bySource.set(source, [...(bySource.get(source) ?? []), route])
  for (const [source, routes] of bySource) lines.push('', `# ${source}`, stringify(mask({ routes }, undefined, false)).trimEnd())
  return `${lines.join('\n')}\n`
}
