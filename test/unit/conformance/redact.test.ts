import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createRedactor, truncate } from '../../../src/conformance/redact.ts'

const JWT = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjdXN0b21lci0xIn0.c2lnbmF0dXJlLWJ5dGVzLWhlcmUtYW5kLW1vcmU'

describe('redaction', () => {
  it('truncates to the first 12 characters', () => {
    assert.equal(truncate('abcdefghijklmnop'), 'abcdefghijkl…')
    assert.equal(truncate('short'), 'short')
  })

  it('shows credential headers truncated and others in full', () => {
    const redactor = createRedactor()
    assert.equal(redactor.header('Authorization', `DPoP ${JWT}`), 'DPoP eyJhbGc…')
    assert.equal(redactor.header('dpop', JWT), 'eyJhbGciOiJF…')
    assert.equal(redactor.header('Accept', 'application/json'), 'application/json')
  })

  it('cuts registered secrets, JWS-shaped strings and private keys out of free text', () => {
    // A PEM-shaped stub, assembled at run time so that no key-like block sits in the source.
    const PEM_KEY = ['-----BEGIN', 'PRIVATE KEY-----\nMIGH\n-----END', 'PRIVATE KEY-----'].join(' ')
    const redactor = createRedactor()
    redactor.add('opaque-secret-token-value')
    const text = redactor.text(`token opaque-secret-token-value, jwt ${JWT}, key ${PEM_KEY}`)
    assert.ok(!text.includes('opaque-secret-token-value'))
    assert.ok(!text.includes(JWT))
    assert.ok(!text.includes('PRIVATE KEY'))
    assert.match(text, /opaque-secre…/)
  })

  it('truncates secret query parameters in URLs', () => {
    const redactor = createRedactor()
    const shown = redactor.url(`https://api.example/accounts?page=2&access_token=${JWT}#frag`)
    assert.equal(shown, 'https://api.example/accounts?page=2&access_token=eyJhbGciOiJF…#frag')
  })
})
