// The fast upstream every bench target forwards to: a fixed 200-byte JSON answer.
import { createServer } from 'node:http'

import { UPSTREAM_BODY } from './upstream-body.ts'

const port = Number(process.argv[2] ?? 0)
const server = createServer((req, res) => {
  req.resume()
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(UPSTREAM_BODY) })
    res.end(UPSTREAM_BODY)
  })
})
server.keepAliveTimeout = 60_000
server.listen(port, '127.0.0.1', () => {
  const address = server.address() as { port: number }
  process.send?.({ ready: true, port: address.port })
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
