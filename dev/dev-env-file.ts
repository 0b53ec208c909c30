// dev-env.json: what `fapi-gateway dev` tells the `token` and `request` commands about the
// running development environment. Written when it is up (owner-only: it holds the mint
// secret), removed when it stops.
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

export const DEFAULT_DEV_DIR = join('certs', 'dev')
export const DEV_ENV_FILE = 'dev-env.json'

export interface DevEnvFile {
  /** The gateway's base URL; absent when the environment runs without one (`dev --no-gateway`). */
  readonly gatewayUrl?: string
  readonly configFile: string
  readonly issuer: string
  readonly jwksUri: string
  readonly mintEndpoint: string
  readonly mintSecret: string
  readonly audience: string
  /** Trust anchor of the issuer's and the gateway's server certificates. */
  readonly caFile: string
  /** A client certificate the gateway trusts, for certificate-bound tokens. */
  readonly partner: { readonly certFile: string; readonly keyFile: string }
  readonly pid: number
}

export function writeDevEnvFile(dir: string, env: DevEnvFile): string {
  const file = join(dir, DEV_ENV_FILE)
  writeFileSync(file, `${JSON.stringify(env, null, 2)}\n`, { mode: 0o600 })
  return file
}

export function removeDevEnvFile(dir: string): void {
  rmSync(join(dir, DEV_ENV_FILE), { force: true })
}

/** The running environment's file; an error that says how to start one when there is none. */
export function readDevEnvFile(dir: string): DevEnvFile {
  const file = join(dir, DEV_ENV_FILE)
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    throw new Error(
      `no development environment is running (no ${resolve(file)}): start one with 'fapi-gateway dev' (npm run dev)${dir === DEFAULT_DEV_DIR ? '' : ` --dir ${dir}`}`,
    )
  }
  try {
    return JSON.parse(text) as DevEnvFile
  } catch {
    throw new Error(`${file} is not valid JSON: start the development environment again with 'fapi-gateway dev'`)
  }
}

/** Like readDevEnvFile, or undefined when there is no environment. */
export function findDevEnvFile(dir: string): DevEnvFile | undefined {
  try {
    return readDevEnvFile(dir)
  } catch {
    return undefined
  }
}

/** One line for a connection to the environment that failed: most often, it was stopped without removing its file. */
export function notRunning(dir: string, url: string, error: unknown): Error {
  const code = (error as { code?: string; cause?: { code?: string } }).cause?.code ?? (error as { code?: string }).code ?? (error as Error).message
  return new Error(`the development environment in ${dir} does not answer at ${url} (${code}): start it with 'fapi-gateway dev' (npm run dev)`)
}
