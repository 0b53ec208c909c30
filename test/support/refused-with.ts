// Awaits a check that must refuse, and returns its GatewayError after asserting the code.
import assert from 'node:assert/strict'
import { GatewayError } from '../../src/errors.ts'

export async function refusedWith(promise: Promise<unknown>, code: string): Promise<GatewayError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  assert.ok(error instanceof GatewayError, `expected ${code}, got ${error === undefined ? 'acceptance' : String(error)}`)
  assert.equal(error.code, code, error.detail)
  return error
}
