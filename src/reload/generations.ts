// Versions of the request pipeline. A request leases the version in force when it arrives and
// keeps it until it is answered, so it sees the old configuration or the new one, never a mix;
// a replaced version is reported drained once its last lease is released (or after a timeout).

export interface Lease<T> {
  readonly current: T
  /** Idempotent. */
  release(): void
}

export interface Generations<T> {
  current(): T
  acquire(): Lease<T>
  /** Makes `next` current. Resolves once no request holds the previous version, or after drainTimeoutMs. */
  replace(next: T): Promise<{ readonly drained: boolean }>
  /** Requests holding a version that is no longer current. */
  readonly retiredLeases: number
}

interface Generation<T> {
  readonly value: T
  leases: number
  onIdle: (() => void) | undefined
}

export function createGenerations<T>(initial: T, options: { readonly drainTimeoutMs: number }): Generations<T> {
  let live: Generation<T> = { value: initial, leases: 0, onIdle: undefined }
  const retired = new Set<Generation<T>>()

  return {
    current: () => live.value,
    acquire() {
      const generation = live
      generation.leases++
      let released = false
      return {
        current: generation.value,
        release() {
          if (released) return
          released = true
          if (--generation.leases === 0) generation.onIdle?.()
        },
      }
    },
    replace(next) {
      const previous = live
      live = { value: next, leases: 0, onIdle: undefined }
      if (previous.leases === 0) return Promise.resolve({ drained: true })
      retired.add(previous)
      return new Promise((resolve) => {
        const timer = setTimeout(() => finish(false), options.drainTimeoutMs)
        timer.unref()
        function finish(drained: boolean) {
          clearTimeout(timer)
          previous.onIdle = undefined
          retired.delete(previous)
          resolve({ drained })
        }
        previous.onIdle = () => finish(true)
      })
    },
    get retiredLeases() {
      let count = 0
      for (const generation of retired) count += generation.leases
      return count
    },
  }
}
