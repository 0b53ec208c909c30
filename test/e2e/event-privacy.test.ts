// docs/security-events.md promises no request path in events: paths of data APIs carry account,
// payment and consent identifiers, and on a refusal before any route matched the attacker chose it.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { startTestGateway, type TestGateway } from '../support/gateway.ts'

const PERSONAL = 'DE89370400440532013000'

describe('security events carry no request path', () => {
  let gw: TestGateway

  before(async () => {
    gw = await startTestGateway()
  })
  after(async () => {
    await gw?.close()
  })

  it('an unknown route and a method not allowed are refused and evented without the path', async () => {
    const client = gw.client()
    const unknown = await client.send('GET', `/customers/${PERSONAL}/statements`, [])
    assert.equal(unknown.json?.code, 'GW_ROUTE_UNKNOWN')
    const method = await client.send('DELETE', `/accounts/${PERSONAL}`, [])
    assert.equal(method.json?.code, 'GW_METHOD_NOT_ALLOWED')
    const deadline = Date.now() + 15_000
    const refusals = () => gw.log.events().filter((e) => e.event.reason === 'GW_ROUTE_UNKNOWN' || e.event.reason === 'GW_METHOD_NOT_ALLOWED')
    while (refusals().length < 2) {
      if (Date.now() > deadline) throw new Error('timed out waiting for the two events')
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    const events = refusals()
    assert.equal(events.length, 2, JSON.stringify(events))
    for (const event of events) assert.ok(!JSON.stringify(event).includes(PERSONAL), JSON.stringify(event))
    assert.ok(!gw.log.lines.some((line) => line.includes(PERSONAL)), 'nor in any log line')
  })
})
