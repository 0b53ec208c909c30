// The one schema of the gateway's configuration file and of the route policies.
// Every key is documented in docs/configuration.md and docs/policies.md.
import { isIP } from 'node:net'
import { z } from 'zod'

const algorithm = z.enum(['PS256', 'ES256', 'EdDSA'])
const port = z.number().int().min(0).max(65535)
const positiveInt = z.number().int().positive()
const httpsUrl = z.url({ protocol: /^https$/, error: 'must be an https:// URL' })
const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })

const limits = z.strictObject({
  maxHeaderBytes: positiveInt.default(16 * 1024),
  headersTimeoutMs: positiveInt.default(10_000),
  requestTimeoutMs: positiveInt.default(30_000),
  keepAliveTimeoutMs: positiveInt.default(5_000),
  // Node's own default (30 s) would let a stalled request live up to 30 s past headersTimeoutMs.
  connectionsCheckingIntervalMs: positiveInt.default(1_000),
  maxBodyBytes: positiveInt.default(10 * 1024 * 1024),
  maxFormBodyBytes: positiveInt.default(64 * 1024),
  maxConnections: positiveInt.default(10_000),
  // Node's own default (120 s) let sockets that never finish the handshake hold their place that long.
  handshakeTimeoutMs: positiveInt.default(5_000),
  maxPendingHandshakes: positiveInt.default(1_000),
})

const ipOrCidr = z.string().refine((value) => {
  const [address, prefix, extra] = value.split('/')
  const version = isIP(address ?? '')
  if (version === 0 || extra !== undefined) return false
  return prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= (version === 4 ? 32 : 128))
}, 'must be an IP address or a CIDR range')

// The gateway's own certificate: OCSP stapling (RFC 6066 §8) and the expiry warning (docs/operations.md, "Rotation and reload").
const ocspStapling = z.strictObject({
  enabled: z.boolean().default(true),
  url: httpUrl.optional(),
  timeoutMs: positiveInt.max(60_000).default(5_000),
})

const listener = z
  .strictObject({
    host: z.string().default('0.0.0.0'),
    port: port.default(8443),
    publicBaseUrl: httpsUrl
      .refine((u) => !/[?#]/.test(u), 'must not carry a query or fragment')
      // Every DPoP htu is this origin followed by the path as received: a base path would be counted twice.
      .refine(
        (u) => URL.parse(u)?.pathname === '/',
        'must be an origin only (https://host or https://host:port), without a path: the request path is added to it for DPoP htu',
      ),
    tls: z.strictObject({
      certFile: z.string(),
      keyFile: z.string(),
      clientCaFile: z.string().optional(),
      clientIntermediatesFile: z.string().optional(),
      clientCertificate: z.enum(['require', 'request', 'off']).default('request'),
      minRsaBits: z.number().int().min(2048).default(2048),
      ocspStapling: ocspStapling.prefault({}),
      expiryWarningDays: z.number().int().min(0).max(3650).default(14),
    }),
    limits: limits.prefault({}),
    // Off by default: client certificates forwarded by a TLS-terminating load balancer (docs/revocation.md).
    clientCertificateHeader: z
      .strictObject({
        name: z
          .string()
          .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name')
          .toLowerCase()
          .default('x-client-cert'),
        trustedProxies: z.array(ipOrCidr).min(1),
      })
      .optional(),
  })
  .refine((l) => !l.clientCertificateHeader || l.tls.clientCaFile, {
    message: 'needs tls.clientCaFile: forwarded certificates are validated against it',
    path: ['clientCertificateHeader'],
  })

const admin = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port: port.default(9090),
  tokenEnv: z.string().default('FAPI_GATEWAY_ADMIN_TOKEN'),
  /** What /readyz needs besides the replay store and the issuers' keys. */
  readiness: z
    .strictObject({
      upstreams: z.boolean().default(true),
      upstreamProbeIntervalMs: positiveInt.min(100).default(2_000),
      upstreamProbeTimeoutMs: positiveInt.default(1_000),
    })
    .prefault({}),
})

