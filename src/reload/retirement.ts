// Replaced versions of the pipeline give up their connections and timers only once no request
// uses them: a part (forwarder pools, token verifier, revocation checker) is closed when the last
// version holding it has drained, never while a request that leased one may still call it.
import type { Logger } from '../types.ts'
import type { Generations } from './generations.ts'

export interface Closeable {
  close(): Promise<void> | void
}

export interface Versioned {
  readonly closeables: readonly Closeable[]
}

export interface Retirement<T extends Versioned> {
  /** Puts `next` in force; the parts only the previous version holds are closed once it drains. */
  swap(next: T): void
  /** Closes every part of every version still in force or draining (at shutdown). */
  closeAll(): Promise<void>
}

export function createRetirement<T extends Versioned>(generations: Generations<T>, logger: Logger): Retirement<T> {
  // The current version and those whose requests have not all finished.
  const alive = new Set<T>([generations.current()])

  function close(part: Closeable): void {
    void Promise.resolve()
      .then(() => part.close())
      .catch((error: unknown) => logger.warn({ err: error }, 'closing a replaced dependency failed'))
  }

  return {
    swap(next) {
      const previous = generations.current()
      alive.add(next)
      void generations.replace(next).then(({ drained }) => {
        if (!alive.delete(previous)) return
        if (!drained) logger.warn({}, 'requests on a replaced configuration still running after reload.drainTimeoutMs; closing its dependencies anyway')
        for (const part of previous.closeables) {
          if (![...alive].some((version) => version.closeables.includes(part))) close(part)
        }
      })
    },
    async closeAll() {
      const parts = new Set([...alive].flatMap((version) => version.closeables))
      alive.clear()
      await Promise.allSettled([...parts].map((part) => part.close()))
    },
  }
}
