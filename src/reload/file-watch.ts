// Polls files and folders for changed content. Polling, not fs.watch: fs.watch misses atomic
// renames, the symlink swap Kubernetes does when a mounted Secret or ConfigMap changes, and
// network file systems. A stat (which follows symlinks) decides whether to read a file again;
// only a different SHA-256 of its bytes counts as a change, so a touch or a swap to identical
// content does not trigger a reload.
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, statSync, type Stats } from 'node:fs'
import { join } from 'node:path'

export interface WatchedPaths {
  readonly files: readonly string[]
  /** Folders whose *.yaml / *.yml files are watched: added, removed and changed files count. */
  readonly yamlDirs: readonly string[]
}

export interface FileWatcher {
  /** What changed since the last look (or since creation), as absolute paths; records the new state. */
  check(): string[]
  /** Watches these paths from now on; a path already watched keeps its recorded state. */
  watch(paths: WatchedPaths): void
  /** Checks every intervalMs (unref'd timer) and calls onChange with what changed. */
  start(intervalMs: number, onChange: (changed: string[]) => void): void
  close(): void
}

interface Seen {
  readonly stat: string
  readonly digest: string
}

const MISSING: Seen = { stat: 'missing', digest: 'missing' }

function statKey(stats: Stats): string {
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`
}

function isYaml(name: string): boolean {
  return name.endsWith('.yaml') || name.endsWith('.yml')
}

export function createFileWatcher(initial: WatchedPaths): FileWatcher {
  const seen = new Map<string, Seen>()
  let watched: WatchedPaths = { files: [], yamlDirs: [] }
  let timer: NodeJS.Timeout | undefined
  let closed = false

  function look(path: string, previous: Seen | undefined): Seen {
    let stats: Stats
    try {
      stats = statSync(path)
    } catch {
      return MISSING
    }
    if (stats.isDirectory()) {
      let names: string[]
      try {
        names = readdirSync(path).filter(isYaml).sort()
      } catch {
        return MISSING
      }
      // The folder's own state is its listing; each file in it is looked at on its own.
      const listing = names.join('\n')
      return { stat: `dir:${listing}`, digest: createHash('sha256').update(listing).digest('hex') }
    }
    const stat = statKey(stats)
    if (previous && previous.stat === stat) return previous
    try {
      return { stat, digest: createHash('sha256').update(readFileSync(path)).digest('hex') }
    } catch {
      return MISSING
    }
  }

  function currentPaths(): string[] {
    const paths = new Set<string>(watched.files)
    for (const dir of watched.yamlDirs) {
      paths.add(dir)
      try {
        for (const name of readdirSync(dir).filter(isYaml)) paths.add(join(dir, name))
      } catch {
        // a missing folder is recorded as missing by look()
      }
    }
    return [...paths]
  }

  function check(): string[] {
    const changed: string[] = []
    const paths = currentPaths()
    for (const path of paths) {
      const previous = seen.get(path)
      const now = look(path, previous)
      if (previous === undefined || previous.digest !== now.digest) changed.push(path)
      seen.set(path, now)
    }
    // A file gone from a watched folder is a change too.
    for (const path of [...seen.keys()]) {
      if (paths.includes(path)) continue
      seen.delete(path)
      changed.push(path)
    }
    return changed
  }

  function watch(next: WatchedPaths): void {
    watched = { files: [...new Set(next.files)], yamlDirs: [...new Set(next.yamlDirs)] }
    const paths = currentPaths()
    for (const path of paths) if (!seen.has(path)) seen.set(path, look(path, undefined))
    for (const path of [...seen.keys()]) if (!paths.includes(path)) seen.delete(path)
  }

  watch(initial)

  return {
    check,
    watch,
    start(intervalMs, onChange) {
      const tick = () => {
        if (closed) return
        const changed = check()
        if (changed.length > 0) onChange(changed)
        timer = setTimeout(tick, intervalMs)
        timer.unref()
      }
      timer = setTimeout(tick, intervalMs)
      timer.unref()
    },
    close() {
      closed = true
      if (timer) clearTimeout(timer)
    },
  }
}