const introspection = z.strictObject({
  endpoint: httpsUrl,
  clientId: z.string().min(1),
  auth: z.discriminatedUnion('method', [
    z.strictObject({ method: z.literal('client_secret_basic'), secretEnv: z.string().min(1) }),
    z.strictObject({ method: z.literal('private_key_jwt'), privateKeyFile: z.string(), alg: algorithm.default('ES256') }),
  ]),
  cacheTtlSeconds: positiveInt.default(60),
  caFile: z.string().optional(),
  // Flood bounds (docs/errors.md, "Introspection floods"): every string that is not a JWS would otherwise cost a call.
  inactiveCacheTtlSeconds: z.number().int().min(0).max(300).default(10),
  cacheSize: positiveInt.default(10_000),
  timeoutMs: positiveInt.max(60_000).default(5_000),
  connections: positiveInt.max(1024).default(16),
  maxPendingPerClient: positiveInt.default(8),
  maxQueued: z.number().int().min(0).default(64),
  maxQueueWaitMs: positiveInt.max(60_000).default(1_000),
  tokenShape: z
    .strictObject({
      minLength: positiveInt.default(1),
      maxLength: positiveInt.max(16 * 1024).default(4096),
      charset: z.enum(['b64token', 'base64url', 'hex', 'alphanumeric']).default('b64token'),
      prefix: z
        .string()
        .regex(/^[A-Za-z0-9\-._~+/]+$/, 'must be b64token characters (RFC 6750 §2.1)')
        .optional(),
    })
    .prefault({})
    .refine((shape) => shape.minLength <= shape.maxLength, { message: 'minLength must not exceed maxLength', path: ['minLength'] }),
})

const issuer = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'must be lower-case letters, digits and dashes'),
    issuer: z.string().min(1),
    jwksUri: httpsUrl.optional(),
    caFile: z.string().optional(),
    audience: z.string().min(1),
    algorithms: z.array(algorithm).min(1).default(['PS256', 'ES256', 'EdDSA']),
    requireTyp: z.boolean().default(true),
    clockToleranceSeconds: z.number().int().min(0).max(300).default(10),
    jwksCooldownSeconds: positiveInt.default(30),
    jwksMaxAgeSeconds: positiveInt.default(600),
    introspection: introspection.optional(),
    introspectJwt: z.boolean().default(false),
    introspectJwtCacheSeconds: positiveInt.default(10),
    // Tokens of a legacy server behind the authorization-server façade carry no binding: it comes
    // from the gateway's binding registry (docs/authorization-server.md).
    facade: z
      .strictObject({
        // How the token itself is validated besides its registry record; 'registry' trusts the record
        // alone (written from the legacy server's own answer) and so never notices a revocation made
        // directly at the legacy server before the token expires.
        validate: z.enum(['introspection', 'jwks', 'registry']),
      })
      .optional(),
  })
  .refine((i) => i.jwksUri || i.introspection || i.facade?.validate === 'registry', {
    message: 'needs jwksUri (JWT access tokens) or introspection (opaque tokens)',
  })
  .refine((i) => i.facade?.validate !== 'introspection' || i.introspection, { message: 'facade.validate introspection needs introspection', path: ['facade'] })
  .refine((i) => i.facade?.validate !== 'jwks' || i.jwksUri, { message: 'facade.validate jwks needs jwksUri', path: ['facade'] })
  .refine((i) => !i.introspectJwt || i.introspection, { message: 'introspectJwt needs introspection', path: ['introspectJwt'] })

// The authorization-server façade (docs/authorization-server.md): the gateway as the FAPI 2.0 face
// of a legacy OAuth 2.0 server. Partners are registered in their own file (partnerFileSchema).
const legacySecret = z
  .strictObject({
    clientId: z.string().min(1),
    authentication: z.enum(['client_secret_basic', 'client_secret_post']).default('client_secret_basic'),
    /** The secret never sits in the configuration: an environment variable or a file names it. */
    secretEnv: z.string().min(1).optional(),
    secretFile: z.string().min(1).optional(),
  })
  .refine((c) => (c.secretEnv === undefined) !== (c.secretFile === undefined), {
    message: 'needs exactly one of secretEnv and secretFile',
    path: ['secretEnv'],
  })

