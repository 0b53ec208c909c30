// A DPoP key kept in a file as a private JWK, so that `token` and `request` in separate
// processes use the same key: `token` creates it when it does not exist (owner-only).
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { calculateJwkThumbprint, exportJWK, importJWK, type CryptoKey, type JWK } from 'jose'
import { generateDpopKey, type DpopKey, type ProofAlgorithm } from '../src/client/partner-client.ts'

const ALGORITHMS: readonly ProofAlgorithm[] = ['ES256', 'PS256', 'EdDSA']

export async function readDpopKeyFile(file: string): Promise<DpopKey> {
  let jwk: JWK
  try {
    jwk = JSON.parse(readFileSync(file, 'utf8')) as JWK
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new Error(
      code === 'ENOENT'
        ? `DPoP key file ${file} does not exist (the 'token' command creates it: fapi-gateway token --dpop-key ${file})`
        : `DPoP key file ${file} cannot be read: ${code ?? 'not JSON'}`,
    )
  }
  const alg = jwk.alg as ProofAlgorithm
  if (!ALGORITHMS.includes(alg) || jwk.d === undefined) throw new Error(`DPoP key file ${file}: not a private JWK with alg ${ALGORITHMS.join(', ')}`)
  const privateKey = (await importJWK(jwk, alg)) as CryptoKey
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, alg: _alg, ...publicJwk } = jwk
  return { alg, privateKey, publicJwk, jkt: await calculateJwkThumbprint(publicJwk, 'sha256') }
}

/** The key in file, or a new ES256 key written there (never overwriting a file that appeared meanwhile). */
export async function readOrCreateDpopKeyFile(file: string): Promise<{ key: DpopKey; created: boolean }> {
  if (existsSync(file)) return { key: await readDpopKeyFile(file), created: false }
  const key = await generateDpopKey('ES256')
  const jwk = { ...(await exportJWK(key.privateKey)), alg: key.alg }
  writeFileSync(file, `${JSON.stringify(jwk)}\n`, { mode: 0o600, flag: 'wx' })
  return { key, created: true }
}
