// Certificate-bound tokens and client certificates (RFC 8705 §3), for mTLS deployments:
// the token with its own certificate passes; with another partner's, none, an untrusted,
// an expired or a revoked certificate it is refused (in the handshake, or with a 4xx).
import type { CheckDefinition } from '../check.ts'
import type { Recorder, RunContext } from '../context.ts'
import type { TlsIdentity } from '../http.ts'
import { judgeCertificateRefusal, judgeRefusal, judgeSuccess, type Outcome } from '../judge.ts'
import type { ClientRole } from '../tokens.ts'

function mtlsSkipReason(ctx: RunContext): string | undefined {
  if (ctx.settings.mode !== 'mtls') return 'the target is assessed in dpop mode'
  if (!ctx.state.primaryMtls) return `no access token (${ctx.state.tokenError ?? 'see token-acquisition'})`
  return undefined
}

async function bearerCall(ctx: RunContext, recorder: Recorder, label: string, identity: TlsIdentity | 'none', token: string, scheme = 'Bearer', note?: string) {
  const { target } = ctx.settings
  const { headers, interactionId } = ctx.resourceHeaders({ authorization: `${scheme} ${token}` })
  return ctx.call(recorder, {
    label,
    method: target.method,
    url: target.url,
    headers,
    ...(target.body !== undefined && { body: target.body }),
    ...(identity === 'none' ? { withoutCertificate: true } : { identity }),
    notes: note ? [note] : [],
    ...(interactionId !== undefined && { interactionId }),
  })
}

function certificateCheck(
  id: string,
  section: 'mtls' | 'revocation',
  title: string,
  requirement: string,
  reference: string,
  role: ClientRole,
  pick: (ctx: RunContext) => TlsIdentity | undefined,
  missing: string,
): CheckDefinition {
  return {
    id,
    title,
    section,
    requirement,
    reference,
    level: 'required',
    modes: ['mtls'],
    skipReason: (ctx) => mtlsSkipReason(ctx) ?? (pick(ctx) ? undefined : missing),
    async run(ctx, recorder): Promise<Outcome> {
      const identity = pick(ctx)!
      const token = await ctx.tokenForCertificate(recorder, role, identity)
      const bound = ctx.tokenSource.bindsAnyCertificate ? 'a token bound to this certificate' : "the partner's token"
      return judgeCertificateRefusal(
        await bearerCall(ctx, recorder, `${role} certificate`, identity, token, 'Bearer', `${bound}, sent over a connection with the ${role} certificate`),
      )
    },
  }
}

export function mtlsChecks(): CheckDefinition[] {
  return [
    {
      id: 'mtls-baseline-accepted',
      title: 'A certificate-bound token with its own certificate is accepted',
      section: 'mtls',
      level: 'required',
      modes: ['mtls'],
      requirement: 'A certificate-bound token sent with the Bearer scheme over mTLS with the certificate it is bound to is accepted with 200 or 201.',
      reference: 'RFC 8705 §3; FAPI2 SP 5.3.4-1; suite EnsureHttpStatusCodeIs200or201',
      skipReason: mtlsSkipReason,
      async run(ctx, recorder) {
        const { identity, token } = ctx.state.primaryMtls!
        const outcome = judgeSuccess(await bearerCall(ctx, recorder, 'baseline', identity, token))
        if (outcome.verdict !== 'pass') ctx.state.baselineFailed = true
        return outcome
      },
    },
    {
      id: 'mtls-scheme-case-accepted',
      title: 'The Bearer scheme is case-insensitive',
      section: 'mtls',
      level: 'required',
      modes: ['mtls'],
      requirement: '`Authorization: bEARER <token>` is the Bearer scheme: auth scheme names are case-insensitive.',
      reference: 'RFC 9110 §11.1; suite FAPI2SPFinalAccessTokenTypeHeaderCaseSensitivity',
      skipReason: mtlsSkipReason,
      async run(ctx, recorder) {
        const { identity, token } = ctx.state.primaryMtls!
        return judgeSuccess(await bearerCall(ctx, recorder, 'scheme bEARER', identity, token, 'bEARER', 'scheme written "bEARER"'))
      },
    },
    {
      id: 'mtls-other-partner-cert-refused',
      title: "The token with another partner's certificate is refused",
      section: 'mtls',
      level: 'required',
      modes: ['mtls'],
      requirement:
        'A certificate-bound token presented over a connection with a different (valid) client certificate is refused: the `x5t#S256` thumbprint does not match.',
      reference: 'RFC 8705 §3, §3.1; suite switchToClient1AndTryClient2AccessToken',
      skipReason: (ctx) => mtlsSkipReason(ctx) ?? (ctx.settings.clients.second?.identity ? undefined : 'no second partner certificate is configured'),
      async run(ctx, recorder) {
        const other = ctx.settings.clients.second!.identity!
        const outcome = await bearerCall(
          ctx,
          recorder,
          "second partner's certificate",
          other,
          ctx.state.primaryMtls!.token,
          'Bearer',
          "primary partner's token over the second partner's mTLS connection",
        )
        return judgeRefusal(outcome, { statuses: 'any-4xx', scheme: 'Bearer', errors: ['invalid_token'] })
      },
    },
    {
      id: 'mtls-no-cert-refused',
      title: 'The token without a client certificate is refused',
      section: 'mtls',
      level: 'required',
      modes: ['mtls'],
      requirement: 'A certificate-bound token presented on a connection without a client certificate is refused, in the handshake or with a 4xx.',
      reference: 'RFC 8705 §3; FAPI requirements R44',
      skipReason: mtlsSkipReason,
      async run(ctx, recorder) {
        return judgeCertificateRefusal(
          await bearerCall(ctx, recorder, 'no client certificate', 'none', ctx.state.primaryMtls!.token, 'Bearer', 'no client certificate on the connection'),
        )
      },
    },
    certificateCheck(
      'mtls-untrusted-cert-refused',
      'mtls',
      'A client certificate from an untrusted CA is refused',
      'A client certificate that does not chain to a trusted CA is refused, in the handshake or with a 4xx.',
      'RFC 8705 §2.1, §7.4; FAPI requirements T8, T15',
      'untrusted',
      (ctx) => ctx.settings.certificates.untrusted,
      'no untrusted test certificate is configured',
    ),
    certificateCheck(
      'mtls-expired-cert-refused',
      'mtls',
      'An expired client certificate is refused',
      'An expired client certificate is refused, in the handshake or with a 4xx.',
      'RFC 5280 §6.1.3; RFC 8705 §7.5; FAPI requirements T9, T15',
      'expired',
      (ctx) => ctx.settings.certificates.expired,
      'no expired test certificate is configured',
    ),
  ]
}

export function revocationChecks(): CheckDefinition[] {
  return [
    certificateCheck(
      'revoked-cert-refused',
      'revocation',
      'A revoked client certificate is refused',
      'A client certificate its CA has revoked is refused, in the handshake (alert certificate_revoked) or with a 4xx.',
      'RFC 8705 §2.1; RFC 5280 §6.3; RFC 6960; FAPI requirements T12',
      'revoked',
      (ctx) => ctx.settings.certificates.revoked,
      'no revoked test certificate is configured',
    ),
  ]
}
