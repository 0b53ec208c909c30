import { test } from 'node:test'
import assert from 'node:assert/strict'
import { isAccessTokenName, multipartHasAccessToken, urlencodedHasAccessToken } from '../../../src/checks/token-fields.ts'

function part(disposition: string, value = 'v', boundary = 'B'): string {
  return `--${boundary}\r\nContent-Disposition: ${disposition}\r\n\r\n${value}\r\n`
}

test('isAccessTokenName: access_token as frameworks read names, and nothing else', () => {
  for (const name of ['access_token', 'ACCESS_TOKEN', ' access_token\t', 'access.token', 'access token', 'access_token[]', 'access_token[0]', 'access[token']) {
    assert.equal(isAccessTokenName(name), true, name)
  }
  for (const name of ['access_tokens', 'access_token_hint', 'accesstoken', 'x_access_token', 'token', '', 'access-token', '[access_token]']) {
    assert.equal(isAccessTokenName(name), false, name)
  }
})

test('urlencodedHasAccessToken: & and ; separators, percent and plus decoding', () => {
  for (const text of [
    'access_token=a',
    'x=1&access_token=a',
    'x=1;access_token=a',
    'access%5Ftoken=a',
    'access%5ftoken',
    'access+token=a',
    'a=1&&access_token&b=2',
  ]) {
    assert.equal(urlencodedHasAccessToken(text), true, text)
  }
  for (const text of ['', 'amount=10&currency=EUR', 'x=access_token', 'access_tokens=1', 'note=access_token%3Dabc', 'access_token_hint=1']) {
    assert.equal(urlencodedHasAccessToken(text), false, text)
  }
})

test('multipartHasAccessToken finds the field however the Content-Disposition spells its name', () => {
  const dispositions = [
    'form-data; name="access_token"',
    'form-data; name=access_token',
    'form-data;name="access_token";filename="a.txt"',
    'form-data; filename="x"; name="access_token"',
    'FORM-DATA; NAME="ACCESS_TOKEN"',
    'form-data; name = "access_token"',
    'form-data; name="access\\_token"',
    'form-data; name="access%5Ftoken"',
    "form-data; name*=UTF-8''access%5Ftoken",
    "form-data; name*=utf-8'en'access_token",
    'form-data; name*0="access"; name*1="_token"',
    "form-data; name*0*=UTF-8''access%5F; name*1=token",
    'form-data; name="access.token"',
    'form-data; name="access_token[]"',
    'form-data; foo; name="access_token"',
    'form-data; x="a;b"; name="access_token"',
  ]
  for (const disposition of dispositions) {
    assert.equal(multipartHasAccessToken(part('form-data; name="a"') + part(disposition) + '--B--\r\n'), true, disposition)
  }
})

test('multipartHasAccessToken does not depend on the boundary, line endings or header case, and reads folded headers', () => {
  assert.equal(multipartHasAccessToken('--other\r\nContent-Disposition: form-data; name="access_token"\r\n\r\nv\r\n--other--'), true)
  assert.equal(multipartHasAccessToken('--B\nCONTENT-DISPOSITION:form-data; name="access_token"\n\nv\n--B--'), true)
  assert.equal(multipartHasAccessToken('preamble\r\n  content-disposition : form-data; name="access_token"\r\n\r\n'), true)
  assert.equal(multipartHasAccessToken('--B\r\nContent-Disposition: form-data;\r\n\tname="access_token"\r\n\r\nv\r\n--B--'), true)
})

test('multipartHasAccessToken passes ordinary forms, file content and values that mention access_token', () => {
  const body =
    part('form-data; name="amount"', '10') +
    part('form-data; name="upload"; filename="access_token.html"', '<form><input name="access_token"></form>\r\nname="access_token"') +
    part('form-data; name="note"', 'Content-Type: text/plain; name="access_token"') +
    part('form-data; name="access_token_hint"') +
    '--B--\r\n'
  assert.equal(multipartHasAccessToken(body), false)
  assert.equal(multipartHasAccessToken(''), false)
})
