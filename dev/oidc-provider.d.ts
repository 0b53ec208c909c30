// The little of oidc-provider (which ships no types) that test/support/legacy-server.ts uses.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http'

  export default class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>)
    /** Koa's: no error printing of its own. */
    silent: boolean
    callback(): (req: IncomingMessage, res: ServerResponse) => void
  }
}
