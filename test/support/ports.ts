/** A TCP port on 127.0.0.1 that was free a moment ago (for servers that cannot bind port 0 themselves). */
export { freePort as findFreePort } from '../../src/dev/environment.ts'
