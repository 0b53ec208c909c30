import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { normalizeHtu } from '../../../../src/checks/dpop/htu.ts'

const equivalent: ReadonlyArray<readonly [rule: string, uri: string, normal: string]> = [
  ['already normal', 'https://api.example.com/accounts', 'https://api.example.com/accounts'],
  ['scheme lower-cased (RFC 3986 §6.2.2.1)', 'HTTPS://api.example.com/a', 'https://api.example.com/a'],
  ['host lower-cased (§6.2.2.1)', 'https://API.Example.COM/a', 'https://api.example.com/a'],
  ['path case kept', 'https://api.example.com/Accounts/ABC', 'https://api.example.com/Accounts/ABC'],
  ['default https port removed (§6.2.3)', 'https://api.example.com:443/a', 'https://api.example.com/a'],
  ['default http port removed (§6.2.3)', 'http://api.example.com:80/a', 'http://api.example.com/a'],
  ['empty port removed (§6.2.3)', 'https://api.example.com:/a', 'https://api.example.com/a'],
  ['leading zeros in a default port', 'https://api.example.com:0443/a', 'https://api.example.com/a'],
  ['other port kept', 'https://api.example.com:8443/a', 'https://api.example.com:8443/a'],
  ['443 kept for http', 'http://api.example.com:443/a', 'http://api.example.com:443/a'],
  ['empty path becomes / (§6.2.3)', 'https://api.example.com', 'https://api.example.com/'],
  ['empty path with query', 'https://api.example.com?x=1', 'https://api.example.com/'],
  ['query dropped', 'https://api.example.com/a?b=c&d=e', 'https://api.example.com/a'],
  ['fragment dropped', 'https://api.example.com/a#frag', 'https://api.example.com/a'],
  [
    'query and fragment dropped (conformance suite)',
    'https://api.example.com/a?allthedoorsonthisspaceshiphavebeen#programmedtohaveacheeryandsunnydisposition',
    'https://api.example.com/a',
  ],
  ['unusual characters in a dropped query', 'https://api.example.com/a?q=[1]{2}|"x"', 'https://api.example.com/a'],
  ['unreserved percent-encodings decoded (§6.2.2.2)', 'https://api.example.com/%7Euser/%41%62%2D%5f', 'https://api.example.com/~user/Ab-_'],
  ['lower-case percent hex upper-cased (§6.2.2.1)', 'https://api.example.com/a%2fb%c3%a9', 'https://api.example.com/a%2Fb%C3%A9'],
  ['reserved percent-encodings kept', 'https://api.example.com/a%2Fb%3F', 'https://api.example.com/a%2Fb%3F'],
  ['percent-encoded host characters decoded', 'https://api%2Dv2.example.com/a', 'https://api-v2.example.com/a'],
  ['dot-segments removed (§6.2.2.3)', 'https://api.example.com/a/./b/../c', 'https://api.example.com/a/c'],
  ['leading .. removed', 'https://api.example.com/../a', 'https://api.example.com/a'],
  ['trailing .. removed', 'https://api.example.com/a/b/..', 'https://api.example.com/a/'],
  ['percent-encoded dot-segments removed', 'https://api.example.com/a/%2E%2e/b/%2E/c', 'https://api.example.com/b/c'],
  ['sub-delims and : @ kept in the path', "https://api.example.com/a;v=1/b:c@d!$&'()*+,=", "https://api.example.com/a;v=1/b:c@d!$&'()*+,="],
  ['empty segments kept', 'https://api.example.com//a//', 'https://api.example.com//a//'],
  ['IPv4 literal', 'https://127.0.0.1:443/a', 'https://127.0.0.1/a'],
  ['IPv6 literal, default port removed', 'https://[::1]:443/a', 'https://[::1]/a'],
  ['IPv6 literal re-serialised', 'https://[0:0:0:0:0:0:0:1]:8443/a', 'https://[::1]:8443/a'],
  ['IPv6 literal lower-cased', 'https://[FE80::A]/a', 'https://[fe80::a]/a'],
  ['trailing dot in host kept (not an RFC 3986 equivalence)', 'https://api.example.com./a', 'https://api.example.com./a'],
]

const notAbsoluteHttpUris: ReadonlyArray<readonly [reason: string, uri: string]> = [
  ['empty', ''],
  ['relative reference', '/accounts'],
  ['scheme-relative', '//api.example.com/a'],
  ['other scheme', 'ftp://api.example.com/a'],
  ['wss scheme', 'wss://api.example.com/a'],
  ['no authority (WHATWG accepts https:host)', 'https:api.example.com/a'],
  ['one slash (WHATWG accepts)', 'https:/api.example.com/a'],
  ['empty host', 'https:///a'],
  ['empty host with port', 'https://:443/a'],
  ['userinfo (RFC 9110 §4.2.4)', 'https://user:pass@api.example.com/a'],
  ['empty userinfo', 'https://@api.example.com/a'],
  ['port out of range', 'https://api.example.com:65536/a'],
  ['non-numeric port', 'https://api.example.com:https/a'],
  ['space in path', 'https://api.example.com/a b'],
  ['leading space (WHATWG trims)', ' https://api.example.com/a'],
  ['trailing newline (WHATWG strips)', 'https://api.example.com/a\n'],
  ['tab inside (WHATWG strips)', 'https://api.exa\tmple.com/a'],
  ['backslash (WHATWG maps to /)', 'https://api.example.com\\a'],
  ['non-ASCII host', 'https://bänk.example/a'],
  ['non-ASCII path', 'https://api.example.com/é'],
  ['stray percent', 'https://api.example.com/100%'],
  ['bad percent hex', 'https://api.example.com/%zz'],
  ['[ in path', 'https://api.example.com/[x]'],
  ['| in path', 'https://api.example.com/a|b'],
  ['^ in path', 'https://api.example.com/a^b'],
  ['space in query', 'https://api.example.com/a?b c'],
  ['IPv4 shorthand WHATWG rewrites', 'https://127.1/a'],
  ['hex IPv4 WHATWG rewrites', 'https://0x7f.0.0.1/a'],
  ['octal-looking IPv4 WHATWG rewrites', 'https://010.0.0.1/a'],
  ['IPv6 zone identifier', 'https://[fe80::1%25eth0]/a'],
  ['IPvFuture', 'https://[v1.fe80::a]/a'],
  ['unbalanced bracket', 'https://[::1/a'],
]

describe('normalizeHtu', () => {
  for (const [rule, uri, normal] of equivalent) {
    test(`normalises: ${rule}`, () => {
      assert.equal(normalizeHtu(uri), normal)
      assert.equal(normalizeHtu(normal), normal, 'the normal form is a fixed point')
    })
  }

  for (const [reason, uri] of notAbsoluteHttpUris) {
    test(`refuses: ${reason}`, () => {
      assert.equal(normalizeHtu(uri), undefined)
    })
  }

  test('different paths, hosts, ports and schemes stay different', () => {
    const base = normalizeHtu('https://api.example.com/a')
    for (const other of [
      'https://api.example.com/a/',
      'https://api.example.com/A',
      'https://api.example.com/aohnonotagain',
      'https://api.example.org/a',
      'https://api.example.com:8443/a',
      'http://api.example.com/a',
      'https://api.example.com/a%2F',
    ]) {
      assert.notEqual(normalizeHtu(other), base, other)
    }
  })

  test('non-string input is refused', () => {
    assert.equal(normalizeHtu(42 as unknown as string), undefined)
    assert.equal(normalizeHtu(undefined as unknown as string), undefined)
  })
})
