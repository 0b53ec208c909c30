// Route policies compiled once into a table. Deny by default: a path no policy
// matches is refused, and so is a path that could be read differently upstream.
import { refuse } from '../errors.ts'
import type { BindingRequirement, RoutePolicy } from '../config/schema.ts'
import type { RevocationOverride } from '../checks/revocation.ts'

export interface Route {
  readonly name: string
  readonly methods: ReadonlySet<string>
  readonly upstream: string
  /** Replaces the matched prefix when forwarding (from `upstreamPath`). */
  readonly rewrite: ((path: string) => string) | undefined
  /** The two prefixes `rewrite` swaps for a request path, to map the upstream's URLs back. */
  readonly pathMapping: ((path: string) => PathMapping) | undefined
  /** Issuers whose tokens the route accepts: the policy's list, or every configured issuer. */
  readonly issuerNames: readonly string[]
  readonly audience: string | undefined
  readonly scopes: readonly string[]
  readonly binding: BindingRequirement
  readonly clientCertificate: 'required' | 'optional'
  readonly acceptsDpop: boolean
  readonly acceptsBearer: boolean
  /** The route's changes to the revocation policy of the certificate's CA. */
  readonly revocation: RevocationOverride | undefined
}

/** `rewrite` turned `public` at the start of the request path into `upstream`. */
export interface PathMapping {
  readonly public: string
  readonly upstream: string
}

interface CompiledRoute {
  readonly pattern: RegExp
  readonly route: Route
}

export interface RouteTable {
  /** Finds the route for a request target (path and query). Throws GatewayError. */
  match(method: string, target: string): { route: Route; path: string }
  readonly routes: readonly Route[]
}

const SEGMENT = '[^/]+'

function patternSource(path: string): string {
  return path
    .split('/')
    .slice(1)
    .map((segment, index, all) => {
      if (segment === '**' && index === all.length - 1) return '(?:/.*)?'
      if (segment === '*' || /^\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(segment)) return `/${SEGMENT}`
      return '/' + segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    })
    .join('')
}

function compilePattern(path: string): RegExp {
  return new RegExp(`^${patternSource(path) || '/'}$`)
}

function compileRewrite(path: string, upstreamPath: string | undefined): Pick<Route, 'rewrite' | 'pathMapping'> {
  if (upstreamPath === undefined) return { rewrite: undefined, pathMapping: undefined }
  // The prefix may hold wildcards: replace what the request matched, not the pattern's length.
  const prefix = new RegExp(`^${patternSource(path.endsWith('/**') ? path.slice(0, -3) : path)}`)
  const target = upstreamPath.endsWith('/') ? upstreamPath.slice(0, -1) : upstreamPath
  return {
    rewrite: (requestPath) => target + requestPath.slice(prefix.exec(requestPath)![0].length) || '/',
    pathMapping: (requestPath) => ({ public: prefix.exec(requestPath)![0], upstream: target }),
  }
}

function compileRoute(policy: RoutePolicy, allIssuers: readonly string[]): CompiledRoute {
  const binding = policy.binding
  return {
    pattern: compilePattern(policy.path),
    route: Object.freeze({
      name: policy.name,
      methods: new Set(policy.methods),
      upstream: policy.upstream,
      ...compileRewrite(policy.path, policy.upstreamPath),
      issuerNames: policy.issuers ?? allIssuers,
      audience: policy.audience,
      scopes: policy.scopes,
      binding,
      clientCertificate: policy.clientCertificate ?? (binding === 'mtls' ? 'required' : 'optional'),
      acceptsDpop: binding !== 'mtls',
      acceptsBearer: binding !== 'dpop',
      revocation: policy.revocation,
    }),
  }
}

// Dot segments, encoded slashes or dots, backslashes, empty segments and control
// characters are refused: an upstream may normalise them into another route.
const AMBIGUOUS_PATH = /(^|\/)\.{1,2}(;[^/]*)?(\/|$)|%2[ef]|%5c|\\|\/\/|[\x00-\x20\x7f]|%00/i

export function createRouteTable(policies: readonly RoutePolicy[], allIssuers: readonly string[]): RouteTable {
  const compiled = policies.map((policy) => compileRoute(policy, allIssuers))
  return {
    routes: compiled.map((c) => c.route),
    match(method, target) {
      if (!target.startsWith('/')) refuse('GW_REQUEST_MALFORMED', 'request target is not origin-form')
      const queryAt = target.indexOf('?')
      const path = queryAt === -1 ? target : target.slice(0, queryAt)
      if (AMBIGUOUS_PATH.test(path)) refuse('GW_REQUEST_MALFORMED', 'ambiguous path')
      let pathMatched = false
      for (const { pattern, route } of compiled) {
        if (!pattern.test(path)) continue
        if (route.methods.has(method)) return { route, path }
        pathMatched = true
      }
      // The path is never in the detail: it goes into security events, which promise no path (it
      // carries account and payment identifiers, and an attacker chooses it).
      return pathMatched
        ? refuse('GW_METHOD_NOT_ALLOWED', `method ${method} is not allowed on the path`)
        : refuse('GW_ROUTE_UNKNOWN', `no route matches the path (method ${method})`)
    },
  }
}
