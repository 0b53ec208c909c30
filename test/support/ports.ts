export { freePort as findFreePort } from '../../src/dev/ports.ts'
