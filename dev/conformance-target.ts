// `conformance --dev`: the development environment of `npm run demo` (gateway, issuer, demo
// API, PKI) started in-process, and runner settings that point at it, with tokens minted by
// the development issuer. Also what the tests use to assess our own gateway.
import { chainPem, type DevPki, type Issued } from './pki.ts'
import { startDevEnvironment, type DevEnvironment } from './environment.ts'
import type { DevIssuer } from './issuer.ts'
import { createLogger } from '../src/observability/log.ts'
import { identityLabel, defaultProbe, type RunnerSettings } from '../src/conformance/config.ts'
import type { TlsIdentity } from '../src/conformance/http.ts'
import type { Mode } from '../src/conformance/model.ts'
import type { MintToken } from '../src/conformance/tokens.ts'

export const DEV_TARGET_PATH = '/accounts/demo-1'

function identityOf(leaf: Issued, ...issuers: Issued[]): TlsIdentity {
  const certPem = chainPem(leaf, ...issuers)
  return { label: identityLabel(certPem), certPem, keyPem: leaf.keyPem }
}

/** Settings for assessing a gateway started from the development environment at baseUrl. */
export function devRunnerSettings(baseUrl: string, pki: DevPki, mode: Mode, revoked?: Issued): RunnerSettings {
  const url = `${baseUrl}${DEV_TARGET_PATH}`
  return {
    mode,
    target: { url, method: 'GET', body: undefined, mediaType: undefined, caPem: pki.root.certPem, servername: undefined },
    tlsProbe: defaultProbe(url),
    clients: {
      primary: { clientId: 'partner-a', identity: identityOf(pki.partnerA, pki.intermediate), auth: undefined, dpopAlgorithm: 'ES256' },
      second: { clientId: 'partner-b', identity: identityOf(pki.partnerB, pki.intermediate), auth: undefined, dpopAlgorithm: 'ES256' },
    },
    certificates: {
      untrusted: identityOf(pki.untrusted),
      expired: identityOf(pki.expired, pki.intermediate),
      ...(revoked && { revoked: identityOf(revoked, pki.intermediate) }),
    },
    tokens: { source: 'devIssuer' },
    requestTimeoutMs: 10_000,
    skip: [],
  }
}

/** Tokens from the development issuer, bound as the runner asks; the second partner is partner-b. */
export function devMintToken(issuer: DevIssuer): MintToken {
  return (binding) =>
    issuer.mint({
      clientId: binding.client === 'second' ? 'partner-b' : 'partner-a',
      ...(binding.kind === 'dpop' ? { jkt: binding.jkt } : { x5t: binding.x5t }),
    })
}

export interface DevTarget {
  readonly settings: RunnerSettings
  readonly mintToken: MintToken
  readonly environment: DevEnvironment
  close(): Promise<void>
}

export async function startDevTarget(mode: Mode): Promise<DevTarget> {
  const environment = await startDevEnvironment({
    logger: createLogger('silent'),
    config: {
      events: { stdout: false },
      listener: {
        tls: {
          certFile: 'server-chain.crt',
          keyFile: 'server.key',
          clientCaFile: 'client-ca.crt',
          clientIntermediatesFile: 'client-intermediates.crt',
          // mTLS ecosystems require the certificate in the handshake; DPoP deployments must not (FAPI R54).
          clientCertificate: mode === 'mtls' ? 'require' : 'request',
        },
      },
    },
  })
  return {
    settings: devRunnerSettings(environment.baseUrl, environment.pki, mode),
    mintToken: devMintToken(environment.issuer),
    environment,
    close: () => environment.close(),
  }
}