const legacyServer = z
  .strictObject({
    tokenEndpoint: httpsUrl,
    revocationEndpoint: httpsUrl.optional(),
    caFile: z.string().optional(),
    // The gateway's own client certificate, where the legacy server wants mTLS from it.
    certFile: z.string().optional(),
    keyFile: z.string().optional(),
    connectTimeoutMs: positiveInt.max(60_000).default(2_000),
    timeoutMs: positiveInt.max(60_000).default(10_000),
    connections: positiveInt.max(1024).default(32),
    /** The legacy server's authorization endpoint: set, the gateway runs the authorization-code front channel (PAR, authorize, callback). */
    authorizationEndpoint: httpsUrl.optional(),
    /** Whether the gateway sends the legacy server a PKCE pair of its own (RFC 7636), where the legacy server takes one. */
    pkce: z.boolean().default(true),
    /** One legacy client shared by every partner registered with `legacy: shared`. */
    sharedClient: legacySecret.optional(),
  })
  .refine((u) => (u.certFile === undefined) === (u.keyFile === undefined), { message: 'certFile and keyFile go together', path: ['certFile'] })

const endpointPath = z
  .string()
  .startsWith('/', 'must start with /')
  .regex(/^\/[A-Za-z0-9\-._~/]*$/, 'must be a plain path (letters, digits, - . _ ~ /)')

// The gateway's own keys (issue 14): JARM signing and request-object decryption. Secrets come from a file or the environment only.
const SIGNING_KEY_ALGORITHMS = ['PS256', 'ES256', 'EdDSA'] as const
const ENCRYPTION_KEY_ALGORITHMS = ['RSA-OAEP-256', 'ECDH-ES'] as const
const isoInstant = z.iso.datetime({ offset: true })
const gatewayKey = z
  .strictObject({
    kid: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be 1 to 128 letters, digits or . _ : -'),
    use: z.enum(['sig', 'enc']),
    alg: z.enum([...SIGNING_KEY_ALGORITHMS, ...ENCRYPTION_KEY_ALGORITHMS]),
    /** PEM (PKCS#8), relative to the configuration file. */
    privateKeyFile: z.string().optional(),
    /** An environment variable holding the PEM (PKCS#8) or a private JWK. */
    privateKeyEnv: z.string().optional(),
    /** When the key starts signing (it is published publishAheadSeconds before); unset: published and active at once. */
    activeFrom: isoInstant.optional(),
    /** When the key stops signing (or is no longer offered for encryption); kept retiredKeptSeconds longer. */
    retireAt: isoInstant.optional(),
  })
  .refine((k) => (k.privateKeyFile === undefined) !== (k.privateKeyEnv === undefined), {
    message: 'needs exactly one of privateKeyFile or privateKeyEnv',
    path: ['privateKeyFile'],
  })
  .refine((k) => (k.use === 'sig') === (SIGNING_KEY_ALGORITHMS as readonly string[]).includes(k.alg), {
    message: 'use sig takes PS256, ES256 or EdDSA; use enc takes RSA-OAEP-256 or ECDH-ES',
    path: ['alg'],
  })
  .refine((k) => k.activeFrom === undefined || k.retireAt === undefined || Date.parse(k.retireAt) > Date.parse(k.activeFrom), {
    message: 'must be after activeFrom',
    path: ['retireAt'],
  })

