// `fapi-gateway request`: one request as a FAPI client makes it, like curl: a fresh DPoP proof
// (htm, htu, ath) for each request, mTLS when a certificate is given, and what matters in the
// answer printed: the status, the challenge, the nonce, the interaction id, the body.
import { readFileSync, writeFileSync } from 'node:fs'
import { STATUS_CODES } from 'node:http'
import { parseCommandArgs, usageError } from './command-args.ts'
import { DEFAULT_DEV_DIR, findDevEnvFile, notRunning, readDevEnvFile } from './dev-env-file.ts'
import { readDpopKeyFile } from './dpop-key-file.ts'
import { challengeError, createPartnerClient, createProof, type PartnerResponse } from '../src/client/partner-client.ts'

const USAGE = `usage: fapi-gateway request [METHOD] URL [--token TOKEN] [--dpop-key FILE] [--cert FILE --key FILE]
                            [--header 'Name: value']... [--data BODY] [--proof-out FILE | --reuse-proof FILE] [--ca FILE] [--dir DIR]

Sends one request and prints the status line, the WWW-Authenticate, DPoP-Nonce and X-FAPI-Interaction-ID
headers, a blank line and the body.

  METHOD              GET by default, POST with --data
  URL                 https://..., or a path (/accounts/123) on the gateway 'fapi-gateway dev' runs
  --token TOKEN       the access token: 'DPoP TOKEN' with --dpop-key, 'Bearer TOKEN' without
  --dpop-key FILE     sign a fresh DPoP proof with the key in FILE (made by 'fapi-gateway token --dpop-key FILE');
                      asked for a nonce (401 use_dpop_nonce), sends the request once more with it
  --cert/--key FILE   client certificate and key for mutual TLS, e.g. ${DEFAULT_DEV_DIR}/partnerA.crt and .key
  --header 'N: v'     an extra header (repeatable)
  --data BODY         the request body
  --proof-out FILE    also write the proof sent to FILE
  --reuse-proof FILE  send the proof saved in FILE instead of a fresh one: a replay, which the gateway refuses
  --ca FILE           trust anchors for the server certificate (default: the development CA while 'dev' runs, else the system's)
  --dir DIR           the development environment's folder (default ${DEFAULT_DEV_DIR})

exit code: 0 for a 2xx answer, 1 for any other answer or when no request could be made, 2 for a usage error`

