// Reading a bounded request body: the resource side's form bodies and the façade's token requests.
import type { IncomingMessage } from 'node:http'
import { GatewayError } from '../errors.ts'

/** The whole body, up to `limit` bytes; past it the rest is left unread. */
export function readFormBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const settle = (outcome: () => void) => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose)
      outcome()
    }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size <= limit) chunks.push(chunk)
      else {
        req.pause()
        settle(() => reject(new GatewayError('GW_BODY_TOO_LARGE', { detail: `form body exceeds ${limit} bytes` })))
      }
    }
    const onEnd = () => settle(() => resolve(Buffer.concat(chunks)))
    const onError = (error: NodeJS.ErrnoException) =>
      settle(() =>
        reject(
          error.code === 'ECONNRESET'
            ? new GatewayError('GW_CLIENT_CLOSED', { detail: 'client closed the connection while sending the form body', cause: error })
            : new GatewayError('GW_REQUEST_MALFORMED', { detail: 'form body could not be read', cause: error }),
        ),
      )
    const onClose = () => settle(() => reject(new GatewayError('GW_CLIENT_CLOSED', { detail: 'client closed the connection while sending the form body' })))
    if (req.destroyed) return onClose()
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose)
  })
}
