// examples/legacy-authorization-server/README.md, steps 4, 5 and 6, run as written against the façade in front of a
// real legacy server (dev/facade-environment.ts): its token request (jose: a private_key_jwt assertion and a DPoP
// proof) gets a DPoP-bound token, and the `request` command with the same DPoP key file reaches the upstream; its
// authorization-code flow (PAR, the browser through the legacy login pages, the code exchange) gets one too.
// Only the names of this environment are put in (its issuer, partner, key and scope), each checked to be there,
// so that a README that changes its snippet fails here rather than goes stale.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Agent, getGlobalDispatcher, setGlobalDispatcher, type Dispatcher } from 'undici'
import { exportJWK, generateKeyPair } from 'jose'
import { startFacadeEnvironment, type FacadeEnvironment } from '../../dev/facade-environment.ts'
import { REPO_ROOT } from '../../dev/environment.ts'
import { createLogger } from '../../src/observability/log.ts'
import { runCli } from '../support/cli.ts'
import { createUserAgent, type UserAgent } from '../../dev/user-agent.ts'

const README = join(REPO_ROOT, 'examples', 'legacy-authorization-server', 'README.md')

function readmeSection(heading: string): string {
  const readme = readFileSync(README, 'utf8')
  const start = readme.indexOf(heading)
  assert.ok(start >= 0, `the README has "${heading}"`)
  const end = readme.indexOf('\n## ', start + 1)
  return readme.slice(start, end === -1 ? undefined : end)
}

function replaceOnce(code: string, from: string, to: string): string {
  assert.ok(code.includes(from), `the README's snippet has ${from}`)
  return code.replace(from, to)
}