const authorizationServer = z
  .strictObject({
    /** The façade's issuer; listener.publicBaseUrl when not set. */
    issuer: httpsUrl.optional(),
    partnersFile: z.string().default('partners.yaml'),
    /** CA bundle for the partners' jwksUri servers, when they use a private CA; the system's CAs otherwise. */
    partnerJwksCaFile: z.string().optional(),
    /** The issuers[] entry (with `facade`) under which the resource side accepts the tokens issued here. */
    resourceIssuer: z.string(),
    legacy: legacyServer,
    endpoints: z
      .strictObject({
        token: endpointPath.default('/oauth2/token'),
        revocation: endpointPath.default('/oauth2/revoke'),
        par: endpointPath.default('/oauth2/par'),
        authorization: endpointPath.default('/oauth2/authorize'),
        /** Registered at the legacy server as the redirect URI of every legacy client. */
        callback: endpointPath.default('/oauth2/callback'),
        /** The gateway's own public keys (published when `keys` are configured). */
        jwks: endpointPath.default('/oauth2/jwks'),
      })
      .prefault({}),
    authorizationCode: z
      .strictObject({
        /** A pushed request's expires_in (RFC 9126 §2.2; FAPI 2.0 SP §5.3.2.2-6: under 600). */
        requestLifetimeSeconds: positiveInt.max(599).default(90),
        /** How long a customer has at the legacy server's login and consent pages. */
        sessionLifetimeSeconds: positiveInt.max(3600).default(600),
        /** FAPI 2.0 SP §5.3.2.1-11: at most 60. */
        codeLifetimeSeconds: positiveInt.max(60).default(60),
        /** Signed request objects (RFC 9101, FAPI 2.0 Message Signing): required of every partner, or of those registered so. */
        requestObject: z.enum(['optional', 'required']).default('optional'),
      })
      .prefault({}),
    /** The gateway's own keys: JARM signing, request-object decryption (docs/authorization-server.md, "The gateway's own keys"). */
    keys: z
      .array(gatewayKey)
      .default([])
      .refine((keys) => new Set(keys.map((k) => k.kid)).size === keys.length, 'two keys with one kid'),
    keyRotation: z
      .strictObject({
        /** A key is published this long before it may sign; at least the JWKS endpoint's max-age (300). */
        publishAheadSeconds: positiveInt.min(300).default(3_600),
        /** How long a retired key stays published (and, for decryption, accepted): longer than what it signed lives. */
        retiredKeptSeconds: positiveInt.default(3_600),
        /** A warning is logged when a key's retireAt is closer than this; 0: none. */
        expiryWarningDays: z.number().int().min(0).default(14),
      })
      .prefault({}),
    /** Published as `openid-configuration` too, for a legacy server that issues ID tokens. */
    openid: z.boolean().default(false),
    /** Further RFC 8414 metadata values to publish (the legacy server's userinfo or jwks_uri, …). */
    metadata: z.record(z.string(), z.union([z.string(), z.array(z.string()), z.boolean()])).default({}),
    assertion: z
      .strictObject({
        // FAPI 2.0 SP §5.3.2.1-13: iat and nbf up to 10 s ahead are accepted, over 60 s refused.
        clockToleranceSeconds: z.number().int().min(10).max(60).default(10),
        /** Assertions valid for longer (exp - now) are refused, which bounds how long each jti is remembered. */
        maxLifetimeSeconds: positiveInt.max(3600).default(300),
      })
      .prefault({}),
    tokens: z
      .strictObject({
        /** The longest a binding record of an access token is kept, whatever the legacy server says. */
        accessTokenMaxLifetimeSeconds: positiveInt.default(3_600),
        /** How long a refresh token's record (the client it was issued to) is kept. */
        refreshTokenLifetimeSeconds: positiveInt.default(30 * 24 * 3600),
      })
      .prefault({}),
    limits: z
      .strictObject({
        maxBodyBytes: positiveInt.max(1024 * 1024).default(16 * 1024),
        /** Token and revocation requests a second, per client_id and per address (token bucket, per process). */
        perClientPerSecond: positiveInt.default(20),
        perAddressPerSecond: positiveInt.default(50),
        burst: positiveInt.default(40),
      })
      .prefault({}),
  })
  .refine((a) => new Set(Object.values(a.endpoints)).size === Object.keys(a.endpoints).length, {
    message: 'every endpoint needs a path of its own',
    path: ['endpoints'],
  })

