// Versions of the pipeline: a request keeps the version it leased; a replaced version drains.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createGenerations } from '../../../src/reload/generations.ts'
import { createRetirement } from '../../../src/reload/retirement.ts'

const quiet = { info() {}, warn() {}, error() {} }

test('a lease keeps the version current when it was taken; new leases get the new one', () => {
  const generations = createGenerations('v1', { drainTimeoutMs: 60_000 })
  const lease = generations.acquire()
  void generations.replace('v2')
  assert.equal(lease.current, 'v1')
  assert.equal(generations.current(), 'v2')
  assert.equal(generations.acquire().current, 'v2')
  lease.release()
})

test('replace() resolves once the last lease on the previous version is released, not before', async () => {
  const generations = createGenerations('v1', { drainTimeoutMs: 60_000 })
  const first = generations.acquire()
  const second = generations.acquire()
  let settled = false
  const drained = generations.replace('v2').then((result) => {
    settled = true
    return result
  })
  first.release()
  first.release()
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(settled, false, 'one request still holds v1 (a double release counts once)')
  assert.equal(generations.retiredLeases, 1)
  second.release()
  assert.deepEqual(await drained, { drained: true })
  assert.equal(generations.retiredLeases, 0)
})

test('replace() resolves at once when nothing holds the previous version, and after the drain timeout otherwise', async () => {
  const generations = createGenerations('v1', { drainTimeoutMs: 20 })
  assert.deepEqual(await generations.replace('v2'), { drained: true })
  generations.acquire()
  assert.deepEqual(await generations.replace('v3'), { drained: false })
})

test('a replaced part is closed when the last version holding it has drained, a shared part never', async () => {
  const closed: string[] = []
  const part = (name: string) => ({ close: () => void closed.push(name) })
  const [shared, onlyV1, onlyV2, onlyV3] = [part('shared'), part('v1'), part('v2'), part('v3')]
  const generations = createGenerations({ name: 'v1', closeables: [shared, onlyV1] }, { drainTimeoutMs: 60_000 })
  const retirement = createRetirement(generations, quiet)
  const onV1 = generations.acquire()
  retirement.swap({ name: 'v2', closeables: [shared, onlyV2] })
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(closed, [], 'v1 is still in use')
  const onV2 = generations.acquire()
  retirement.swap({ name: 'v3', closeables: [shared, onlyV3] })
  onV1.release()
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(closed, ['v1'])
  onV2.release()
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(closed, ['v1', 'v2'])
  await retirement.closeAll()
  assert.deepEqual(closed.sort(), ['shared', 'v1', 'v2', 'v3'])
})