describe("the legacy-authorization-server example's README: a token request with DPoP, a resource request, the code flow", () => {
  let env: FacadeEnvironment
  let folder: string
  let previousDispatcher: Dispatcher
  let browser: UserAgent

  before(async () => {
    env = await startFacadeEnvironment({ logger: createLogger('silent'), frontChannel: true })
    browser = createUserAgent({ caPem: env.pki.root.certPem })
    folder = mkdtempSync(join(tmpdir(), 'fapi-gateway-legacy-readme-'))
    // The snippet imports jose as a partner's project would.
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(folder, 'node_modules'))
    writeFileSync(join(folder, 'ca.pem'), env.pki.root.certPem)
    previousDispatcher = getGlobalDispatcher()
    setGlobalDispatcher(new Agent({ connect: { ca: env.pki.root.certPem } }))
  })

  after(async () => {
    setGlobalDispatcher(previousDispatcher)
    await browser?.close()
    await env?.close()
    rmSync(folder, { recursive: true, force: true })
  })

  it('the snippet gets a DPoP-bound token, and `request` with the same key file gets the API', async () => {
    const dpopKey = await generateKeyPair('ES256', { extractable: true })
    const keyFile = join(folder, 'my-key.jwk')
    writeFileSync(keyFile, JSON.stringify({ ...(await exportJWK(dpopKey.privateKey)), alg: 'ES256' }), { mode: 0o600 })
    // partner-a's signing key is not extractable; the snippet's key import is replaced by it.
    ;(globalThis as Record<string, unknown>).readmePartnerKey = env.partnerA.privateKey

    const tokenStep = readmeSection('## 4. ')
    let code = /```js\n([\s\S]+?)```/.exec(tokenStep)?.[1]
    assert.ok(code, 'step 4 has a js block')
    code = replaceOnce(code, "const issuer = 'https://api.bank.example'", `const issuer = ${JSON.stringify(env.issuer)}`)
    code = replaceOnce(code, 'const tokenEndpoint = `${issuer}/oauth2/token`', `const tokenEndpoint = ${JSON.stringify(env.tokenEndpoint)}`)
    code = replaceOnce(
      code,
      "JSON.parse(readFileSync('fintech-one-signing.jwk', 'utf8'))",
      `({ alg: 'ES256', kid: ${JSON.stringify(env.partnerA.publicJwk.kid)} })`,
    )
    code = replaceOnce(code, 'await importJWK(signing, signing.alg)', 'globalThis.readmePartnerKey')
    code = replaceOnce(code, "readFileSync('my-key.jwk'", `readFileSync(${JSON.stringify(keyFile)}`)
    code = replaceOnce(code, "scope: 'accounts'", "scope: 'accounts:read'")
    code = code.replaceAll("'fintech-one'", JSON.stringify(env.partnerA.clientId))
    code = replaceOnce(
      code,
      'console.log(answer.status, await answer.json())',
      'globalThis.readmeAnswer = { status: answer.status, body: await answer.json() }',
    )
    const snippet = join(folder, 'token-request.mjs')
    writeFileSync(snippet, code)
    await import(pathToFileURL(snippet).href)

    const answer = (globalThis as Record<string, unknown>).readmeAnswer as { status: number; body: Record<string, unknown> }
    assert.equal(answer.status, 200, JSON.stringify(answer.body))
    assert.equal(answer.body.token_type, 'DPoP')
    assert.equal(answer.body.scope, 'accounts:read')
    assert.deepEqual(Object.keys(answer.body).sort(), ['access_token', 'expires_in', 'scope', 'token_type'])
    // The gateway asked the legacy server with partner-a's legacy client, never with the assertion.
    const legacyCall = env.legacy.requests.find((r) => r.path.endsWith('/token'))
    assert.equal(legacyCall?.clientId, env.legacyClients['partner-a']!.clientId)

    const resourceStep = readmeSection('## 5. ')
    const command = /```sh\n(node src\/main\.ts request GET \S+ --token "\$ACCESS_TOKEN" --dpop-key my-key\.jwk)\n```/.exec(resourceStep)?.[1]
    assert.ok(command, 'step 5 sends the request with the request command and the same DPoP key file')
    const result = await runCli([
      'request',
      'GET',
      `${env.issuer}/accounts/42`,
      '--token',
      answer.body.access_token as string,
      '--dpop-key',
      keyFile,
      '--ca',
      join(folder, 'ca.pem'),
    ])
    assert.equal(result.code, 0, result.stdout + result.stderr)
    assert.match(result.stdout, /^HTTP 200 /)
    assert.match(result.stdout, /"clientId":"partner-a"/)

    // Another key: the recorded binding refuses it.
    const otherKey = join(folder, 'other-key.jwk')
    const other = await generateKeyPair('ES256', { extractable: true })
    writeFileSync(otherKey, JSON.stringify({ ...(await exportJWK(other.privateKey)), alg: 'ES256' }), { mode: 0o600 })
    const stolen = await runCli([
      'request',
      'GET',
      `${env.issuer}/accounts/42`,
      '--token',
      answer.body.access_token as string,
      '--dpop-key',
      otherKey,
      '--ca',
      join(folder, 'ca.pem'),
    ])
    assert.equal(stolen.code, 1)
    assert.match(stolen.stdout, /^HTTP 401 /)
  })

  it('step 6: PAR with PKCE and a DPoP proof, the browser through the legacy login, the code exchange', async () => {
    const dpopKey = await generateKeyPair('ES256', { extractable: true })
    const keyFile = join(folder, 'my-code-flow-key.jwk')
    writeFileSync(keyFile, JSON.stringify({ ...(await exportJWK(dpopKey.privateKey)), alg: 'ES256' }), { mode: 0o600 })
    ;(globalThis as Record<string, unknown>).readmePartnerKey = env.partnerA.privateKey
    const redirectUri = 'https://partner-a.example/callback'
    const steps: string[] = []
    // The partner's web application: the browser is sent to the URL and stops at the partner's redirect URI.
    ;(globalThis as Record<string, unknown>).readmeSendTheCustomerTo = async (url: string) => {
      const browsed = await browser.browse(url, { stopAt: redirectUri })
      steps.push(...browsed.steps.map((step) => `${step.status} ${new URL(step.url).origin}${new URL(step.url).pathname}`))
      return browsed.url.href
    }

    const codeStep = readmeSection('## 6. ')
    let code = /```js\n([\s\S]+?)```/.exec(codeStep)?.[1]
    assert.ok(code, 'step 6 has a js block')
    code = replaceOnce(code, "const issuer = 'https://api.bank.example'", `const issuer = ${JSON.stringify(env.issuer)}`)
    code = replaceOnce(code, "const redirectUri = 'https://fintech-one.example/callback'", `const redirectUri = ${JSON.stringify(redirectUri)}`)
    code = replaceOnce(
      code,
      "JSON.parse(readFileSync('fintech-one-signing.jwk', 'utf8'))",
      `({ alg: 'ES256', kid: ${JSON.stringify(env.partnerA.publicJwk.kid)} })`,
    )
    code = replaceOnce(code, 'await importJWK(signing, signing.alg)', 'globalThis.readmePartnerKey')
    code = replaceOnce(code, "readFileSync('my-key.jwk'", `readFileSync(${JSON.stringify(keyFile)}`)
    code = replaceOnce(code, "scope: 'accounts'", "scope: 'accounts:read'")
    code = replaceOnce(code, 'await sendTheCustomerTo(authorizationUrl)', 'await globalThis.readmeSendTheCustomerTo(authorizationUrl)')
    code = code.replaceAll("'fintech-one'", JSON.stringify(env.partnerA.clientId))
    code = replaceOnce(
      code,
      'console.log(answer.status, await answer.json())',
      'globalThis.readmeCodeAnswer = { status: answer.status, body: await answer.json() }',
    )
    const snippet = join(folder, 'code-flow.mjs')
    writeFileSync(snippet, code)
    await import(pathToFileURL(snippet).href)

    const answer = (globalThis as Record<string, unknown>).readmeCodeAnswer as { status: number; body: Record<string, unknown> }
    assert.equal(answer.status, 200, JSON.stringify(answer.body))
    assert.equal(answer.body.token_type, 'DPoP')
    assert.equal(answer.body.scope, 'accounts:read')
    // The browser went through the gateway's authorization endpoint, the legacy login, and the gateway's callback, each gateway step a 303.
    const gatewaySteps = steps.filter((step) => step.includes(env.issuer))
    assert.deepEqual(
      gatewaySteps.map((step) => step.replace(env.issuer, '')),
      ['303 /oauth2/authorize', '303 /oauth2/callback'],
      steps.join('\n'),
    )
    assert.ok(
      steps.some((step) => !step.includes(env.issuer)),
      'the legacy login pages were visited',
    )

    const resource = await runCli([
      'request',
      'GET',
      `${env.issuer}/accounts/42`,
      '--token',
      answer.body.access_token as string,
      '--dpop-key',
      keyFile,
      '--ca',
      join(folder, 'ca.pem'),
    ])
    assert.equal(resource.code, 0, resource.stdout + resource.stderr)
    assert.match(resource.stdout, /^HTTP 200 /)
  })
})
