// The DPoP key file `token` writes and `request` reads: created once, owner-only, the same key
// (the same thumbprint) every time it is read; anything else is refused with the file named.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { compactVerify, importJWK } from 'jose'
import { readDpopKeyFile, readOrCreateDpopKeyFile } from '../../../dev/dpop-key-file.ts'
import { createProof } from '../../../src/client/partner-client.ts'

describe('DPoP key files', () => {
  let dir: string
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'fapi-gateway-dpop-key-'))
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('are created once, readable by their owner only, and read back as the same key', async () => {
    const file = join(dir, 'key.jwk')
    const created = await readOrCreateDpopKeyFile(file)
    assert.equal(created.created, true)
    assert.equal(statSync(file).mode & 0o777, 0o600)
    const text = readFileSync(file, 'utf8')
    const again = await readOrCreateDpopKeyFile(file)
    assert.equal(again.created, false)
    assert.equal(again.key.jkt, created.key.jkt)
    assert.equal(readFileSync(file, 'utf8'), text, 'an existing key is never replaced')
    assert.equal(again.key.publicJwk.d, undefined, 'the proof header carries the public key only')

    const proof = await createProof(again.key, { htm: 'GET', htu: 'https://127.0.0.1:8443/x' })
    await compactVerify(proof, await importJWK(created.key.publicJwk, 'ES256'))
  })

  it('are refused, with the file named, when they are not a private JWK of an allowed algorithm', async () => {
    const cases: [string, string][] = [
      ['not json', 'cannot be read: not JSON'],
      [JSON.stringify({ kty: 'EC', crv: 'P-256', x: 'x', y: 'y', alg: 'ES256' }), 'not a private JWK'],
      [JSON.stringify({ kty: 'oct', k: 'c2VjcmV0', alg: 'HS256' }), 'not a private JWK'],
    ]
    for (const [content, message] of cases) {
      const file = join(dir, 'bad.jwk')
      writeFileSync(file, content)
      await assert.rejects(readDpopKeyFile(file), (error: Error) => error.message.startsWith(`DPoP key file ${file}`) && error.message.includes(message))
    }
  })
})
