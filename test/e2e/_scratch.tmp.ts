import { startTestGateway } from '../support/gateway.ts'
const gw = await startTestGateway({ config: { listener: { limits: { headersTimeoutMs: 1000, requestTimeoutMs: 2000, connectionsCheckingIntervalMs: 200 } } } })
console.log(gw.gateway.partnerPort)
setTimeout(async () => { console.log(gw.log.events().map(e => `${e.event} ${e.reason} ${e.detail}`).slice(0, 30).join('\n')); console.log(gw.log.events().length); await gw.close() }, 15000)
