import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { clientKey, createIntrospectionLimiter, type IntrospectionLimits, type LimiterRefusal } from '../../../src/tokens/introspection-limiter.ts'

const rejectsWith = (promise: Promise<unknown>, code: string) => assert.rejects(promise, (error: { code?: string }) => error.code === code)

function limiter(limits: Partial<IntrospectionLimits> = {}) {
  const refusals: LimiterRefusal[] = []
  const created = createIntrospectionLimiter({ maxInFlight: 2, maxPendingPerClient: 8, maxQueued: 4, maxQueueWaitMs: 60_000, ...limits }, (reason) =>
    refusals.push(reason),
  )
  return { limiter: created, refusals }
}

describe('introspection limiter', () => {
  test('grants up to maxInFlight at once; the next waits and gets the slot freed first', async () => {
    const { limiter: l } = limiter()
    const first = await l.acquire('192.0.2.1')
    await l.acquire('192.0.2.2')
    let third: (() => void) | undefined
    const waiting = l.acquire('192.0.2.3').then((release) => (third = release))
    assert.equal(l.inFlight, 2)
    assert.equal(l.queued, 1)
    first()
    first() // a second release frees nothing more
    await waiting
    assert.ok(third)
    assert.equal(l.inFlight, 2)
    assert.equal(l.queued, 0)
  })

  test('one client address gets at most maxPendingPerClient calls in flight or waiting; other addresses still get slots', async () => {
    const { limiter: l, refusals } = limiter({ maxInFlight: 4, maxPendingPerClient: 2 })
    const releases = [await l.acquire('198.51.100.7'), await l.acquire('198.51.100.7')]
    await rejectsWith(l.acquire('198.51.100.7'), 'GW_INTROSPECTION_THROTTLED')
    assert.deepEqual(refusals, ['client_limit'])
    await l.acquire('192.0.2.1')
    await l.acquire(undefined)
    releases[0]!()
    await l.acquire('198.51.100.7')
  })

  test('a full queue refuses at once with GW_INTROSPECTION_BUSY; maxQueued 0 never queues', async () => {
    const { limiter: l, refusals } = limiter({ maxInFlight: 1, maxQueued: 1 })
    await l.acquire('192.0.2.1')
    const queued = l.acquire('192.0.2.2')
    await rejectsWith(l.acquire('192.0.2.3'), 'GW_INTROSPECTION_BUSY')
    assert.deepEqual(refusals, ['queue_full'])
    void queued
    const { limiter: none } = limiter({ maxInFlight: 1, maxQueued: 0 })
    await none.acquire('192.0.2.1')
    await rejectsWith(none.acquire('192.0.2.2'), 'GW_INTROSPECTION_BUSY')
    l.close()
    await rejectsWith(queued, 'GW_ISSUER_UNAVAILABLE')
  })

  test('a call that waits longer than maxQueueWaitMs is refused and leaves the queue and its client count', async () => {
    const { limiter: l, refusals } = limiter({ maxInFlight: 1, maxPendingPerClient: 2, maxQueueWaitMs: 20 })
    const release = await l.acquire('192.0.2.1')
    await rejectsWith(l.acquire('192.0.2.1'), 'GW_INTROSPECTION_BUSY')
    assert.deepEqual(refusals, ['queue_timeout'])
    assert.equal(l.queued, 0)
    release()
    // Both of the address's calls are counted out again: it may have two pending.
    await l.acquire('192.0.2.1')
    const second = l.acquire('192.0.2.1')
    assert.equal(l.queued, 1)
    l.close()
    await rejectsWith(second, 'GW_ISSUER_UNAVAILABLE')
  })

  test('limits that are not positive integers are refused at creation', () => {
    assert.throws(() => limiter({ maxInFlight: 0 }), /maxInFlight/)
    assert.throws(() => limiter({ maxPendingPerClient: 1.5 }), /maxPendingPerClient/)
    assert.throws(() => limiter({ maxQueued: -1 }), /maxQueued/)
  })

  test('client keys: IPv4 as is (also IPv4-mapped), IPv6 by its /64', () => {
    assert.equal(clientKey('192.0.2.1'), '192.0.2.1')
    assert.equal(clientKey('::ffff:192.0.2.1'), '192.0.2.1')
    assert.equal(clientKey('2001:db8:abcd:12:1::5'), '2001:db8:abcd:12::/64')
    assert.equal(clientKey('2001:0db8:abcd:0012:ffff:ffff:ffff:ffff'), '2001:db8:abcd:12::/64')
    assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64')
    assert.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64')
    assert.equal(clientKey(undefined), undefined)
  })
})