const upstream = z
  .strictObject({
    // The forwarder asserts the same when it builds a pool; here it is a one-line configuration error at start-up.
    url: httpUrl.refine((u) => {
      const url = URL.parse(u)
      return url !== null && url.username === '' && url.password === '' && url.search === '' && url.hash === ''
    }, 'must be an origin with an optional base path (no user, query or fragment)'),
    connectTimeoutMs: positiveInt.default(2_000),
    headersTimeoutMs: positiveInt.default(15_000),
    bodyTimeoutMs: positiveInt.default(30_000),
    connections: positiveInt.default(64),
    caFile: z.string().optional(),
    // The gateway's own client certificate (mTLS to the upstream, docs/upstream.md, "Making the upstream accept only the gateway").
    certFile: z.string().optional(),
    keyFile: z.string().optional(),
  })
  .refine((u) => u.certFile === undefined || u.keyFile !== undefined, { message: 'needs keyFile: certFile and keyFile go together', path: ['keyFile'] })
  .refine((u) => u.keyFile === undefined || u.certFile !== undefined, { message: 'needs certFile: certFile and keyFile go together', path: ['certFile'] })
  .refine((u) => u.certFile === undefined || new URL(u.url).protocol === 'https:', {
    message: 'a client certificate needs an https:// url',
    path: ['certFile'],
  })

