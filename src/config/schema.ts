// The one schema of the gateway's configuration file and of the route policies.
// Every key is documented in README.md ("Configuration", "Policies").
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
})

const listener = z.strictObject({
  host: z.string().default('0.0.0.0'),
  port: port.default(8443),
  publicBaseUrl: httpsUrl.refine((u) => !/[?#]/.test(u), 'must not carry a query or fragment'),
  tls: z.strictObject({
    certFile: z.string(),
    keyFile: z.string(),
    clientCaFile: z.string().optional(),
    clientIntermediatesFile: z.string().optional(),
    clientCertificate: z.enum(['require', 'request', 'off']).default('request'),
    minRsaBits: z.number().int().min(2048).default(2048),
  }),
  limits: limits.prefault({}),
})

const admin = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port: port.default(9090),
  tokenEnv: z.string().default('FAPI_GATEWAY_ADMIN_TOKEN'),
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
})

const issuer = z.strictObject({
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
}).refine((i) => i.jwksUri || i.introspection, { message: 'needs jwksUri (JWT access tokens) or introspection (opaque tokens)' })
  .refine((i) => !i.introspectJwt || i.introspection, { message: 'introspectJwt needs introspection', path: ['introspectJwt'] })

const upstream = z.strictObject({
  url: httpUrl,
  connectTimeoutMs: positiveInt.default(2_000),
  headersTimeoutMs: positiveInt.default(15_000),
  bodyTimeoutMs: positiveInt.default(30_000),
  connections: positiveInt.default(64),
  caFile: z.string().optional(),
})

const redis = z.union([
  z.strictObject({ url: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL') }),
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

const replay = z.strictObject({
  store: z.enum(['memory', 'redis']).default('memory'),
  memoryMaxEntries: positiveInt.default(1_000_000),
  redis: redis.optional(),
  keyPrefix: z.string().default('fapigw:'),
  commandTimeoutMs: positiveInt.default(500),
}).refine((r) => r.store !== 'redis' || r.redis, { message: 'store: redis needs a redis section', path: ['redis'] })

const dpop = z.strictObject({
  algorithms: z.array(algorithm).min(1).default(['PS256', 'ES256', 'EdDSA']),
  maxAgeSeconds: positiveInt.max(600).default(60),
  maxFutureSeconds: z.number().int().min(0).max(60).default(10),
  maxJtiLength: positiveInt.max(4096).default(256),
  nonce: z.strictObject({
    mode: z.enum(['off', 'optional', 'required']).default('off'),
    secretEnv: z.string().default('FAPI_GATEWAY_NONCE_SECRET'),
    slotSeconds: positiveInt.default(60),
  }).prefault({}),
})

const forwarding = z.strictObject({
  stripAuthorization: z.boolean().default(true),
  stripDpop: z.boolean().default(true),
  rewriteDpopToBearer: z.boolean().default(false),
  identityHeaderPrefix: z.string().regex(/^[a-z0-9-]+-$/, 'must be lower-case, end with a dash').default('x-fapi-gateway-'),
  stripHeaders: z.array(z.string().toLowerCase()).default([]),
}).refine((f) => !f.rewriteDpopToBearer || !f.stripAuthorization, { message: 'rewriteDpopToBearer needs stripAuthorization: false', path: ['rewriteDpopToBearer'] })

const caches = z.strictObject({
  verifiedTokens: positiveInt.default(10_000),
  proofKeys: positiveInt.default(10_000),
}).prefault({})

export const gatewayConfigSchema = z.strictObject({
  listener,
  admin: admin.prefault({}),
  issuers: z.array(issuer).min(1),
  upstreams: z.record(z.string().regex(/^[a-z0-9][a-z0-9-]*$/), upstream).refine((u) => Object.keys(u).length > 0, 'at least one upstream is required'),
  dpop: dpop.prefault({}),
  replay: replay.prefault({}),
  forwarding: forwarding.prefault({}),
  caches,
  policies: z.strictObject({ dir: z.string().default('policies') }).prefault({}),
  log: z.strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') }).prefault({}),
})

export type GatewayConfig = z.infer<typeof gatewayConfigSchema>
export type IssuerConfig = GatewayConfig['issuers'][number]
export type UpstreamConfig = GatewayConfig['upstreams'][string]

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
})

export const policyFileSchema = z.strictObject({ routes: z.array(routePolicySchema).min(1) })

export type RoutePolicy = z.infer<typeof routePolicySchema>
export type BindingRequirement = z.infer<typeof bindingRequirement>
