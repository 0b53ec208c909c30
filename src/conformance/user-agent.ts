// The runner's scripted browser for the authorization-code front channel: follows every redirect
// (recording each request and its status, so a 307 is seen), keeps cookies per host, and fills in
// the deployment's login and consent forms from a description (which page, which form, which
// fields). It stops at the first redirect to the partner's redirect URI, which it never requests.
import type { Clock } from '../types.ts'
import { headerValues, sendHttp, type HttpOutcome, type HttpRequest } from './http.ts'

/** One form the browser fills in: the first description whose patterns match is used. */
export interface LoginFormDescription {
  /** A regular expression the page URL must match; any page when undefined. */
  readonly page: string | undefined
  /** A regular expression the form's HTML must match (e.g. a hidden input); any form when undefined. */
  readonly form: string | undefined
  /** Fields sent with the form's own hidden inputs, e.g. { username: alice, password: … }. */
  readonly fields: Readonly<Record<string, string>>
}

export interface BrowserSettings {
  readonly caPem: string | undefined
  readonly timeoutMs: number
  readonly now: Clock
  readonly forms: readonly LoginFormDescription[]
}

export interface BrowseStep {
  readonly request: HttpRequest
  readonly outcome: HttpOutcome
  readonly label: string
}

export type BrowseEnd =
  /** The redirect to the partner's redirect URI (never requested). */
  | { readonly kind: 'redirect'; readonly url: URL; readonly status: number; readonly from: string }
  /** A page that is neither a redirect nor a known form (an error page, or an unknown login page). */
  | { readonly kind: 'page'; readonly url: string; readonly status: number; readonly body: string; readonly rawHeaders: readonly string[] }
  /** No HTTP answer. */
  | { readonly kind: 'failure'; readonly url: string; readonly reason: string }

export interface BrowseResult {
  readonly end: BrowseEnd
  readonly steps: readonly BrowseStep[]
}

export interface Browser {
  /** With `fillForms: false`, the browser stops at the first form (a customer who opens the login page and leaves). */
  browse(
    startUrl: string,
    options: { readonly stopAt: string; readonly headers?: readonly (readonly [string, string])[]; readonly fillForms?: false },
  ): Promise<BrowseResult>
}

const MAX_STEPS = 20

interface ParsedForm {
  readonly html: string
  readonly action: string | undefined
  readonly method: string
  readonly inputs: Record<string, string>
}

function attribute(tag: string, name: string): string | undefined {
  const match = new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i').exec(tag)
  const value = match?.[1] ?? match?.[2] ?? match?.[3]
  return value === undefined
    ? undefined
    : value
        .replace(/&amp;/g, '&')
        .replace(/&quot;/g, '"')
        .replace(/&#39;/g, "'")
}

export function parseForms(html: string): ParsedForm[] {
  const forms: ParsedForm[] = []
  for (const match of html.matchAll(/<form\b[^>]*>[\s\S]*?<\/form>/gi)) {
    const formHtml = match[0]
    const openTag = /<form\b[^>]*>/i.exec(formHtml)![0]
    const inputs: Record<string, string> = {}
    for (const input of formHtml.matchAll(/<input\b[^>]*>/gi)) {
      const name = attribute(input[0], 'name')
      if (name !== undefined) inputs[name] = attribute(input[0], 'value') ?? ''
    }
    forms.push({ html: formHtml, action: attribute(openTag, 'action'), method: (attribute(openTag, 'method') ?? 'GET').toUpperCase(), inputs })
  }
  return forms
}

export function createBrowser(settings: BrowserSettings): Browser {
  const jars = new Map<string, Map<string, string>>()
  const jarOf = (url: URL) => jars.get(url.host) ?? jars.set(url.host, new Map()).get(url.host)!
  const keepCookies = (url: URL, rawHeaders: readonly string[]) => {
    const cookies = jarOf(url)
    for (const line of headerValues(rawHeaders, 'set-cookie')) {
      const [pair = ''] = line.split(';')
      const at = pair.indexOf('=')
      const name = pair.slice(0, at).trim()
      const value = pair.slice(at + 1).trim()
      if (value === '' || /max-age=0|expires=Thu, 01 Jan 1970/i.test(line)) cookies.delete(name)
      else cookies.set(name, value)
    }
  }
  return {
    async browse(startUrl, { stopAt, headers = [], fillForms }) {
      const steps: BrowseStep[] = []
      let target = new URL(startUrl)
      let form: Record<string, string> | undefined
      let from = startUrl
      let lastStatus = 0
      for (let step = 0; step < MAX_STEPS; step++) {
        if (target.href.startsWith(stopAt)) return { end: { kind: 'redirect', url: target, status: lastStatus, from }, steps }
        const cookie = [...jarOf(target)].map(([name, value]) => `${name}=${value}`).join('; ')
        const request: HttpRequest = {
          method: form ? 'POST' : 'GET',
          url: target.href,
          headers: [
            ['Accept', 'text/html'],
            ...(step === 0 ? headers : []),
            ...(cookie === '' ? [] : [['Cookie', cookie] as [string, string]]),
            ...(form ? [['Content-Type', 'application/x-www-form-urlencoded'] as [string, string]] : []),
          ],
          ...(form && { body: new URLSearchParams(form).toString() }),
        }
        const outcome = await sendHttp(request, { caPem: settings.caPem, servername: undefined, timeoutMs: settings.timeoutMs, now: settings.now })
        steps.push({ request, outcome, label: form ? 'browser: form submitted' : 'browser' })
        form = undefined
        if (outcome.kind === 'failure') return { end: { kind: 'failure', url: target.href, reason: outcome.message }, steps }
        keepCookies(target, outcome.rawHeaders)
        lastStatus = outcome.status
        from = target.href
        const location = headerValues(outcome.rawHeaders, 'location')[0]
        if (outcome.status >= 300 && outcome.status < 400 && location !== undefined) {
          target = new URL(location, target)
          continue
        }
        const page = { kind: 'page' as const, url: target.href, status: outcome.status, body: outcome.body, rawHeaders: outcome.rawHeaders }
        if (outcome.status !== 200 || fillForms === false) return { end: page, steps }
        const chosen = parseForms(outcome.body)
          .map((parsed) => ({ parsed, description: settings.forms.find((d) => matches(d, target.href, parsed.html)) }))
          .find((candidate) => candidate.description !== undefined)
        if (!chosen) return { end: page, steps }
        const action = new URL(chosen.parsed.action ?? target.href, target)
        const values = { ...chosen.parsed.inputs, ...chosen.description!.fields }
        if (chosen.parsed.method === 'POST') {
          form = values
          target = action
        } else {
          for (const [name, value] of Object.entries(values)) action.searchParams.set(name, value)
          target = action
        }
      }
      return { end: { kind: 'failure', url: target.href, reason: `more than ${MAX_STEPS} steps` }, steps }
    },
  }
}

function matches(description: LoginFormDescription, url: string, formHtml: string): boolean {
  return (
    (description.page === undefined || new RegExp(description.page).test(url)) &&
    (description.form === undefined || new RegExp(description.form).test(formHtml))
  )
}