const redis = z.union([
  z.strictObject({ url: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'), passwordEnv: z.string().optional() }),
  z.strictObject({
    sentinels: z.array(z.strictObject({ host: z.string(), port })).min(1),
    name: z.string(),
    passwordEnv: z.string().optional(),
    tls: z.boolean().default(false),
  }),
  z.strictObject({
    cluster: z.array(z.strictObject({ host: z.string(), port })).min(1),
    passwordEnv: z.string().optional(),
    tls: z.boolean().default(false),
  }),
])

const replay = z
  .strictObject({
    store: z.enum(['memory', 'redis']).default('memory'),
    memoryMaxEntries: positiveInt.default(1_000_000),
    redis: redis.optional(),
    keyPrefix: z.string().default('fapigw:'),
    commandTimeoutMs: positiveInt.default(500),
    autoPipelining: z.boolean().default(false),
    /** A local copy of the revoked-token list kept current through Redis pub/sub (src/tokens/revocation-mirror.ts). */
    revocationMirror: z
      .strictObject({
        enabled: z.boolean().default(false),
        maxStalenessMs: positiveInt.min(50).default(500),
        heartbeatMs: positiveInt.min(10).default(100),
        maxEntries: positiveInt.default(100_000),
      })
      .prefault({})
      .refine((m) => m.heartbeatMs * 2 <= m.maxStalenessMs, { message: 'heartbeatMs must be at most half of maxStalenessMs', path: ['heartbeatMs'] }),
  })
  .refine((r) => r.store !== 'redis' || r.redis, { message: 'store: redis needs a redis section', path: ['redis'] })
  .refine((r) => !r.revocationMirror.enabled || r.store === 'redis', {
    message: 'needs store: redis (the in-memory store answers locally already)',
    path: ['revocationMirror', 'enabled'],
  })
  .refine((r) => !r.revocationMirror.enabled || !r.redis || !('cluster' in r.redis), {
    message: 'is not supported with redis.cluster (messages from different nodes arrive in no guaranteed order)',
    path: ['revocationMirror', 'enabled'],
  })

const dpop = z.strictObject({
  algorithms: z.array(algorithm).min(1).default(['PS256', 'ES256', 'EdDSA']),
  maxAgeSeconds: positiveInt.max(600).default(60),
  maxFutureSeconds: z.number().int().min(0).max(60).default(10),
  maxJtiLength: positiveInt.max(4096).default(256),
  /** Where proof signatures are verified: libuv's thread pool (off the event loop) or the event loop itself. */
  verifyOn: z.enum(['threadPool', 'eventLoop']).default('threadPool'),
  nonce: z
    .strictObject({
      mode: z.enum(['off', 'optional', 'required']).default('off'),
      secretEnv: z.string().default('FAPI_GATEWAY_NONCE_SECRET'),
      slotSeconds: positiveInt.default(60),
    })
    .prefault({}),
})

// A header name, or a prefix of one ending in `*`.
const headerPattern = z
  .string()
  .regex(/^[A-Za-z0-9!#$%&'+.^_`|~-]+\*?$/, 'must be a header name, optionally ending in *')
  .toLowerCase()
const forwarding = z
  .strictObject({
    stripAuthorization: z.boolean().default(true),
    stripDpop: z.boolean().default(true),
    rewriteDpopToBearer: z.boolean().default(false),
    identityHeaderPrefix: z
      .string()
      .regex(/^[a-z0-9-]+-$/, 'must be lower-case, end with a dash')
      .default('x-fapi-gateway-'),
    stripHeaders: z.array(headerPattern).default([]),
    underscoreHeaders: z.enum(['refuse', 'drop', 'allow']).default('refuse'),
    blockOverrides: z.boolean().default(true),
    stripResponseHeaders: z.array(headerPattern).default([]),
    rewriteLocation: z.boolean().default(true),
  })
  .refine((f) => !f.rewriteDpopToBearer || !f.stripAuthorization, {
    message: 'rewriteDpopToBearer needs stripAuthorization: false',
    path: ['rewriteDpopToBearer'],
  })

const caches = z
  .strictObject({
    verifiedTokens: positiveInt.default(10_000),
    proofKeys: positiveInt.default(10_000),
  })
  .prefault({})

const headerName = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name')
const eventsHttpSink = z.strictObject({
  url: httpUrl,
  batchSize: positiveInt.max(10_000).default(100),
  flushIntervalMs: positiveInt.default(1_000),
  maxQueue: positiveInt.default(10_000),
  timeoutMs: positiveInt.default(5_000),
  maxRetries: z.number().int().min(0).max(20).default(5),
  retryBackoffMs: positiveInt.default(200),
  headers: z
    .record(headerName, z.string().regex(/^[^\r\n]*$/, 'must be one line'))
    .default({})
    .refine((h) => !Object.keys(h).some((name) => name.toLowerCase() === 'authorization'), 'put credentials in authEnv, not in the file'),
  authEnv: z.string().optional(),
  caFile: z.string().optional(),
})

const events = z.strictObject({
  stdout: z.boolean().default(true),
  http: eventsHttpSink.optional(),
})

// Client-certificate revocation (docs/revocation.md). Without this section nothing is checked.
const revocationSource = z.enum(['ocsp', 'crl'])
const revocationSources = z.array(revocationSource).refine((s) => new Set(s).size === s.length, 'must not name a source twice')
const onUnavailable = z.enum(['hard-fail', 'soft-fail'])

/** What a CA entry or a route may change; unset keys inherit. */
export const revocationOverrideSchema = z.strictObject({
  sources: revocationSources.optional(),
  checkIntermediates: z.boolean().optional(),
  onUnavailable: onUnavailable.optional(),
  maxStalenessSeconds: positiveInt.optional(),
})

const ocspFields = {
  nonce: z.boolean(),
  hashAlgorithm: z.enum(['sha1', 'sha256']),
  timeoutMs: positiveInt.max(60_000),
  maxCacheSeconds: positiveInt,
  defaultValiditySeconds: positiveInt,
}
const crlFields = {
  timeoutMs: positiveInt.max(300_000),
  maxBytes: positiveInt,
  refreshIntervalSeconds: positiveInt,
  refreshBeforeExpirySeconds: z.number().int().min(0),
}

const revocationDefaults = z.strictObject({
  sources: revocationSources.default(['ocsp', 'crl']),
  checkIntermediates: z.boolean().default(false),
  onUnavailable: onUnavailable.default('hard-fail'),
  maxStalenessSeconds: positiveInt.default(86_400),
  ocsp: z
    .strictObject({
      nonce: ocspFields.nonce.default(false),
      hashAlgorithm: ocspFields.hashAlgorithm.default('sha1'),
      timeoutMs: ocspFields.timeoutMs.default(3_000),
      maxCacheSeconds: ocspFields.maxCacheSeconds.default(3_600),
      defaultValiditySeconds: ocspFields.defaultValiditySeconds.default(300),
    })
    .prefault({}),
  crl: z
    .strictObject({
      timeoutMs: crlFields.timeoutMs.default(10_000),
      maxBytes: crlFields.maxBytes.default(64 * 1024 * 1024),
      refreshIntervalSeconds: crlFields.refreshIntervalSeconds.default(300),
      refreshBeforeExpirySeconds: crlFields.refreshBeforeExpirySeconds.default(300),
    })
    .prefault({}),
})

const revocationCa = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'must be lower-case letters, digits and dashes'),
    caFile: z.string().optional(),
    subject: z.string().min(1).optional(),
    ...revocationOverrideSchema.shape,
    ocsp: z
      .strictObject({
        url: httpUrl.optional(),
        nonce: ocspFields.nonce.optional(),
        hashAlgorithm: ocspFields.hashAlgorithm.optional(),
        timeoutMs: ocspFields.timeoutMs.optional(),
        maxCacheSeconds: ocspFields.maxCacheSeconds.optional(),
        defaultValiditySeconds: ocspFields.defaultValiditySeconds.optional(),
      })
      .optional(),
    crl: z
      .strictObject({
        urls: z.array(httpUrl).default([]),
        files: z.array(z.string()).default([]),
        timeoutMs: crlFields.timeoutMs.optional(),
        maxBytes: crlFields.maxBytes.optional(),
        refreshIntervalSeconds: crlFields.refreshIntervalSeconds.optional(),
        refreshBeforeExpirySeconds: crlFields.refreshBeforeExpirySeconds.optional(),
      })
      .optional(),
  })
  .refine((ca) => (ca.caFile === undefined) !== (ca.subject === undefined), { message: 'needs exactly one of caFile and subject' })

const revocation = z
  .strictObject({
    default: revocationDefaults.prefault({}),
    cas: z.array(revocationCa).default([]),
    denyListFile: z.string().optional(),
    denyListPollSeconds: positiveInt.default(5),
    cacheSize: positiveInt.default(10_000),
    clockSkewSeconds: z.number().int().min(0).max(600).default(60),
  })
  .refine((r) => new Set(r.cas.map((ca) => ca.name)).size === r.cas.length, { message: 'CA names must be unique', path: ['cas'] })

// Hot reload of files (docs/operations.md, "Rotation and reload").
const reload = z.strictObject({
  pollIntervalMs: z
    .number()
    .int()
    .min(0)
    .refine((ms) => ms === 0 || ms >= 100, 'must be 0 (files not watched) or at least 100')
    .default(2_000),
  drainTimeoutMs: positiveInt.default(30_000),
})

export const gatewayConfigSchema = z.strictObject({
  /** Processes serving the partner listener: a number, or 'auto' for one per CPU core. */
  workers: z.union([z.literal('auto'), z.number().int().min(1).max(256)]).default(1),
  listener,
  admin: admin.prefault({}),
  issuers: z.array(issuer).min(1),
  upstreams: z.record(z.string().regex(/^[a-z0-9][a-z0-9-]*$/), upstream).refine((u) => Object.keys(u).length > 0, 'at least one upstream is required'),
  dpop: dpop.prefault({}),
  replay: replay.prefault({}),
  forwarding: forwarding.prefault({}),
  caches,
  policies: z.strictObject({ dir: z.string().default('policies') }).prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      /** One line per answered request (never a token or a path); answers under 400 sampled at sampleRate. */
      access: z
        .strictObject({
          enabled: z.boolean().default(true),
          sampleRate: z.number().min(0).max(1).default(1),
        })
        .prefault({}),
      /** Log lines and stdout security events waiting for a slow stdout reader; past this they are dropped and counted. */
      stdoutBufferBytes: z
        .number()
        .int()
        .min(65_536)
        .default(16 * 1024 * 1024),
    })
    .prefault({}),
  events: events.prefault({}),
  revocation: revocation.optional(),
  reload: reload.prefault({}),
  authorizationServer: authorizationServer.optional(),
})

