// A black-box heuristic for FAPI 2.0 SP 5.4.1-4 (credentials carry at least 128 bits of
// entropy): what a value can hold at most, given its length and alphabet, after removing what
// every value issued shares. It can prove too little, never enough: a long value of
// apparently random characters passes, anything that cannot be judged is said so.

export type EntropyVerdict = 'enough' | 'too-little' | 'unknown'

export interface EntropyJudgement {
  readonly verdict: EntropyVerdict
  readonly reason: string
}

export const MINIMUM_BITS = 128
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-([0-9a-f])[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

function jwsAlgorithm(value: string): string | undefined {
  if (!JWS.test(value)) return undefined
  try {
    const header = JSON.parse(Buffer.from(value.split('.')[0]!, 'base64url').toString('utf8')) as { alg?: unknown }
    return typeof header.alg === 'string' ? header.alg : undefined
  } catch {
    return undefined
  }
}

function commonPrefixLength(values: readonly string[]): number {
  let n = 0
  while (values.every((v) => n < v.length && v[n] === values[0]![n])) n++
  return n
}

function commonSuffixLength(values: readonly string[], prefix: number): number {
  let n = 0
  while (values.every((v) => v.length - n - 1 >= prefix && v[v.length - n - 1] === values[0]![values[0]!.length - n - 1])) n++
  return n
}

/** Bits per character of the smallest usual alphabet the text fits. */
function bitsPerCharacter(text: string): { bits: number; alphabet: string } {
  if (/^[0-9]+$/.test(text)) return { bits: Math.log2(10), alphabet: 'decimal' }
  if (/^[0-9a-f]+$/.test(text) || /^[0-9A-F]+$/.test(text)) return { bits: 4, alphabet: 'hex' }
  if (/^[A-Za-z0-9_-]+$/.test(text) || /^[A-Za-z0-9+/]+=*$/.test(text)) return { bits: 6, alphabet: 'base64' }
  return { bits: Math.log2(94), alphabet: 'printable ASCII' }
}

/** Judges the values one server issued for one kind of credential (access tokens, refresh tokens). */
export function judgeEntropy(kind: string, issued: readonly string[]): EntropyJudgement {
  const values = [...new Set(issued)]
  if (values.length === 0) return { verdict: 'unknown', reason: `no ${kind} to judge` }
  const algorithms = values.map(jwsAlgorithm)
  if (algorithms.every((alg) => alg !== undefined)) {
    if (algorithms.some((alg) => alg!.toLowerCase() === 'none')) return { verdict: 'too-little', reason: `${kind}: an unsecured JWT (alg none)` }
    const shortest = Math.min(...values.map((v) => v.split('.')[2]!.length))
    const bits = Math.floor(shortest * 6)
    return bits >= MINIMUM_BITS
      ? { verdict: 'enough', reason: `${kind}: signed JWTs (${algorithms[0]}); guessing one means forging a signature of ${bits} bits` }
      : { verdict: 'too-little', reason: `${kind}: JWT signatures of ${bits} bits at most` }
  }
  if (values.some((v) => UUID.test(v))) {
    const version = UUID.exec(values.find((v) => UUID.test(v))!)![1]
    return { verdict: 'too-little', reason: `${kind}: a UUID (version ${version}) holds at most 122 random bits` }
  }
  const prefix = values.length > 1 ? commonPrefixLength(values) : 0
  const suffix = values.length > 1 ? commonSuffixLength(values, prefix) : 0
  const parts = values.map((v) => v.slice(prefix, v.length - suffix))
  const part = parts.reduce((a, b) => (b.length < a.length ? b : a))
  const { bits: perCharacter, alphabet } = bitsPerCharacter(parts.join(''))
  const bits = Math.floor(part.length * perCharacter)
  const shared = prefix + suffix > 0 ? ` after the ${prefix + suffix} characters all ${values.length} share` : ''
  if (bits < MINIMUM_BITS) return { verdict: 'too-little', reason: `${kind}: ${part.length} ${alphabet} characters${shared}: ${bits} bits at most` }
  const distinct = new Set(part).size
  if (distinct < Math.min(10, part.length / 2)) {
    return { verdict: 'too-little', reason: `${kind}: ${part.length} characters${shared} but only ${distinct} distinct ones: not random` }
  }
  const basis = values.length > 1 ? `${values.length} values` : 'a single value (its structure cannot be seen from one)'
  return { verdict: 'enough', reason: `${kind}: ${part.length} apparently random ${alphabet} characters${shared}, up to ${bits} bits (judged on ${basis})` }
}
