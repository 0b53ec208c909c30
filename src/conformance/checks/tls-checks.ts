// TLS probes of the resource host and port, the seven conditions of FAPI requirements
// R47-R49 the conformance suite's happy flow applies: old versions and non-recommended TLS 1.2
// suites refused with alert 40 or 70 (or a reset), TLS 1.3 offered and preferred.
import { getCiphers } from 'node:tls'
import { FAPI_TLS12_CIPHERS } from '../../server/tls.ts'
import type { CheckDefinition } from '../check.ts'
import type { Recorder, RunContext } from '../context.ts'
import { describeFailure } from '../http.ts'
import { fail, judgeTlsRefusal, pass, type Outcome } from '../judge.ts'
import { describeOffer, probeTls, type ProbeEndpoint, type ProbeOutcome, type TlsOffer } from '../tls-probe.ts'

/** TLS 1.0/1.1 ClientHellos need security level 0 in OpenSSL 3 (SHA-1 and MD5 signatures). */
const LEGACY_CIPHERS = 'DEFAULT@SECLEVEL=0'

/** The suite's DHE probe (CheckForBCP195InsecureFAPICiphers); the IANA registry marks DHE "D". */
export const DHE_PROBE_SUITE = 'DHE-RSA-AES128-GCM-SHA256'

/**
 * TLS 1.2 suites with certificates that the IANA registry does not mark Recommended (FAPI 2.0
 * SP §5.2.2-1): CBC modes, RSA key transport and DHE. Each is offered alone and must be refused.
 */
export const NON_RECOMMENDED_TLS12_SUITES: readonly string[] = [
  'ECDHE-ECDSA-AES128-SHA256',
  'ECDHE-ECDSA-AES256-SHA384',
  'ECDHE-ECDSA-AES128-SHA',
  'ECDHE-ECDSA-AES256-SHA',
  'ECDHE-RSA-AES128-SHA256',
  'ECDHE-RSA-AES256-SHA384',
  'ECDHE-RSA-AES128-SHA',
  'ECDHE-RSA-AES256-SHA',
  'DHE-RSA-AES256-GCM-SHA384',
  'DHE-RSA-CHACHA20-POLY1305',
  'DHE-RSA-AES128-SHA256',
  'DHE-RSA-AES256-SHA256',
  'DHE-RSA-AES128-SHA',
  'DHE-RSA-AES256-SHA',
  'AES128-GCM-SHA256',
  'AES256-GCM-SHA384',
  'AES128-SHA256',
  'AES256-SHA256',
  'AES128-SHA',
  'AES256-SHA',
]

function endpointOf(ctx: RunContext): ProbeEndpoint {
  return {
    host: ctx.settings.tlsProbe.host,
    port: ctx.settings.tlsProbe.port,
    servername: ctx.settings.target.servername,
    timeoutMs: ctx.settings.requestTimeoutMs,
  }
}

function describeProbeOutcome(outcome: ProbeOutcome): string {
  switch (outcome.kind) {
    case 'connected':
      return `handshake completed: ${outcome.protocol}, ${outcome.cipher}`
    case 'unavailable':
      return `not sent: ${outcome.message}`
    case 'failure':
      return describeFailure(outcome)
  }
}

async function probe(ctx: RunContext, recorder: Recorder, label: string, offer: TlsOffer): Promise<ProbeOutcome> {
  const endpoint = endpointOf(ctx)
  offer = withPartnerCertificate(ctx, offer)
  const outcome = await probeTls(endpoint, offer)
  recorder.exchanges.push({
    sent: { label, request: describeOffer(offer, endpoint), headers: [], clientCertificate: offer.identity?.label ?? 'none', notes: [] },
    received: { status: undefined, headers: [], transport: describeProbeOutcome(outcome), bodyExcerpt: undefined },
  })
  return outcome
}

/**
 * Every probe presents the partner's certificate when one is configured, in both modes: a target that requires one
 * in the handshake would otherwise end a handshake it accepts with alert 116 (or 40 in TLS 1.2 and below), which
 * is no verdict on the version or suite offered. The suite's probes stop at ServerHello and need none.
 */
function withPartnerCertificate(ctx: RunContext, offer: TlsOffer): TlsOffer {
  const identity = ctx.settings.clients.primary.identity
  return identity ? { ...offer, identity } : offer
}

function refusedOffer(id: string, title: string, requirement: string, reference: string, offer: TlsOffer): CheckDefinition {
  return {
    id,
    title,
    section: 'tls',
    requirement,
    reference,
    level: 'required',
    async run(ctx, recorder) {
      return judgeTlsRefusal(await probe(ctx, recorder, 'ClientHello', offer))
    },
  }
}

