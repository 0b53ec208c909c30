import { test } from 'node:test'
import assert from 'node:assert/strict'
import { checkFormBody, formKindOf, readBodyHeaders, type BodyHeaders } from '../../../src/checks/form-body.ts'
import type { ErrorCode } from '../../../src/errors.ts'

const FORM = 'application/x-www-form-urlencoded'

function body(contentTypes: string[], contentEncodings: string[] = []): BodyHeaders {
  return { contentTypes, contentEncodings }
}

function refusedWith(code: ErrorCode) {
  return (error: unknown) => {
    assert.equal((error as { code?: unknown }).code, code, String(error))
    return true
  }
}

test('readBodyHeaders keeps every Content-Type and Content-Encoding, in any case', () => {
  const read = readBodyHeaders(['Content-Type', 'text/plain', 'CONTENT-TYPE', FORM, 'content-encoding', 'gzip', 'Host', 'h', 'Content-Encoding', 'br'])
  assert.deepEqual(read, { contentTypes: ['text/plain', FORM], contentEncodings: ['gzip', 'br'] })
  assert.deepEqual(readBodyHeaders(['Host', 'h']), { contentTypes: [], contentEncodings: [] })
})

test('formKindOf recognises urlencoded and multipart forms with parameters and in any case', () => {
  for (const type of [FORM, `${FORM}; charset=UTF-8`, 'Application/X-WWW-Form-Urlencoded', ` ${FORM} ;charset="utf-8"`, `${FORM}; charset=iso-8859-1`]) {
    assert.equal(formKindOf(body([type])), 'urlencoded', type)
  }
  for (const type of ['multipart/form-data; boundary=x', 'Multipart/Form-Data; boundary="a,b;c"', 'multipart/form-data']) {
    assert.equal(formKindOf(body([type])), 'multipart', type)
  }
  for (const type of ['', 'application/json', 'text/plain; charset=utf-16', `${FORM}-x`, `x-${FORM}`, 'multipart/mixed; boundary=x']) {
    assert.equal(formKindOf(body([type])), undefined, type)
  }
  assert.equal(formKindOf(body([])), undefined)
})

test('formKindOf refuses two Content-Type headers or a list of media types, on any request', () => {
  for (const types of [
    ['text/plain', FORM],
    [FORM, 'application/json'],
    ['application/json', 'application/json'],
  ]) {
    assert.throws(() => formKindOf(body(types)), refusedWith('GW_REQUEST_MALFORMED'), types.join(' | '))
  }
  for (const type of [`text/plain, ${FORM}`, `${FORM}, text/plain`, 'application/json,text/plain']) {
    assert.throws(() => formKindOf(body([type])), refusedWith('GW_REQUEST_MALFORMED'), type)
  }
})

test('formKindOf refuses a content-coded form body or one in a charset that is not ASCII-compatible; other bodies may be coded', () => {
  for (const encodings of [['gzip'], ['br'], ['identity, gzip'], ['deflate']]) {
    assert.throws(() => formKindOf(body([FORM], encodings)), refusedWith('GW_BODY_ENCODING_UNSUPPORTED'), encodings.join())
    assert.throws(() => formKindOf(body(['multipart/form-data; boundary=x'], encodings)), refusedWith('GW_BODY_ENCODING_UNSUPPORTED'), encodings.join())
  }
  assert.throws(() => formKindOf(body([FORM], ['identity', 'identity'])), refusedWith('GW_REQUEST_MALFORMED'))
  for (const charset of ['utf-16', 'UTF-16LE', 'utf-32', 'utf-7', 'ibm037', '"utf-16"']) {
    assert.throws(() => formKindOf(body([`${FORM}; charset=${charset}`])), refusedWith('GW_BODY_ENCODING_UNSUPPORTED'), charset)
  }
  assert.equal(formKindOf(body([FORM], ['identity'])), 'urlencoded')
  assert.equal(formKindOf(body([FORM], [''])), 'urlencoded')
  assert.equal(formKindOf(body(['application/json'], ['gzip'])), undefined)
  assert.equal(formKindOf(body(['application/json'], ['gzip', 'br'])), undefined)
})

test('checkFormBody refuses an access_token field with GW_TOKEN_IN_QUERY and passes other forms', () => {
  assert.throws(() => checkFormBody('urlencoded', Buffer.from('amount=1&access_token=abc')), refusedWith('GW_TOKEN_IN_QUERY'))
  assert.throws(
    () => checkFormBody('multipart', Buffer.from('--x\r\nContent-Disposition: form-data; name="access_token"\r\n\r\nabc\r\n--x--\r\n')),
    refusedWith('GW_TOKEN_IN_QUERY'),
  )
  checkFormBody('urlencoded', Buffer.from('amount=10&currency=EUR'))
  checkFormBody('urlencoded', Buffer.alloc(0))
  checkFormBody('multipart', Buffer.from('--x\r\nContent-Disposition: form-data; name="amount"\r\n\r\n10\r\n--x--\r\n'))
  // Bytes that are not UTF-8 are read as they are, never refused for it.
  checkFormBody('urlencoded', Buffer.from([0x61, 0x3d, 0xff, 0xfe, 0x26, 0x62, 0x3d, 0x80]))
})
