// Reading what a resource answered: WWW-Authenticate challenges (RFC 9110 §11.6.1),
// DPoP-Nonce values (RFC 9449 §8.1) and interaction ids (FAPI 2.0 Implementation Advice §2.2).
import { headerValues } from './http.ts'

export interface Challenge {
  readonly scheme: string
  /** Parameter names lower-cased; values unquoted. */
  readonly params: Readonly<Record<string, string>>
  /** Parameter names whose value was a quoted-string (the suite parses `key="value"`). */
  readonly quoted: ReadonlySet<string>
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/
// RFC 9449 §8.1: nonce = 1*NQCHAR; NQCHAR = %x21 / %x23-5B / %x5D-7E.
const NQCHARS = /^[\x21\x23-\x5b\x5d-\x7e]+$/
// RFC 9562 §4: a UUID in its string form.
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export function isNonce(value: string): boolean {
  return NQCHARS.test(value)
}

export function isUuid(value: string): boolean {
  return UUID.test(value)
}

/** Parses every challenge in one or more WWW-Authenticate field values. token68 forms are skipped. */
export function parseChallenges(values: readonly string[]): Challenge[] {
  const challenges: { scheme: string; params: Record<string, string>; quoted: Set<string> }[] = []
  for (const value of values) {
    let current: (typeof challenges)[number] | undefined
    let i = 0
    const skip = (chars: string) => {
      while (i < value.length && chars.includes(value[i]!)) i++
    }
    const token = () => {
      const start = i
      while (i < value.length && TCHAR.test(value[i]!)) i++
      return value.slice(start, i)
    }
    while (i < value.length) {
      skip(' \t,')
      const name = token()
      if (name === '') {
        i++
        continue
      }
      skip(' \t')
      if (value[i] !== '=') {
        current = { scheme: name, params: {}, quoted: new Set() }
        challenges.push(current)
        continue
      }
      i++
      skip(' \t')
      let parameter: string
      let quoted = false
      if (value[i] === '"') {
        quoted = true
        i++
        parameter = ''
        while (i < value.length && value[i] !== '"') {
          if (value[i] === '\\' && i + 1 < value.length) i++
          parameter += value[i]
          i++
        }
        i++
      } else parameter = token()
      if (current) {
        current.params[name.toLowerCase()] = parameter
        if (quoted) current.quoted.add(name.toLowerCase())
      }
    }
  }
  return challenges
}

export function challengesOf(rawHeaders: readonly string[]): Challenge[] {
  return parseChallenges(headerValues(rawHeaders, 'www-authenticate'))
}

export function findChallenge(challenges: readonly Challenge[], scheme: string): Challenge | undefined {
  return challenges.find((challenge) => challenge.scheme.toLowerCase() === scheme.toLowerCase())
}

/** RFC 9449 §9: the resource wants a nonce (401, DPoP challenge, error="use_dpop_nonce"); §8: the AS says so in the body. */
export function asksForNonce(status: number, rawHeaders: readonly string[], body: string): boolean {
  if (findChallenge(challengesOf(rawHeaders), 'DPoP')?.params.error === 'use_dpop_nonce') return true
  if (status !== 400) return false
  try {
    return (JSON.parse(body) as { error?: unknown }).error === 'use_dpop_nonce'
  } catch {
    return false
  }
}