const OPTIONS = {
  token: { type: 'string' },
  'dpop-key': { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
  header: { type: 'string', multiple: true },
  data: { type: 'string' },
  'proof-out': { type: 'string' },
  'reuse-proof': { type: 'string' },
  ca: { type: 'string' },
  dir: { type: 'string' },
} as const

const SHOWN_HEADERS = ['www-authenticate', 'dpop-nonce', 'x-fapi-interaction-id']

function readText(what: string, file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (error) {
    throw new Error(`${what} ${file} cannot be read (${(error as NodeJS.ErrnoException).code})`)
  }
}

export function formatResponse(response: PartnerResponse): string {
  const lines = [`HTTP ${response.status} ${STATUS_CODES[response.status] ?? ''}`.trimEnd()]
  for (const name of SHOWN_HEADERS) {
    const value = response.headers[name]
    for (const one of Array.isArray(value) ? value : value === undefined ? [] : [value]) lines.push(`${name}: ${one}`)
  }
  const body = response.body.length === 0 || response.body.endsWith('\n') ? response.body : `${response.body}\n`
  return `${lines.join('\n')}\n\n${body}`
}

export async function runRequestCommand(argv: readonly string[]): Promise<number> {
  const parsed = parseCommandArgs('request', USAGE, argv, OPTIONS)
  if (typeof parsed === 'number') return parsed
  const { values, positionals } = parsed
  if (positionals.length === 0 || positionals.length > 2)
    return usageError('request', positionals.length === 0 ? 'a URL is needed' : `unexpected argument '${positionals[2]}'`)
  const [method, target] =
    positionals.length === 2 ? [positionals[0]!.toUpperCase(), positionals[1]!] : [values.data !== undefined ? 'POST' : 'GET', positionals[0]!]
  if (!/^[A-Z]+$/.test(method)) return usageError('request', `not an HTTP method: '${method}'`)
  if ((values.cert === undefined) !== (values.key === undefined)) return usageError('request', '--cert and --key go together')
  if (values['proof-out'] !== undefined && values['reuse-proof'] !== undefined)
    return usageError('request', 'give at most one of --proof-out and --reuse-proof')
  const headers: [string, string][] = []
  for (const header of values.header ?? []) {
    const colon = header.indexOf(':')
    if (colon < 1) return usageError('request', `--header: expected 'Name: value', got '${header}'`)
    headers.push([header.slice(0, colon).trim(), header.slice(colon + 1).trim()])
  }

  const dir = values.dir ?? DEFAULT_DEV_DIR
  const relativeTarget = target.startsWith('/')
  const env = relativeTarget ? readDevEnvFile(dir) : findDevEnvFile(dir)
  if (relativeTarget && env!.gatewayUrl === undefined)
    throw new Error(`the development environment in ${dir} runs without a gateway (--no-gateway): give the full URL of yours`)
  const url = URL.parse(relativeTarget ? `${env!.gatewayUrl}${target}` : target)
  if (!url || !['http:', 'https:'].includes(url.protocol)) return usageError('request', `not an http(s) URL or a path: '${target}'`)
  const caPem = values.ca !== undefined ? readText('CA file', values.ca) : env ? readText('development CA file', env.caFile) : undefined

  const dpopKey = values['dpop-key'] !== undefined ? await readDpopKeyFile(values['dpop-key']) : undefined
  const usesDpop = dpopKey !== undefined || values['reuse-proof'] !== undefined
  if (values.token !== undefined) headers.push(['authorization', `${usesDpop ? 'DPoP' : 'Bearer'} ${values.token}`])
  // htu: the URL without query and fragment (RFC 9449 §4.2); ath: the hash of the token sent with it.
  const freshProof = async (nonce?: string) => {
    const proof = await createProof(dpopKey!, {
      htm: method,
      htu: `${url.origin}${url.pathname}`,
      ...(values.token !== undefined && { accessToken: values.token }),
      ...(nonce !== undefined && { nonce }),
    })
    if (values['proof-out'] !== undefined) writeFileSync(values['proof-out'], `${proof}\n`, { mode: 0o600 })
    return proof
  }
  const proof = values['reuse-proof'] !== undefined ? readText('proof file', values['reuse-proof']).trim() : dpopKey ? await freshProof() : undefined

  const identity = values.cert !== undefined ? { certPem: readText('certificate file', values.cert), keyPem: readText('key file', values.key!) } : undefined
  const client = createPartnerClient({ baseUrl: url.origin, ...(caPem !== undefined && { caPem }), ...(identity && { identity }) })
  const send = async (dpop: string | undefined) => {
    try {
      return await client.send(method, `${url.pathname}${url.search}`, dpop === undefined ? headers : [...headers, ['dpop', dpop]], values.data)
    } catch (error) {
      if (relativeTarget) throw notRunning(dir, url.origin, error)
      const code = (error as { code?: string }).code
      throw new Error(`${method} ${url.origin}${url.pathname} failed: ${code ?? (error as Error).message}`)
    }
  }
  try {
    let response: PartnerResponse = await send(proof)
    // RFC 9449 §9: a server that wants a nonce says so once; a client retries with it. A saved proof is sent as it is.
    const nonce = response.headers['dpop-nonce']
    if (dpopKey && values['reuse-proof'] === undefined && challengeError(response, 'DPoP') === 'use_dpop_nonce' && typeof nonce === 'string') {
      console.error('the server asked for a DPoP nonce: sent again with a proof that has it')
      response = await send(await freshProof(nonce))
    }
    process.stdout.write(formatResponse(response))
    return response.status >= 200 && response.status < 300 ? 0 : 1
  } finally {
    await client.close()
  }
}
