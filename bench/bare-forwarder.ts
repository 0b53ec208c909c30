// Baseline: a Node TLS forwarder with the gateway's TLS settings and client-certificate
// request, forwarding with undici `stream`, and no checks at all.
import { createServer } from 'node:https'
import { readFileSync } from 'node:fs'
import { Pool } from 'undici'
import { createTlsOptions } from '../src/server/tls.ts'

const [port, upstreamUrl, certDir] = [Number(process.argv[2]), process.argv[3]!, process.argv[4]!]
const read = (name: string) => readFileSync(`${certDir}/${name}`, 'utf8')
const pool = new Pool(upstreamUrl, { connections: 64 })
const server = createServer(
  createTlsOptions({
    certPem: read('server-chain.crt'),
    keyPem: read('server.key'),
    clientCaPem: read('client-ca.crt'),
    clientIntermediatesPem: read('client-intermediates.crt'),
    clientCertificate: 'request',
  }),
  (req, res) => {
    pool
      .stream({ path: req.url!, method: 'GET', headers: { 'x-forwarded-for': req.socket.remoteAddress ?? '' } }, ({ statusCode, headers }) => {
        res.writeHead(statusCode, headers as Record<string, string>)
        return res
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(502)
        res.end()
      })
  },
)
server.keepAliveTimeout = 60_000
server.listen(port, '127.0.0.1', () => process.send?.({ ready: true }))
process.on('SIGTERM', () => server.close(() => process.exit(0)))
