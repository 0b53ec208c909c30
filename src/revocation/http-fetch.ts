// Bounded HTTP exchanges with OCSP responders and CRL distribution points: a timeout over
// the whole exchange, a size limit, and status 200 only. Every failure is "unavailable".
import { Agent, request } from 'undici'
import { RevocationUnavailable } from './types.ts'

export interface FetchOptions {
  readonly method: 'GET' | 'POST'
  readonly body?: Buffer
  readonly contentType?: string
  readonly accept: string
  readonly timeoutMs: number
  readonly maxBytes: number
}

export interface RevocationHttp {
  fetch(url: string, options: FetchOptions): Promise<Buffer>
  close(): Promise<void>
}

export function createRevocationHttp(options: { connections?: number } = {}): RevocationHttp {
  const agent = new Agent({ connections: options.connections ?? 16, keepAliveTimeout: 10_000 })
  return {
    async fetch(url, fetchOptions) {
      const { timeoutMs, maxBytes } = fetchOptions
      const signal = AbortSignal.timeout(timeoutMs)
      try {
        const response = await request(url, {
          method: fetchOptions.method,
          body: fetchOptions.body,
          headers: { accept: fetchOptions.accept, ...(fetchOptions.contentType && { 'content-type': fetchOptions.contentType }) },
          dispatcher: agent,
          signal,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        })
        if (response.statusCode !== 200) {
          await response.body.dump().catch(() => undefined)
          throw new RevocationUnavailable(`HTTP ${response.statusCode} from ${url}`)
        }
        const declared = Number(response.headers['content-length'])
        if (Number.isFinite(declared) && declared > maxBytes) {
          response.body.destroy()
          throw new RevocationUnavailable(`answer from ${url} larger than ${maxBytes} bytes`)
        }
        const chunks: Buffer[] = []
        let size = 0
        for await (const chunk of response.body) {
          size += (chunk as Buffer).length
          if (size > maxBytes) {
            response.body.destroy()
            throw new RevocationUnavailable(`answer from ${url} larger than ${maxBytes} bytes`)
          }
          chunks.push(chunk as Buffer)
        }
        return Buffer.concat(chunks)
      } catch (error) {
        if (error instanceof RevocationUnavailable) throw error
        if (signal.aborted) throw new RevocationUnavailable(`no answer from ${url} within ${timeoutMs} ms`, { cause: error })
        throw new RevocationUnavailable(`${url}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error })
      }
    },
    close: () => agent.close(),
  }
}
