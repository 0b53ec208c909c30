// Baseline: what a Node team would deploy instead of a gateway — DPoP (and mTLS-bound)
// tokens validated in the application itself with Auth0's express-oauth2-jwt-bearer,
// over the same TLS settings, answering the same 200-byte body with no proxy hop.
// Note: the library has no jti replay detection, so it does less work per request than the gateway.
import { createServer } from 'node:https'
import { readFileSync } from 'node:fs'
import type { TLSSocket } from 'node:tls'
import express from 'express'
import { auth } from 'express-oauth2-jwt-bearer'
import { createTlsOptions } from '../src/server/tls.ts'
import { UPSTREAM_BODY } from './upstream-body.ts'

const [port, certDir, issuer, jwksUri, audience] = [Number(process.argv[2]), process.argv[3]!, process.argv[4]!, process.argv[5]!, process.argv[6]!]
const read = (name: string) => readFileSync(`${certDir}/${name}`, 'utf8')

const app = express()
app.disable('x-powered-by')
app.use(
  auth({
    issuer,
    jwksUri,
    audience,
    tokenSigningAlg: 'ES256',
    dpop: { enabled: true, required: false },
    getCertificate: (req) => (req.socket as TLSSocket).getPeerCertificate?.()?.raw,
  }),
)
app.get('/accounts/:id', (_req, res) => {
  res.type('application/json').send(UPSTREAM_BODY)
})

const server = createServer(
  createTlsOptions({
    certPem: read('server-chain.crt'),
    keyPem: read('server.key'),
    clientCaPem: read('client-ca.crt'),
    clientIntermediatesPem: read('client-intermediates.crt'),
    clientCertificate: 'request',
  }),
  app,
)
server.keepAliveTimeout = 60_000
server.listen(port, '127.0.0.1', () => process.send?.({ ready: true }))
process.on('SIGTERM', () => server.close(() => process.exit(0)))
