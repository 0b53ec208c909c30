import assert from 'node:assert/strict'
import { test } from 'node:test'
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { distinguishedNameMatches, parseRfc4514 } from '../../../../src/authorization-server/client-authentication/distinguished-name.ts'

/** A DER Name with RDNs in the order given (DER order), built with @peculiar/x509. */
const derName = (rdns: Record<string, string[]>[]) => new x509.Name(rdns).toArrayBuffer()

const bank = derName([{ C: ['DE'] }, { O: ['Example Bank, Inc.'] }, { OU: ['Payments'], CN: ['Partner A'] }])

test('an RFC 4514 string names the RDNs most specific first', () => {
  assert.equal(distinguishedNameMatches(bank, 'CN=Partner A+OU=Payments,O=Example Bank\\, Inc.,C=DE'), true)
  assert.equal(distinguishedNameMatches(bank, 'C=DE,O=Example Bank\\, Inc.,CN=Partner A+OU=Payments'), false)
})

test('attribute names are case-insensitive, numeric OIDs are accepted, values compare case- and space-insensitively', () => {
  assert.equal(distinguishedNameMatches(bank, 'ou=payments+2.5.4.3=partner  a, o=EXAMPLE BANK\\2C INC., c=de'), true)
})

test('a different value, a missing or an extra RDN is no match', () => {
  assert.equal(distinguishedNameMatches(bank, 'CN=Partner B+OU=Payments,O=Example Bank\\, Inc.,C=DE'), false)
  assert.equal(distinguishedNameMatches(bank, 'CN=Partner A+OU=Payments,O=Example Bank\\, Inc.'), false)
  assert.equal(distinguishedNameMatches(bank, 'CN=Partner A,OU=Payments,O=Example Bank\\, Inc.,C=DE'), false)
  assert.equal(distinguishedNameMatches(bank, 'CN=Partner A,O=Example Bank\\, Inc.,C=DE'), false)
})

test('escaped UTF-8 bytes are decoded', () => {
  const munich = derName([{ L: ['München'] }, { CN: ['a'] }])
  assert.equal(distinguishedNameMatches(munich, 'CN=a,L=M\\C3\\BCnchen'), true)
  assert.equal(distinguishedNameMatches(munich, 'CN=a,L=München'), true)
})

test('strings the parser does not read match nothing', () => {
  for (const dn of ['', 'CN=a,', 'CN=#0c0161', 'FOO=a', 'CN="a"', 'CN=a\\q', 'CN=a\\C3', '=a']) assert.equal(parseRfc4514(dn), undefined, dn)
  assert.equal(distinguishedNameMatches(derName([{ CN: ['a'] }]), 'FOO=a'), false)
})
