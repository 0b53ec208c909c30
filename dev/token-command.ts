// `fapi-gateway token`: an access token from the running development issuer, bound to a DPoP
// key (cnf.jkt; the key file is created when it does not exist) or to a client certificate
// (cnf.x5t#S256). The token alone goes to stdout, so that TOKEN=$(fapi-gateway token ...) works.
import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Agent, request } from 'undici'
import { certificateThumbprint } from '../src/x509.ts'
import { parseCommandArgs, usageError } from './command-args.ts'
import { DEFAULT_DEV_DIR, notRunning, readDevEnvFile } from './dev-env-file.ts'
import { readOrCreateDpopKeyFile } from './dpop-key-file.ts'
import type { MintRequest } from './issuer.ts'

const USAGE = `usage: fapi-gateway token (--dpop-key FILE | --cert FILE) [--scope SCOPES] [--client-id ID] [--sub SUBJECT] [--dir DIR]

Prints an access token (valid 1 hour) from the development issuer 'fapi-gateway dev' runs.

  --dpop-key FILE   bound to this DPoP key (cnf.jkt); a new ES256 key is written to FILE (mode 0600) when it does not exist
  --cert FILE       bound to this client certificate (cnf.x5t#S256), e.g. ${DEFAULT_DEV_DIR}/partnerA.crt
  --scope SCOPES    space-separated (default accounts:read)
  --client-id ID    client_id claim (default partner-a)
  --sub SUBJECT     sub claim (default customer-1)
  --dir DIR         the development environment's folder (default ${DEFAULT_DEV_DIR})`

const OPTIONS = {
  'dpop-key': { type: 'string' },
  cert: { type: 'string' },
  scope: { type: 'string' },
  'client-id': { type: 'string' },
  sub: { type: 'string' },
  dir: { type: 'string' },
} as const

function certificateFileThumbprint(file: string): string {
  let pem: string
  try {
    pem = readFileSync(file, 'utf8')
  } catch (error) {
    throw new Error(`certificate file ${file} cannot be read (${(error as NodeJS.ErrnoException).code})`)
  }
  try {
    return certificateThumbprint(new X509Certificate(pem).raw)
  } catch {
    throw new Error(`certificate file ${file}: not a PEM certificate`)
  }
}

export async function runTokenCommand(argv: readonly string[]): Promise<number> {
  const parsed = parseCommandArgs('token', USAGE, argv, OPTIONS)
  if (typeof parsed === 'number') return parsed
  const { values, positionals } = parsed
  if (positionals.length > 0) return usageError('token', `unexpected argument '${positionals[0]}'`)
  if ((values['dpop-key'] === undefined) === (values.cert === undefined)) return usageError('token', 'give exactly one of --dpop-key FILE and --cert FILE')
  const dir = values.dir ?? DEFAULT_DEV_DIR
  const env = readDevEnvFile(dir)

  let binding: Pick<MintRequest, 'jkt' | 'x5t'>
  if (values['dpop-key'] !== undefined) {
    const { key, created } = await readOrCreateDpopKeyFile(values['dpop-key'])
    if (created) console.error(`new DPoP key written to ${values['dpop-key']}`)
    binding = { jkt: key.jkt }
  } else {
    binding = { x5t: certificateFileThumbprint(values.cert!) }
  }
  const mint: MintRequest = {
    ...binding,
    ...(values.scope !== undefined && { scope: values.scope }),
    ...(values['client-id'] !== undefined && { clientId: values['client-id'] }),
    ...(values.sub !== undefined && { sub: values.sub }),
  }
  const agent = new Agent({ connect: { ca: readFileSync(env.caFile, 'utf8') } })
  try {
    let response
    try {
      response = await request(env.mintEndpoint, {
        method: 'POST',
        dispatcher: agent,
        body: JSON.stringify(mint),
        headers: { authorization: `Bearer ${env.mintSecret}`, 'content-type': 'application/json' },
      })
    } catch (error) {
      throw notRunning(dir, env.issuer, error)
    }
    const answer = (await response.body.json()) as { access_token?: string; error?: string; error_description?: string }
    if (response.statusCode !== 200 || typeof answer.access_token !== 'string') {
      throw new Error(
        `the development issuer refused: ${response.statusCode} ${answer.error ?? ''}${answer.error_description ? ` (${answer.error_description})` : ''}`,
      )
    }
    console.log(answer.access_token)
    return 0
  } finally {
    await agent.close()
  }
}