function suiteCheck(suite: string): CheckDefinition {
  const check = refusedOffer(
    `tls-1.2-suite-${suite.toLowerCase()}-refused`,
    `TLS 1.2 offering only ${suite} is refused`,
    `Only cipher suites the IANA TLS registry marks Recommended may be negotiated in TLS 1.2; ${suite} is not one of them.`,
    'FAPI2 SP 5.2.2-1; RFC 9325 §4.2; suite RequireOnlyBCP195RecommendedCiphersForTLS12',
    { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: `${suite}@SECLEVEL=0` },
  )
  return {
    ...check,
    skipReason: () => (getCiphers().includes(suite.toLowerCase()) ? undefined : `this runner's OpenSSL cannot offer ${suite}`),
  }
}

export function tlsChecks(): CheckDefinition[] {
  return [
    refusedOffer(
      'tls-1.0-refused',
      'TLS 1.0 is refused',
      'The resource endpoint must not negotiate TLS 1.0: a TLS 1.0-only ClientHello is answered with alert protocol_version (70) or handshake_failure (40), or the connection is reset.',
      'FAPI2 SP 5.2.1-2; RFC 8996 §2; suite DisallowTLS10',
      { minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: LEGACY_CIPHERS },
    ),
    refusedOffer(
      'tls-1.1-refused',
      'TLS 1.1 is refused',
      'The resource endpoint must not negotiate TLS 1.1: a TLS 1.1-only ClientHello is answered with alert protocol_version (70) or handshake_failure (40), or the connection is reset.',
      'FAPI2 SP 5.2.1-2; RFC 8996 §3; suite DisallowTLS11',
      { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: LEGACY_CIPHERS },
    ),
    refusedOffer(
      'tls-1.2-dhe-refused',
      `TLS 1.2 offering only ${DHE_PROBE_SUITE} (DHE) is refused`,
      'Finite-field Diffie-Hellman suites are not Recommended in the IANA registry (deprecated); a ClientHello offering only a DHE suite must be refused.',
      'FAPI2 SP 5.2.2-1; RFC 9325 §4.1; suite CheckForBCP195InsecureFAPICiphers',
      { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: `${DHE_PROBE_SUITE}@SECLEVEL=0` },
    ),
    ...NON_RECOMMENDED_TLS12_SUITES.map(suiteCheck),
    {
      id: 'tls-1.2-recommended-accepted',
      title: 'TLS 1.2 with the Recommended suites is negotiated',
      section: 'tls',
      level: 'recommended',
      requirement: 'A TLS 1.2 client offering only the IANA-Recommended ECDHE AEAD suites can connect (partners that do not speak TLS 1.3 yet).',
      reference: 'FAPI2 SP 5.2.1-2, 5.2.2-1; RFC 9325 §4.2; suite EnsureTLS12RequireBCP195Ciphers',
      async run(ctx, recorder): Promise<Outcome> {
        const outcome = await probe(ctx, recorder, 'ClientHello', {
          minVersion: 'TLSv1.2',
          maxVersion: 'TLSv1.2',
          ciphers: FAPI_TLS12_CIPHERS,
        })
        return outcome.kind === 'connected'
          ? pass(`negotiated ${outcome.protocol}, ${outcome.cipher}`)
          : fail(`no TLS 1.2 handshake with a Recommended suite: ${describeProbeOutcome(outcome)}`)
      },
    },
    {
      id: 'tls-1.3-supported',
      title: 'TLS 1.3 is supported',
      section: 'tls',
      level: 'recommended',
      requirement: 'TLS 1.3 should be supported.',
      reference: 'RFC 9325 §3.1.1; suite EnsureTLS13OrLater',
      async run(ctx, recorder): Promise<Outcome> {
        const outcome = await probe(ctx, recorder, 'ClientHello', {
          minVersion: 'TLSv1.3',
          maxVersion: 'TLSv1.3',
        })
        ctx.state.tls13Supported = outcome.kind === 'connected'
        return outcome.kind === 'connected'
          ? pass(`negotiated ${outcome.protocol}, ${outcome.cipher}`)
          : fail(`TLS 1.3 not negotiated: ${describeProbeOutcome(outcome)}`)
      },
    },
    {
      id: 'tls-1.3-preferred',
      title: 'TLS 1.3 is preferred over TLS 1.2',
      section: 'tls',
      level: 'required',
      requirement: 'When the client offers TLS 1.2 and 1.3 and the server supports 1.3, the server must choose TLS 1.3.',
      reference: 'RFC 9325 §3.1.1; RFC 8446 §4.2.1; suite EnsureTLS13PreferredOverTLS12',
      async run(ctx, recorder): Promise<Outcome> {
        const outcome = await probe(ctx, recorder, 'ClientHello', {
          minVersion: 'TLSv1.2',
          maxVersion: 'TLSv1.3',
        })
        if (outcome.kind !== 'connected') return fail(`a standard TLS 1.2/1.3 handshake did not complete: ${describeProbeOutcome(outcome)}`)
        if (outcome.protocol === 'TLSv1.3') return pass(`chose ${outcome.protocol}`)
        return ctx.state.tls13Supported
          ? fail(`chose ${outcome.protocol} although the server supports TLS 1.3`)
          : pass(`chose ${outcome.protocol}; the server does not offer TLS 1.3 (see tls-1.3-supported)`)
      },
    },
  ]
}
