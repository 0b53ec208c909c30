// Getting a token, and how the target treats one in the wrong place or none at all
// (FAPI 2.0 SP §5.3.4, RFC 6750 §2, §3).
import type { CheckDefinition } from '../check.ts'
import { htuOf, withQueryParameter, type CallSpec, type RunContext } from '../context.ts'
import { challengesOf, findChallenge } from '../challenges.ts'
import { describeAnswer, fail, judgeRefusal, pass, type Outcome } from '../judge.ts'
import { generateDpopKey, validProof } from '../proofs.ts'
import { certificateThumbprint } from '../tokens.ts'

function noToken(ctx: RunContext): string | undefined {
  return ctx.state.primaryDpop || ctx.state.primaryMtls ? undefined : `no access token (${ctx.state.tokenError ?? 'see token-acquisition'})`
}

const tokenAcquisition: CheckDefinition = {
  id: 'token-acquisition',
  title: 'A sender-constrained access token is obtained',
  section: 'presentation',
  level: 'required',
  requirement:
    "The runner obtains an access token bound to the partner's DPoP key (token_type DPoP) or TLS client certificate (token_type Bearer), as a partner would; every other check needs it.",
  reference: 'FAPI2 SP 5.3.2.1-4/-5, 5.3.2.1-8; RFC 9449 §5; RFC 8705 §3; RFC 6749 §4.4',
  async run(ctx, recorder): Promise<Outcome> {
    const { mode, clients } = ctx.settings
    try {
      if (mode === 'dpop') {
        const key = await generateDpopKey(clients.primary.dpopAlgorithm)
        const issued = await ctx.obtainToken(recorder, { kind: 'dpop', client: 'primary', key, jkt: key.jkt })
        ctx.state.primaryDpop = { key, token: issued.accessToken }
        return pass(`obtained a DPoP-bound token (token_type ${issued.tokenType}, ${key.alg} key) — ${ctx.tokenSource.description}`)
      }
      const identity = clients.primary.identity!
      const issued = await ctx.obtainToken(recorder, { kind: 'mtls', client: 'primary', identity, x5t: certificateThumbprint(identity.certPem) })
      ctx.state.primaryMtls = { identity, token: issued.accessToken }
      return pass(`obtained a certificate-bound token (token_type ${issued.tokenType}) for ${identity.label} — ${ctx.tokenSource.description}`)
    } catch (error) {
      ctx.state.tokenError = (error as Error).message
      return fail(`could not obtain an access token: ${ctx.redactor.text((error as Error).message)}`)
    }
  },
}

const tokenInQuery: CheckDefinition = {
  id: 'token-in-query-refused',
  title: 'An access token in the query string is refused',
  section: 'presentation',
  level: 'required',
  requirement:
    'Access tokens are accepted only in the Authorization header: a request with `?access_token=` and no Authorization header is refused (400, 401 or 414) and gets no data.',
  reference: 'FAPI2 SP 5.3.4-2; RFC 6750 §2.3; suite DisallowAccessTokenInQuery',
  skipReason: noToken,
  async run(ctx, recorder) {
    const { target, mode } = ctx.settings
    const token = (ctx.state.primaryDpop ?? ctx.state.primaryMtls)!.token
    const url = withQueryParameter(target.url, 'access_token', token)
    const build = async (nonce: string | undefined): Promise<CallSpec> => {
      const proofs = ctx.state.primaryDpop
        ? [await validProof({ key: ctx.state.primaryDpop.key, htm: target.method, htu: htuOf(target.url), accessToken: token, nonce, iat: ctx.nowSeconds() })]
        : []
      const { headers, interactionId } = ctx.resourceHeaders({ authorization: undefined, proofs })
      return {
        label: 'token in the query',
        method: target.method,
        url,
        headers,
        ...(target.body !== undefined && { body: target.body }),
        ...(mode === 'mtls' && ctx.state.primaryMtls && { identity: ctx.state.primaryMtls.identity }),
        notes: [
          mode === 'dpop'
            ? 'access_token in the query, a valid DPoP proof, no Authorization header'
            : "access_token in the query over the partner's mTLS connection, no Authorization header",
        ],
        ...(interactionId !== undefined && { interactionId }),
      }
    }
    const outcome = mode === 'dpop' ? await ctx.dpopCall(recorder, build) : await ctx.call(recorder, await build(undefined))
    return judgeRefusal(outcome, { statuses: [400, 401, 414], scheme: 'any', errors: undefined })
  },
}

const noCredentials: CheckDefinition = {
  id: 'no-credentials-challenge',
  title: 'A request without credentials gets a bare challenge',
  section: 'presentation',
  level: 'recommended',
  requirement:
    'A request with no access token is answered 401 with a WWW-Authenticate challenge for the scheme the resource expects (DPoP with `algs`, or Bearer), without an error code.',
  reference: 'RFC 6750 §3, §3.1; RFC 9449 §7.1; RFC 9110 §11.6.1',
  async run(ctx, recorder): Promise<Outcome> {
    const { target, mode } = ctx.settings
    const { headers, interactionId } = ctx.resourceHeaders({ authorization: undefined })
    const outcome = await ctx.call(recorder, {
      label: 'no credentials',
      method: target.method,
      url: target.url,
      headers,
      ...(target.body !== undefined && { body: target.body }),
      notes: ['no Authorization header, no DPoP header'],
      ...(interactionId !== undefined && { interactionId }),
    })
    if (outcome.kind !== 'answer') return fail(`no HTTP answer: ${describeAnswer(outcome)}`)
    if (outcome.status !== 401) return fail(`answered ${describeAnswer(outcome)}; expected 401`)
    const scheme = mode === 'dpop' ? 'DPoP' : 'Bearer'
    const challenge = findChallenge(challengesOf(outcome.rawHeaders), scheme)
    if (!challenge) return fail(`401 without a ${scheme} challenge`)
    if (challenge.params.error !== undefined)
      return fail(`the ${scheme} challenge carries error="${challenge.params.error}" although no credentials were sent (RFC 6750 §3.1: SHOULD NOT)`)
    if (scheme === 'DPoP' && challenge.params.algs === undefined) return fail('the DPoP challenge has no algs parameter (RFC 9449 §7.1: SHOULD)')
    return pass(`401 with a bare ${scheme} challenge${challenge.params.algs ? ` (algs="${challenge.params.algs}")` : ''}`)
  },
}

export function presentationChecks(): { first: CheckDefinition[]; later: CheckDefinition[] } {
  return { first: [tokenAcquisition], later: [tokenInQuery, noCredentials] }
}