export type GatewayConfig = z.infer<typeof gatewayConfigSchema>
export type IssuerConfig = GatewayConfig['issuers'][number]
export type UpstreamConfig = GatewayConfig['upstreams'][string]
export type RevocationConfig = NonNullable<GatewayConfig['revocation']>

export const bindingRequirement = z.enum(['dpop', 'mtls', 'dpop-or-mtls', 'none'])

export const routePolicySchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'must be lower-case letters, digits and dashes'),
  path: z.string().startsWith('/', 'must start with /'),
  methods: z.array(z.string().regex(/^[A-Z]+$/, 'must be an upper-case HTTP method')).min(1),
  upstream: z.string(),
  upstreamPath: z.string().startsWith('/').optional(),
  issuers: z.array(z.string()).min(1).optional(),
  audience: z.string().optional(),
  scopes: z.array(z.string().min(1)).default([]),
  binding: bindingRequirement.default('dpop-or-mtls'),
  clientCertificate: z.enum(['required', 'optional']).optional(),
  revocation: revocationOverrideSchema.optional(),
})

export const policyFileSchema = z.strictObject({ routes: z.array(routePolicySchema).min(1) })

export type RoutePolicy = z.infer<typeof routePolicySchema>
export type BindingRequirement = z.infer<typeof bindingRequirement>

