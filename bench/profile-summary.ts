// node bench/profile-summary.ts FILE.cpuprofile [N]: where the busy time goes — self time by
// function, then inclusive time of the project's own functions, as shares of non-idle samples.
import { readFileSync } from 'node:fs'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}
const profile = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as { nodes: ProfileNode[]; samples: number[] }
const limit = Number(process.argv[3] ?? 25)
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const parent = new Map<number, number>()
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
const label = (node: ProfileNode) => {
  const { functionName, url, lineNumber } = node.callFrame
  return `${functionName || '(anonymous)'} ${url.replace(/^.*\/(node_modules|src)\//, '$1/')}:${lineNumber + 1}`
}
const self = new Map<string, number>()
const inclusive = new Map<string, number>()
let busy = 0
for (const id of profile.samples) {
  const node = byId.get(id)!
  if (node.callFrame.functionName === '(idle)') continue
  busy++
  self.set(label(node), (self.get(label(node)) ?? 0) + 1)
  const seen = new Set<string>()
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const frame = byId.get(at)!
    if (!frame.callFrame.url.includes('/src/')) continue
    const key = label(frame)
    if (seen.has(key)) continue
    seen.add(key)
    inclusive.set(key, (inclusive.get(key) ?? 0) + 1)
  }
}
const show = (title: string, table: Map<string, number>) => {
  console.log(`\n${title} (share of ${busy} busy samples)`)
  for (const [key, count] of [...table].sort((a, b) => b[1] - a[1]).slice(0, limit)) console.log(`${((100 * count) / busy).toFixed(1).padStart(5)}%  ${key}`)
}
show('self time', self)
show('inclusive time, project functions', inclusive)
