// What the checks share during one run: the settings, the credentials obtained so far, the
// latest DPoP nonce, every answer seen (for the run-wide checks), and the two ways to call
// the resource: one exchange, or a DPoP exchange with RFC 9449's nonce retry.
import { randomUUID } from 'node:crypto'
import type { Clock } from '../types.ts'
import { asksForNonce, isNonce } from './challenges.ts'
import type { RunnerSettings } from './config.ts'
import { describeFailure, headerValues, sendHttp, type HttpOutcome, type TlsIdentity } from './http.ts'
import type { ExchangeRecord, ShownHeader } from './model.ts'
import { describeProof, generateDpopKey, type DpopKey } from './proofs.ts'
import type { Redactor } from './redact.ts'
import { certificateThumbprint, type ClientRole, type IssuedToken, type TokenBinding, type TokenSource } from './tokens.ts'
import type { TokenExchange } from './token-endpoint.ts'

/** Collects what one check sent and received. */
export interface Recorder {
  readonly checkId: string
  readonly exchanges: ExchangeRecord[]
}

export interface CallSpec {
  readonly label: string
  readonly method: string
  readonly url: string
  readonly headers: readonly (readonly [string, string])[]
  readonly body?: string
  /** The client certificate; the partner's own (when one is configured) if not given. */
  readonly identity?: TlsIdentity
  /** Presents no client certificate at all: for the checks that omit it on purpose. */
  readonly withoutCertificate?: true
  readonly notes?: readonly string[]
  /** The x-fapi-interaction-id sent, if any (for the echo check). */
  readonly interactionId?: string
}

/** An HTTP answer the target gave, whatever the check (for Date, interaction id, nonce syntax, 2xx codes). */
export interface AnswerSeen {
  readonly checkId: string
  readonly label: string
  readonly status: number
  readonly rawHeaders: readonly string[]
  readonly interactionIdSent: string | undefined
  readonly receivedAtMs: number
}

export interface DpopCredentials {
  readonly key: DpopKey
  readonly token: string
}

export interface MtlsCredentials {
  readonly identity: TlsIdentity
  readonly token: string
}

export interface RunState {
  /** The latest DPoP-Nonce the target sent (RFC 9449 §8.2: the client uses the most recent one). */
  nonce: string | undefined
  primaryDpop: DpopCredentials | undefined
  primaryMtls: MtlsCredentials | undefined
  tokenError: string | undefined
  baselineFailed: boolean
  tls13Supported: boolean | undefined
}

export interface ResourceHeaderOptions {
  /** `Authorization` value; undefined sends none. */
  readonly authorization: string | undefined
  readonly proofs?: readonly string[]
  /** Defaults to `DPoP`. */
  readonly proofHeaderName?: string
  /** false sends no x-fapi-interaction-id. */
  readonly interactionId?: false
  readonly extra?: readonly (readonly [string, string])[]
  /** Overrides the baseline Accept header. */
  readonly accept?: string
}

export interface RunContext {
  readonly settings: RunnerSettings
  readonly now: Clock
  readonly redactor: Redactor
  readonly tokenSource: TokenSource
  readonly state: RunState
  readonly answers: AnswerSeen[]
  /** Answers that asked for a DPoP nonce. */
  readonly nonceChallenges: AnswerSeen[]
  nowSeconds(): number
  /** Headers for a resource call: the suite's baseline x-fapi-* headers, then the credentials. */
  resourceHeaders(options: ResourceHeaderOptions): { headers: [string, string][]; interactionId: string | undefined }
  call(recorder: Recorder, spec: CallSpec): Promise<HttpOutcome>
  /** A DPoP call: retried at most twice when the target answers use_dpop_nonce (RFC 9449 §8, §9). */
  dpopCall(recorder: Recorder, build: (nonce: string | undefined) => Promise<CallSpec>): Promise<HttpOutcome>
  obtainToken(recorder: Recorder, binding: TokenBinding): Promise<IssuedToken>
  /** Records a token-endpoint exchange (form parameter names only; a 200 body is never copied). */
  recordTokenExchange(recorder: Recorder, exchange: TokenExchange, label?: string, notes?: readonly string[]): void
  /** DPoP credentials for another client or key, obtained once per run. */
  dpopCredentials(recorder: Recorder, name: 'rsa' | 'second'): Promise<DpopCredentials>
  /** The token to send with a probe certificate: bound to it when the source can, else the primary token. */
  tokenForCertificate(recorder: Recorder, role: ClientRole, identity: TlsIdentity): Promise<string>
}

