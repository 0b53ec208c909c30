// Worker thread body: parses and verifies one CRL off the event loop (see parseCrl).
import { parentPort, workerData } from 'node:worker_threads'
import { readCertificateFacts } from './certificate-facts.ts'
import { parseVerifiedCrl } from './crl.ts'
import { unavailableDetail } from './types.ts'

const { der, issuerDer } = workerData as { der: Uint8Array; issuerDer: Uint8Array }
try {
  parentPort!.postMessage({ ok: true, crl: parseVerifiedCrl(der, readCertificateFacts(issuerDer)) })
} catch (error) {
  parentPort!.postMessage({ ok: false, detail: unavailableDetail(error) })
}
