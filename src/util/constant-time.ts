import { timingSafeEqual } from 'node:crypto'

/** Equal bytes, compared in time that does not depend on where they differ (secrets, thumbprints, nonces). */
export function equalInConstantTime(a: string | Buffer, b: string | Buffer): boolean {
  const left = typeof a === 'string' ? Buffer.from(a, 'utf8') : a
  const right = typeof b === 'string' ? Buffer.from(b, 'utf8') : b
  return left.length === right.length && timingSafeEqual(left, right)
}