// The partner registry of the authorization-server façade (authorizationServer.partnersFile).
const jwks = z.looseObject({ keys: z.array(z.record(z.string(), z.unknown())).min(1) })
const partnerAuthentication = z.discriminatedUnion('method', [
  z
    .strictObject({ method: z.literal('private_key_jwt'), jwks: jwks.optional(), jwksUri: httpsUrl.optional() })
    .refine((a) => (a.jwks === undefined) !== (a.jwksUri === undefined), { message: 'needs exactly one of jwks and jwksUri', path: ['jwks'] }),
  z
    .strictObject({
      method: z.literal('tls_client_auth'),
      // RFC 8705 §2.1.2: exactly one of these is registered.
      subjectDn: z.string().min(1).optional(),
      sanDns: z.string().min(1).optional(),
      sanUri: z.string().min(1).optional(),
      sanIp: z.string().min(1).optional(),
      sanEmail: z.string().min(1).optional(),
    })
    .refine((a) => [a.subjectDn, a.sanDns, a.sanUri, a.sanIp, a.sanEmail].filter((v) => v !== undefined).length === 1, {
      message: 'needs exactly one of subjectDn, sanDns, sanUri, sanIp and sanEmail (RFC 8705 §2.1.2)',
    }),
  z
    .strictObject({ method: z.literal('self_signed_tls_client_auth'), jwks: jwks.optional(), jwksUri: httpsUrl.optional() })
    .refine((a) => (a.jwks === undefined) !== (a.jwksUri === undefined), { message: 'needs exactly one of jwks and jwksUri', path: ['jwks'] }),
])

export const grantType = z.enum(['authorization_code', 'refresh_token', 'client_credentials'])

export const partnerSchema = z.strictObject({
  clientId: z.string().regex(/^[\x21-\x7e]{1,255}$/, 'must be 1 to 255 visible ASCII characters'),
  name: z.string().optional(),
  authentication: partnerAuthentication,
  grantTypes: z.array(grantType).min(1),
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'must be a scope token (RFC 6749 §3.3)')).default([]),
  redirectUris: z.array(httpsUrl).default([]),
  /** RFC 9101: this partner's pushed requests must be signed request objects. */
  requireSignedRequestObject: z.boolean().default(false),
  /** The legacy client the gateway uses for this partner, or `shared` for authorizationServer.legacy.sharedClient. */
  legacy: z.union([z.literal('shared'), legacySecret]),
})

export const partnerFileSchema = z
  .strictObject({ partners: z.array(partnerSchema) })
  .refine((f) => new Set(f.partners.map((p) => p.clientId)).size === f.partners.length, { message: 'clientId values must be unique', path: ['partners'] })

export type PartnerConfig = z.infer<typeof partnerSchema>
export type AuthorizationServerConfig = z.infer<typeof authorizationServer>
export type LegacyClientConfig = z.infer<typeof legacySecret>
export type GatewayKeyConfig = AuthorizationServerConfig['keys'][number]
