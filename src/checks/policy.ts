// Route authorization after authentication: the scopes the route requires (RFC 6750 §3.1).
import { refuse } from '../errors.ts'
import type { Route } from '../routes/route-table.ts'
import type { AccessToken } from '../types.ts'

export function checkPolicy(route: Route, token: AccessToken): void {
  const missing = route.scopes.filter((scope) => !token.scopes.has(scope))
  if (missing.length > 0) refuse('GW_SCOPE_INSUFFICIENT', `missing scope ${missing.join(' ')}`)
}
