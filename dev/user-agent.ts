// A scripted browser for the authorization-code flow: follows every redirect across the gateway and the
// legacy server (recording each status, so a test can see a 303 where a 307 must never be), keeps its
// cookies per host, and fills in oidc-provider's development login and consent pages. It stops at the
// first redirect to the partner's redirect URI, which it never requests.
import { Agent, request } from 'undici'

export interface BrowseStep {
  readonly url: string
  readonly status: number
}

export interface BrowseResult {
  /** Where the flow ended: the partner's redirect URI with its query, or the last page when it ended on one. */
  readonly url: URL
  /** Every request made, with its answer's status. */
  readonly steps: readonly BrowseStep[]
  /** The body of the last page, when the flow ended on a page (an error page). */
  readonly page: { readonly status: number; readonly text: string; readonly headers: Record<string, string | string[] | undefined> } | undefined
}

export interface UserAgent {
  /**
   * From startUrl to the first URL starting with stopAt, logging in as `login` (default alice) and consenting; with
   * `cancel`, following the login page's Cancel link instead (oidc-provider then answers access_denied).
   */
  browse(startUrl: string, options: { readonly stopAt: string; readonly login?: string; readonly cancel?: boolean }): Promise<BrowseResult>
  close(): Promise<void>
}

export function createUserAgent(options: { readonly caPem: string }): UserAgent {
  const agent = new Agent({ connect: { ca: options.caPem } })
  const jars = new Map<string, Map<string, string>>()
  const jarOf = (url: URL) => jars.get(url.host) ?? jars.set(url.host, new Map()).get(url.host)!
  const keepCookies = (url: URL, setCookie: string | string[] | undefined) => {
    const cookies = jarOf(url)
    for (const line of [setCookie ?? []].flat()) {
      const [pair = ''] = line.split(';')
      const at = pair.indexOf('=')
      const name = pair.slice(0, at).trim()
      const value = pair.slice(at + 1).trim()
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) cookies.delete(name)
      else cookies.set(name, value)
    }
  }
  const send = async (target: URL, form?: Record<string, string>) => {
    const response = await request(target, {
      dispatcher: agent,
      method: form ? 'POST' : 'GET',
      headers: {
        cookie: [...jarOf(target)].map(([name, value]) => `${name}=${value}`).join('; '),
        ...(form && { 'content-type': 'application/x-www-form-urlencoded' }),
      },
      body: form && new URLSearchParams(form).toString(),
    })
    keepCookies(target, response.headers['set-cookie'])
    const text = await response.body.text()
    return { status: response.statusCode, location: response.headers.location as string | undefined, text, headers: response.headers }
  }
  return {
    async browse(startUrl, { stopAt, login = 'alice', cancel = false }) {
      const steps: BrowseStep[] = []
      let target = new URL(startUrl)
      for (let step = 0; step < 20; step++) {
        if (target.href.startsWith(stopAt)) return { url: target, steps, page: undefined }
        const page = await send(target)
        steps.push({ url: target.href, status: page.status })
        if (page.location) {
          target = new URL(page.location, target)
          continue
        }
        const prompt = /name="prompt" value="(login|consent)"/.exec(page.text)?.[1]
        const action = /<form[^>]* action="([^"]+)"/.exec(page.text)?.[1]
        if (page.status !== 200 || !prompt || !action) return { url: target, steps, page: { status: page.status, text: page.text, headers: page.headers } }
        const cancelLink = /<a href="([^"]+)">\[ Cancel \]<\/a>/.exec(page.text)?.[1]
        if (cancel && cancelLink) {
          target = new URL(cancelLink.replace(/&amp;/g, '&'), target)
          continue
        }
        const formUrl = new URL(action, target)
        const submitted = await send(formUrl, prompt === 'login' ? { prompt, login, password: 'any' } : { prompt })
        steps.push({ url: formUrl.href, status: submitted.status })
        if (!submitted.location) throw new Error(`the ${prompt} form was not accepted (status ${submitted.status})`)
        target = new URL(submitted.location, formUrl)
      }
      throw new Error('too many redirects')
    },
    close: () => agent.close(),
  }
}
