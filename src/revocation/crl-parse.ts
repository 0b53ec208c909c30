// Parsing a CRL with 100,000 entries takes seconds of CPU; doing it on a worker thread keeps
// requests flowing meanwhile. Small lists are parsed in place.
import { Worker } from 'node:worker_threads'
import type { CertificateFacts } from './certificate-facts.ts'
import { parseVerifiedCrl, type VerifiedCrl } from './crl.ts'
import { RevocationUnavailable } from './types.ts'

const WORKER_THRESHOLD_BYTES = 256 * 1024
const WORKER_LIMIT_MS = 120_000

type WorkerAnswer = { ok: true; crl: VerifiedCrl } | { ok: false; detail: string }

export function parseCrl(der: Buffer, issuer: CertificateFacts, options: { workerThresholdBytes?: number } = {}): Promise<VerifiedCrl> {
  if (der.length < (options.workerThresholdBytes ?? WORKER_THRESHOLD_BYTES)) {
    try {
      return Promise.resolve(parseVerifiedCrl(der, issuer))
    } catch (error) {
      return Promise.reject(error)
    }
  }
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./crl-parse-worker.ts', import.meta.url), { workerData: { der, issuerDer: issuer.der } })
    const limit = setTimeout(() => {
      void worker.terminate()
      reject(new RevocationUnavailable(`CRL parsing took longer than ${WORKER_LIMIT_MS} ms`))
    }, WORKER_LIMIT_MS)
    limit.unref()
    worker.once('message', (answer: WorkerAnswer) => {
      clearTimeout(limit)
      void worker.terminate()
      if (answer.ok) resolve(answer.crl)
      else reject(new RevocationUnavailable(answer.detail))
    })
    worker.once('error', (error) => {
      clearTimeout(limit)
      reject(new RevocationUnavailable('CRL parser failed', { cause: error }))
    })
    worker.once('exit', (code) => {
      clearTimeout(limit)
      reject(new RevocationUnavailable(`CRL parser exited with ${code}`))
    })
  })
}
