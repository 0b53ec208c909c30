export { freePort as findFreePort } from '../../dev/ports.ts'
