import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { HttpOutcome } from '../../../src/conformance/http.ts'
import { judgeCertificateRefusal, judgeRefusal, judgeSuccess, judgeTlsRefusal, type RefusalExpectation } from '../../../src/conformance/judge.ts'

function answer(status: number, ...rawHeaders: string[]): HttpOutcome {
  return { kind: 'answer', status, rawHeaders, body: '', receivedAtMs: 0 }
}
const failure = (code: string, alert?: number, reset = false): HttpOutcome => ({ kind: 'failure', code, alert, reset, message: 'x' })
const PROOF: RefusalExpectation = { statuses: [400, 401], scheme: 'DPoP', errors: ['invalid_dpop_proof'] }

describe('judging a positive', () => {
  it('passes 200 and 201 only', () => {
    assert.equal(judgeSuccess(answer(200)).verdict, 'pass')
    assert.equal(judgeSuccess(answer(201)).verdict, 'pass')
    const noContent = judgeSuccess(answer(204))
    assert.equal(noContent.verdict, 'fail')
    assert.match(noContent.reason, /204/)
    assert.equal(judgeSuccess(answer(401, 'WWW-Authenticate', 'DPoP error="invalid_dpop_proof"')).verdict, 'fail')
    assert.equal(judgeSuccess(failure('ECONNREFUSED')).verdict, 'fail')
  })
})

describe('judging a negative', () => {
  it('passes a 401 with the DPoP challenge and the RFC error', () => {
    assert.equal(judgeRefusal(answer(401, 'WWW-Authenticate', 'DPoP error="invalid_dpop_proof", algs="ES256"'), PROOF).verdict, 'pass')
  })

  it('fails an acceptance, a wrong status, a 401 without a challenge, and no answer', () => {
    assert.equal(judgeRefusal(answer(200), PROOF).verdict, 'fail')
    assert.equal(judgeRefusal(answer(403, 'WWW-Authenticate', 'DPoP error="invalid_dpop_proof"'), PROOF).verdict, 'fail')
    assert.equal(judgeRefusal(answer(500), PROOF).verdict, 'fail')
    assert.match(judgeRefusal(answer(401), PROOF).reason, /without WWW-Authenticate/)
    assert.equal(judgeRefusal(failure('ECONNRESET', undefined, true), PROOF).verdict, 'fail')
  })

  it('warns, as the suite would pass it, when the challenge or error code differs from the RFC', () => {
    assert.equal(judgeRefusal(answer(401, 'WWW-Authenticate', 'Bearer error="invalid_token"'), PROOF).verdict, 'warn')
    assert.equal(judgeRefusal(answer(401, 'WWW-Authenticate', 'DPoP error="invalid_token"'), PROOF).verdict, 'warn')
    assert.equal(judgeRefusal(answer(400), PROOF).verdict, 'warn')
  })

  it('accepts the error on either scheme when asked to, and only the status when no error is given', () => {
    const downgrade: RefusalExpectation = { statuses: [400, 401], scheme: 'any', errors: ['invalid_token'] }
    assert.equal(judgeRefusal(answer(401, 'WWW-Authenticate', 'DPoP algs="ES256", Bearer error="invalid_token"'), downgrade).verdict, 'pass')
    const query: RefusalExpectation = { statuses: [400, 401, 414], scheme: 'any', errors: undefined }
    assert.equal(judgeRefusal(answer(414), query).verdict, 'pass')
    assert.equal(judgeRefusal(answer(404), { statuses: 'any-4xx', scheme: 'Bearer', errors: undefined }).verdict, 'pass')
  })
})

describe('judging a certificate refusal', () => {
  it('passes any TLS alert, a reset or a 4xx, and fails anything else', () => {
    assert.equal(judgeCertificateRefusal(failure('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 116)).verdict, 'pass')
    assert.equal(judgeCertificateRefusal(failure('ECONNRESET', undefined, true)).verdict, 'pass')
    assert.equal(judgeCertificateRefusal(answer(401)).verdict, 'pass')
    assert.equal(judgeCertificateRefusal(answer(200)).verdict, 'fail')
    assert.equal(judgeCertificateRefusal(answer(503)).verdict, 'fail')
    assert.equal(judgeCertificateRefusal(failure('ETIMEDOUT')).verdict, 'fail')
  })
})

describe('judging a TLS version or suite refusal (R47)', () => {
  it('passes alerts 40 and 70 and a reset; fails a completed handshake and any other alert; skips what the client cannot offer', () => {
    assert.equal(judgeTlsRefusal({ kind: 'failure', code: 'x', alert: 70, reset: false, message: '' }).verdict, 'pass')
    assert.equal(judgeTlsRefusal({ kind: 'failure', code: 'x', alert: 40, reset: false, message: '' }).verdict, 'pass')
    assert.equal(judgeTlsRefusal({ kind: 'failure', code: 'ECONNRESET', alert: undefined, reset: true, message: '' }).verdict, 'pass')
    assert.equal(judgeTlsRefusal({ kind: 'failure', code: 'x', alert: 80, reset: false, message: '' }).verdict, 'fail')
    assert.equal(judgeTlsRefusal({ kind: 'connected', protocol: 'TLSv1.1', cipher: 'ECDHE-ECDSA-AES128-SHA' }).verdict, 'fail')
    assert.equal(judgeTlsRefusal({ kind: 'unavailable', message: 'no ciphers' }).verdict, 'skip')
  })
})
