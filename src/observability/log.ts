// Structured logs with pino; credentials are redacted even if a caller passes them by mistake.
import { pino, type Logger as PinoLogger } from 'pino'

export const REDACTED_PATHS = [
  'authorization',
  'dpop',
  'token',
  'proof',
  'access_token',
  'privateKey',
  'secret',
  '*.authorization',
  '*.dpop',
  '*.token',
  '*.proof',
  '*.access_token',
  '*.privateKey',
  '*.secret',
  'headers.authorization',
  'headers.dpop',
  'req.headers.authorization',
  'req.headers.dpop',
]

export function createLogger(level: string, destination?: NodeJS.WritableStream): PinoLogger {
  const options = {
    level,
    base: { service: 'fapi-gateway' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  }
  return destination ? pino(options, destination as never) : pino(options)
}