const SHOWN_RESPONSE_HEADERS = ['www-authenticate', 'dpop-nonce', 'date', 'x-fapi-interaction-id', 'cache-control', 'content-type']
const MAX_NONCE_RETRIES = 2
const BODY_EXCERPT_LENGTH = 300
// The suite's baseline values (AbstractFAPI2SPFinalServerTestModule.requestProtectedResource).
export const CUSTOMER_IP_ADDRESS = '198.51.100.119'

export interface RunContextOptions {
  readonly settings: RunnerSettings
  readonly tokenSource: TokenSource
  readonly redactor: Redactor
  readonly now: Clock
}

export function htuOf(url: string): string {
  const parsed = new URL(url)
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`
}

export function withQueryParameter(url: string, name: string, value: string): string {
  const hashAt = url.indexOf('#')
  const base = hashAt === -1 ? url : url.slice(0, hashAt)
  return `${base}${base.includes('?') ? '&' : '?'}${encodeURIComponent(name)}=${encodeURIComponent(value)}`
}

export function createRunContext(options: RunContextOptions): RunContext {
  const { settings, redactor, now, tokenSource } = options
  const answers: AnswerSeen[] = []
  const nonceChallenges: AnswerSeen[] = []
  const state: RunState = {
    nonce: undefined,
    primaryDpop: undefined,
    primaryMtls: undefined,
    tokenError: undefined,
    baselineFailed: false,
    tls13Supported: undefined,
  }
  const lazyCredentials = new Map<string, Promise<DpopCredentials>>()

  function recordExchange(recorder: Recorder, spec: CallSpec, outcome: HttpOutcome): void {
    const sent = {
      label: spec.label,
      request: `${spec.method} ${redactor.url(spec.url)}`,
      headers: spec.headers.map(([name, value]): ShownHeader => [name, redactor.header(name, value)]),
      clientCertificate: spec.identity?.label ?? 'none',
      notes: (spec.notes ?? []).map((note) => redactor.text(note)),
    }
    if (outcome.kind === 'failure') {
      recorder.exchanges.push({ sent, received: { status: undefined, headers: [], transport: describeFailure(outcome), bodyExcerpt: undefined } })
      return
    }
    const headers: ShownHeader[] = []
    for (let i = 0; i + 1 < outcome.rawHeaders.length; i += 2) {
      const name = outcome.rawHeaders[i]!
      if (SHOWN_RESPONSE_HEADERS.includes(name.toLowerCase())) headers.push([name, redactor.header(name, outcome.rawHeaders[i + 1]!)])
    }
    const bodyExcerpt = outcome.status >= 300 && outcome.body.length > 0 ? redactor.text(outcome.body.slice(0, BODY_EXCERPT_LENGTH)) : undefined
    recorder.exchanges.push({ sent, received: { status: outcome.status, headers, transport: undefined, bodyExcerpt } })
  }

  function recordTokenExchange(recorder: Recorder, exchange: TokenExchange, label = 'token request', extraNotes: readonly string[] = []): void {
    const { request, outcome } = exchange
    const body = request.body === undefined ? undefined : new URLSearchParams(request.body)
    const nowSeconds = Math.floor(now() / 1000)
    const proofNotes = request.headers.filter(([name]) => name.toLowerCase() === 'dpop').map(([, value]) => describeProof(value, nowSeconds))
    const notes = [...extraNotes, ...(body ? [`form: ${[...body.keys()].join(', ')}`] : []), ...proofNotes]
    // A token response is never copied: it holds the access token.
    const shown: HttpOutcome = outcome.kind === 'answer' && outcome.status === 200 ? { ...outcome, body: '' } : outcome
    recordExchange(
      recorder,
      {
        label,
        method: request.method,
        url: request.url,
        headers: request.headers,
        ...(request.identity && { identity: request.identity }),
        notes,
      },
      shown,
    )
  }

  const context: RunContext = {
    settings,
    now,
    redactor,
    tokenSource,
    state,
    answers,
    nonceChallenges,
    nowSeconds: () => Math.floor(now() / 1000),

    resourceHeaders(headerOptions) {
      const interactionId = headerOptions.interactionId === false ? undefined : randomUUID()
      const headers: [string, string][] = [
        ['Accept', headerOptions.accept ?? 'application/json'],
        ['x-fapi-auth-date', new Date(now() - 3600_000).toUTCString()],
        ['x-fapi-customer-ip-address', CUSTOMER_IP_ADDRESS],
      ]
      if (interactionId !== undefined) headers.push(['x-fapi-interaction-id', interactionId])
      if (settings.target.body !== undefined) headers.push(['Content-Type', settings.target.mediaType ?? 'application/json'])
      if (headerOptions.authorization !== undefined) headers.push(['Authorization', headerOptions.authorization])
      for (const proof of headerOptions.proofs ?? []) headers.push([headerOptions.proofHeaderName ?? 'DPoP', proof])
      for (const [name, value] of headerOptions.extra ?? []) headers.push([name, value])
      return { headers, interactionId }
    },

    async call(recorder, given) {
      // mTLS ecosystems may require the certificate in every handshake, also where tokens are DPoP-bound.
      const identity = given.withoutCertificate ? undefined : (given.identity ?? settings.clients.primary.identity)
      const { identity: _given, withoutCertificate: _omit, ...rest } = given
      const spec: CallSpec = { ...rest, ...(identity && { identity }) }
      const nowSeconds = Math.floor(now() / 1000)
      const proofNotes = spec.headers
        .filter(([name]) => name.toLowerCase() === 'dpop')
        .map(([, value]) => {
          redactor.add(value)
          return describeProof(value, nowSeconds)
        })
      const outcome = await sendHttp(
        {
          method: spec.method,
          url: spec.url,
          headers: spec.headers,
          ...(spec.body !== undefined && { body: spec.body }),
          ...(identity && { identity }),
        },
        { caPem: settings.target.caPem, servername: settings.target.servername, timeoutMs: settings.requestTimeoutMs, now },
      )
      recordExchange(recorder, { ...spec, notes: [...(spec.notes ?? []), ...proofNotes] }, outcome)
      if (outcome.kind === 'answer') {
        answers.push({
          checkId: recorder.checkId,
          label: spec.label,
          status: outcome.status,
          rawHeaders: outcome.rawHeaders,
          interactionIdSent: spec.interactionId,
          receivedAtMs: outcome.receivedAtMs,
        })
        const nonces = headerValues(outcome.rawHeaders, 'dpop-nonce')
        if (nonces.length === 1 && isNonce(nonces[0]!)) state.nonce = nonces[0]
      }
      return outcome
    },

    async dpopCall(recorder, build) {
      for (let attempt = 0; ; attempt++) {
        const spec = await build(state.nonce)
        const outcome = await context.call(recorder, attempt === 0 ? spec : { ...spec, label: `${spec.label} — retry ${attempt} with the target's DPoP nonce` })
        if (outcome.kind !== 'answer' || !asksForNonce(outcome.status, outcome.rawHeaders, outcome.body)) return outcome
        nonceChallenges.push(answers.at(-1)!)
        const nonces = headerValues(outcome.rawHeaders, 'dpop-nonce')
        if (attempt >= MAX_NONCE_RETRIES || nonces.length !== 1 || !isNonce(nonces[0]!)) return outcome
      }
    },

    recordTokenExchange,

    async obtainToken(recorder, binding) {
      return tokenSource.obtain(binding, {
        onSecret: (secret) => redactor.add(secret),
        onExchange: (exchange) => recordTokenExchange(recorder, exchange),
      })
    },

    dpopCredentials(recorder, name) {
      let credentials = lazyCredentials.get(name)
      if (credentials === undefined) {
        credentials = (async () => {
          const primary = state.primaryDpop
          if (name === 'rsa' && primary?.key.alg === 'PS256') return primary
          const key = await generateDpopKey(name === 'rsa' ? 'PS256' : (settings.clients.second?.dpopAlgorithm ?? 'ES256'))
          const client: ClientRole = name === 'rsa' ? 'primary' : 'second'
          const issued = await context.obtainToken(recorder, { kind: 'dpop', client, key, jkt: key.jkt })
          return { key, token: issued.accessToken }
        })()
        lazyCredentials.set(name, credentials)
      }
      return credentials
    },

    async tokenForCertificate(recorder, role, identity) {
      if (tokenSource.bindsAnyCertificate) {
        const issued = await context.obtainToken(recorder, { kind: 'mtls', client: role, identity, x5t: certificateThumbprint(identity.certPem) })
        return issued.accessToken
      }
      const primary = state.primaryMtls ?? state.primaryDpop
      if (!primary) throw new Error('no access token')
      return primary.token
    },
  }
  return context
}
