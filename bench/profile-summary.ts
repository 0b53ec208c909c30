// node bench/profile-summary.ts FILE.cpuprofile [N]: the functions with the most self time.
import { readFileSync } from 'node:fs'

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount: number; children?: number[] }
const profile = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }
const self = new Map<string, number>()
const total = profile.samples.length
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const counts = new Map<number, number>()
for (const id of profile.samples) counts.set(id, (counts.get(id) ?? 0) + 1)
for (const [id, count] of counts) {
  const { functionName, url, lineNumber } = byId.get(id)!.callFrame
  const key = `${functionName || '(anonymous)'} ${url.replace(/^.*\/(node_modules|src)\//, '$1/')}:${lineNumber + 1}`
  self.set(key, (self.get(key) ?? 0) + count)
}
for (const [key, count] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(process.argv[3] ?? 30))) {
  console.log(`${((100 * count) / total).toFixed(1).padStart(5)}%  ${key}`)
}
