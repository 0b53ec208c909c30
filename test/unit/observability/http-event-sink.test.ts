import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as delay } from 'node:timers/promises'
import { createHttpEventSink, type EventDropReason, type HttpEventSinkOptions } from '../../../src/observability/http-event-sink.ts'
import { startEventCollector, type EventCollector } from '../../support/event-collector.ts'

function sinkFor(collector: { url: string }, overrides: Partial<HttpEventSinkOptions> = {}) {
  const drops: Record<string, number> = {}
  let delivered = 0
  const sink = createHttpEventSink({
    url: collector.url,
    batchSize: 3,
    flushIntervalMs: 60_000,
    maxQueue: 100,
    timeoutMs: 5_000,
    maxRetries: 2,
    retryBackoffMs: 5,
    onDrop: (reason: EventDropReason, count: number) => void (drops[reason] = (drops[reason] ?? 0) + count),
    onDelivered: (count: number) => void (delivered += count),
    ...overrides,
  })
  return { sink, drops, delivered: () => delivered }
}

const line = (n: number) => JSON.stringify({ n })

async function until(condition: () => boolean, what: string, limitMs = 15_000): Promise<void> {
  const deadline = Date.now() + limitMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await delay(5)
  }
}

async function withCollector(run: (collector: EventCollector) => Promise<void>): Promise<void> {
  const collector = await startEventCollector()
  try {
    await run(collector)
  } finally {
    await collector.close()
  }
}

test('full batches are POSTed as NDJSON with the configured headers; close flushes the rest', () =>
  withCollector(async (collector) => {
    const { sink, drops, delivered } = sinkFor(collector, { headers: { 'x-source': 'fapi-gateway' }, authorization: 'Splunk 0000' })
    for (let n = 0; n < 7; n++) sink.write(line(n))
    await collector.waitForLines(6)
    assert.deepEqual(
      collector.batches.map((b) => b.lines.length),
      [3, 3],
    )
    const { headers } = collector.batches[0]!
    assert.equal(headers['content-type'], 'application/x-ndjson')
    assert.equal(headers['x-source'], 'fapi-gateway')
    assert.equal(headers.authorization, 'Splunk 0000')
    assert.equal(sink.queued(), 1)
    await sink.close(5_000)
    assert.deepEqual(collector.lines(), [0, 1, 2, 3, 4, 5, 6].map(line))
    assert.equal(delivered(), 7)
    assert.deepEqual(drops, {})
  }))

test('a partial batch goes out after flushIntervalMs', () =>
  withCollector(async (collector) => {
    const { sink } = sinkFor(collector, { batchSize: 100, flushIntervalMs: 20 })
    sink.write(line(1))
    sink.write(line(2))
    await collector.waitForLines(2)
    assert.equal(collector.batches.length, 1)
    await sink.close(1_000)
  }))

test('5xx and 429 answers are retried with backoff, then delivered', () =>
  withCollector(async (collector) => {
    collector.failNext(2, 503)
    const { sink, drops, delivered } = sinkFor(collector)
    for (let n = 0; n < 3; n++) sink.write(line(n))
    await collector.waitForLines(3)
    // The collector has the lines before the sink has read its answer: wait for the sink's side too.
    await until(() => delivered() === 3, 'the delivery is confirmed')
    assert.equal(collector.attempts(), 3, 'two refused attempts, then the one that was accepted')
    assert.deepEqual(drops, {})
    await sink.close(1_000)
  }))

test('a 4xx answer other than 408/429 is not retried: the batch is dropped as rejected', () =>
  withCollector(async (collector) => {
    collector.setMode({ status: 400 })
    const { sink, drops } = sinkFor(collector)
    for (let n = 0; n < 3; n++) sink.write(line(n))
    await until(() => drops.rejected === 3, 'the rejected drop')
    assert.equal(collector.attempts(), 1)
    await sink.close(1_000)
  }))

test('while the sink is down, writes return at once and drops are counted; when it is back, events flow again', () =>
  withCollector(async (collector) => {
    await collector.stop()
    const { sink, drops, delivered } = sinkFor(collector, { batchSize: 2, maxQueue: 4, maxRetries: 1 })
    for (let n = 0; n < 20; n++) sink.write(line(n))
    assert.ok(sink.queued() <= 4, 'the queue is bounded')
    assert.ok((drops.queue_full ?? 0) > 0, 'a full queue drops at once')
    await until(() => (drops.queue_full ?? 0) + (drops.sink_unavailable ?? 0) === 20, 'every event dropped: queue full, or given up after the retries')
    assert.ok(drops.sink_unavailable! > 0)
    assert.equal(sink.queued(), 0)

    await collector.start()
    sink.write(line(100))
    sink.write(line(101))
    await collector.waitForLines(2)
    assert.deepEqual(collector.lines(), [line(100), line(101)])
    await until(() => delivered() === 2, 'the delivery is confirmed')
    await sink.close(1_000)
  }))

test('a collector that never answers cannot hold up writes or shutdown: close is bounded', () =>
  withCollector(async (collector) => {
    collector.setMode('hang')
    const { sink, drops } = sinkFor(collector, { batchSize: 1, maxQueue: 10, timeoutMs: 60_000 })
    for (let n = 0; n < 5; n++) sink.write(line(n))
    await until(() => collector.attempts() === 1 && sink.queued() === 4, 'one batch in flight')
    await sink.close(100)
    assert.equal((drops.shutdown ?? 0) + (drops.sink_unavailable ?? 0), 5, 'every held event is counted as dropped')
    sink.write(line(99))
    assert.equal(drops.shutdown! >= 1, true, 'writes after close are dropped')
  }))
