// A small authorization server for the conformance runner's token client: client credentials
// with private_key_jwt or tls_client_auth, DPoP with a required server nonce (RFC 9449 §8),
// certificate binding. It verifies what it receives with jose and mints through a callback.
import { createHash, randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { EmbeddedJWK, calculateJwkThumbprint, importJWK, jwtVerify, type JWK } from 'jose'
import { chainPem, type DevPki } from '../../../dev/pki.ts'

export interface RegisteredClient {
  readonly clientId: string
  /** private_key_jwt: the client's public key. */
  readonly jwk?: JWK
  /** tls_client_auth: the expected certificate subject CN. */
  readonly certificateCn?: string
}

export interface MintRequest {
  readonly clientId: string
  readonly jkt?: string
  readonly x5t?: string
}

export interface FakeAuthorizationServer {
  readonly issuer: string
  readonly tokenEndpoint: string
  /** Every token request: what it carried, and how it was answered. */
  readonly requests: { status: number; dpop: boolean; nonce: boolean; clientAuth: string; certificate: boolean; error?: string }[]
  /** Every client assertion, DPoP proof and access token it saw or issued. */
  readonly secrets: string[]
  close(): Promise<void>
}

export interface FakeAuthorizationServerOptions {
  readonly pki: DevPki
  readonly clients: readonly RegisteredClient[]
  readonly mint: (request: MintRequest) => Promise<string>
  /** Overrides token_type in successful answers (to test the client's check). */
  readonly tokenType?: string
  readonly requireNonce?: boolean
}

function answer(res: import('node:http').ServerResponse, status: number, body: Record<string, unknown>, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers })
  res.end(JSON.stringify(body))
}

export async function startFakeAuthorizationServer(options: FakeAuthorizationServerOptions): Promise<FakeAuthorizationServer> {
  const nonce = randomBytes(16).toString('base64url')
  const requests: FakeAuthorizationServer['requests'] = []
  const secrets: string[] = []
  let issuer = ''
  let tokenEndpoint = ''

  const server: Server = createServer(
    {
      cert: chainPem(options.pki.server, options.pki.intermediate),
      key: options.pki.server.keyPem,
      ca: options.pki.root.certPem,
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
    },
    (req, res) => {
      let body = ''
      req.setEncoding('utf8')
      req.on('data', (chunk: string) => (body += chunk))
      req.on('end', () => {
        void (async () => {
          const form = new URLSearchParams(body)
          if (form.has('client_assertion')) secrets.push(form.get('client_assertion')!)
          if (typeof req.headers.dpop === 'string') secrets.push(req.headers.dpop)
          const certificate = (req.socket as TLSSocket).getPeerCertificate().raw !== undefined
          const record = { status: 0, dpop: false, nonce: false, clientAuth: 'none', certificate } as FakeAuthorizationServer['requests'][number]
          requests.push(record)
          const fail = (status: number, error: string, headers: Record<string, string> = {}) => {
            record.status = status
            record.error = error
            answer(res, status, { error }, headers)
          }
          if (req.method !== 'POST' || req.url !== '/token' || form.get('grant_type') !== 'client_credentials') return fail(400, 'invalid_request')
          const client = options.clients.find((c) => c.clientId === form.get('client_id'))
          if (!client) return fail(401, 'invalid_client')

          // Client authentication.
          const socket = req.socket as TLSSocket
          const peer = socket.getPeerCertificate()
          if (form.has('client_assertion')) {
            record.clientAuth = 'private_key_jwt'
            if (form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' || !client.jwk)
              return fail(401, 'invalid_client')
            try {
              const { payload } = await jwtVerify(form.get('client_assertion')!, (header) => importJWK(client.jwk!, header.alg), {
                issuer: client.clientId,
                subject: client.clientId,
                audience: issuer,
                algorithms: ['ES256', 'PS256', 'EdDSA'],
              })
              if (typeof payload.aud !== 'string') return fail(401, 'invalid_client')
            } catch {
              return fail(401, 'invalid_client')
            }
          } else {
            record.clientAuth = 'tls_client_auth'
            if (!socket.authorized || !client.certificateCn || peer.subject?.CN !== client.certificateCn) return fail(401, 'invalid_client')
          }

          // Sender constraint.
          const proof = req.headers.dpop
          let jkt: string | undefined
          if (typeof proof === 'string') {
            record.dpop = true
            try {
              const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ['ES256', 'PS256', 'EdDSA'] })
              if (payload.htm !== 'POST' || payload.htu !== tokenEndpoint || 'ath' in payload) return fail(400, 'invalid_dpop_proof')
              record.nonce = payload.nonce === nonce
              if ((options.requireNonce ?? true) && payload.nonce !== nonce) return fail(400, 'use_dpop_nonce', { 'dpop-nonce': nonce })
              jkt = await calculateJwkThumbprint(protectedHeader.jwk as JWK, 'sha256')
            } catch {
              return fail(400, 'invalid_dpop_proof')
            }
          }
          const x5t = jkt === undefined && peer.raw ? createHash('sha256').update(peer.raw).digest('base64url') : undefined
          if (jkt === undefined && x5t === undefined) return fail(400, 'invalid_request')
          const accessToken = await options.mint({ clientId: client.clientId, ...(jkt && { jkt }), ...(x5t && { x5t }) })
          secrets.push(accessToken)
          record.status = 200
          answer(res, 200, { access_token: accessToken, token_type: options.tokenType ?? (jkt ? 'DPoP' : 'Bearer'), expires_in: 300 })
        })().catch(() => answer(res, 500, { error: 'server_error' }))
      })
    },
  )
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  issuer = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
  tokenEndpoint = `${issuer}/token`
  return {
    issuer,
    tokenEndpoint,
    requests,
    secrets,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
