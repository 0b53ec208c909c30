// Flags of the development commands (dev, token, request), parsed the way src/main.ts parses its own:
// --help prints the command's usage on stdout (status 0), a usage error is named on stderr (status 2).
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util'

export type Parsed<O extends ParseArgsOptionsConfig> = ReturnType<typeof parseArgs<{ options: O; allowPositionals: true; strict: true }>>

export function usageError(command: string, message: string): number {
  console.error(`fapi-gateway ${command}: ${message}\nRun 'fapi-gateway ${command} --help' for usage.`)
  return 2
}

/** The parsed flags, or the exit status when there is nothing more to do (help printed, usage error). */
export function parseCommandArgs<O extends ParseArgsOptionsConfig>(command: string, usage: string, argv: readonly string[], options: O): Parsed<O> | number {
  let parsed: Parsed<O>
  try {
    parsed = parseArgs({ args: [...argv], options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true }) as Parsed<O>
  } catch (error) {
    return usageError(command, (error as Error).message.split('\n')[0]!.replace(/\. To specify a positional argument.*$/, ''))
  }
  if ((parsed.values as { help?: boolean }).help) {
    console.log(usage)
    return 0
  }
  return parsed
}

/** A TCP port flag: 0 to 65535. */
export function parsePort(value: string | undefined, fallback: number): number | undefined {
  if (value === undefined) return fallback
  const port = Number(value)
  return /^\d+$/.test(value) && port <= 65_535 ? port : undefined
}
