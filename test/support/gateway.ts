// End-to-end fixture: the development environment (real TLS listener, real issuer over
// HTTPS, real upstream) started through the real configuration loader, plus helpers to
// mint tokens, sign proofs and read the security events the gateway wrote.
import { certificateThumbprint } from '../../src/x509.ts'
import { Writable } from 'node:stream'
import { createLogger } from '../../src/observability/log.ts'
import { EVENT_DATASET, type EcsSecurityEvent } from '../../src/observability/ecs.ts'
import { startDevEnvironment, type DevEnvironment, type DevEnvironmentOptions } from '../../dev/environment.ts'
import { createDevPki, type DevPki, type Issued } from '../../dev/pki.ts'
import { createPartnerClient, type PartnerClient } from '../../src/client/partner-client.ts'

let sharedPki: Promise<DevPki> | undefined

/** One PKI per test process: generating keys is the slow part. */
export function testPki(): Promise<DevPki> {
  sharedPki ??= createDevPki()
  return sharedPki
}

export interface LogLines {
  readonly lines: string[]
  /** Parsed security events (ECS documents, event.dataset fapi_gateway.security; docs/security-events.md). */
  events(): EcsSecurityEvent[]
}

export function captureLog(): { sink: Writable; log: LogLines } {
  const lines: string[] = []
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean))
      done()
    },
  })
  return {
    sink,
    log: {
      lines,
      events: () => lines.map((line) => JSON.parse(line) as EcsSecurityEvent).filter((entry) => entry.event?.dataset === EVENT_DATASET),
    },
  }
}

export interface TestGateway extends DevEnvironment {
  readonly log: LogLines
  /** A client with no certificate, a client per partner certificate (chain with the intermediate). */
  client(identity?: Issued | 'none'): PartnerClient
  url(path: string): string
}

export async function startTestGateway(options: Partial<DevEnvironmentOptions> = {}): Promise<TestGateway> {
  const { sink, log } = captureLog()
  const pki = options.pki ?? (await testPki())
  const env = await startDevEnvironment({ ...options, pki, logger: createLogger('info', sink), gateway: { eventStream: sink, ...options.gateway } })
  const clients: PartnerClient[] = []
  return {
    ...env,
    log,
    client(identity = 'none') {
      const client = createPartnerClient({
        baseUrl: env.baseUrl,
        caPem: pki.root.certPem,
        ...(identity !== 'none' && { identity: { certPem: identity.certPem.trimEnd() + '\n' + pki.intermediate.certPem, keyPem: identity.keyPem } }),
      })
      clients.push(client)
      return client
    },
    url: (path) => env.baseUrl + path,
    async close() {
      await Promise.allSettled(clients.map((c) => c.close()))
      await env.close()
    },
  }
}

export function certThumbprint(issued: Issued): string {
  return certificateThumbprint(issued.cert.raw)
}
