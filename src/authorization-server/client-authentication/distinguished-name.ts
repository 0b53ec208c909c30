// Subject DN matching for tls_client_auth (RFC 8705 §2.1.2): the registered value is an RFC 4514
// string (most specific RDN first, the reverse of the DER order); the certificate's subject is read
// from its DER with @peculiar/asn1-x509. Names are compared RDN by RDN: the same attribute types (as
// OIDs) with values equal after RFC 4518-style preparation (Unicode NFKC, case folded, inner spaces
// collapsed, ends trimmed), whatever string types the CA chose. A registered string this parser does
// not read (an unknown attribute name, a #hex value, a quoted value) matches nothing.
import { AsnConvert } from '@peculiar/asn1-schema'
import { Name as AsnName } from '@peculiar/asn1-x509'

/** RFC 4514 §3 names, and those eIDAS/PSD2 and common CAs use. Numeric OIDs are accepted as they are. */
const attributeTypes: Record<string, string> = {
  CN: '2.5.4.3',
  SN: '2.5.4.4',
  SERIALNUMBER: '2.5.4.5',
  C: '2.5.4.6',
  L: '2.5.4.7',
  ST: '2.5.4.8',
  STREET: '2.5.4.9',
  O: '2.5.4.10',
  OU: '2.5.4.11',
  T: '2.5.4.12',
  TITLE: '2.5.4.12',
  BUSINESSCATEGORY: '2.5.4.15',
  POSTALCODE: '2.5.4.17',
  GN: '2.5.4.42',
  G: '2.5.4.42',
  GIVENNAME: '2.5.4.42',
  DNQUALIFIER: '2.5.4.46',
  ORGANIZATIONIDENTIFIER: '2.5.4.97',
  DC: '0.9.2342.19200300.100.1.25',
  UID: '0.9.2342.19200300.100.1.1',
  E: '1.2.840.113549.1.9.1',
  EMAILADDRESS: '1.2.840.113549.1.9.1',
}

const SPECIAL = ' "#+,;<=>\\'
const prepare = (value: string) => value.normalize('NFKC').trim().replace(/\s+/g, ' ').toLowerCase()
const attribute = (oid: string, value: string) => `${oid}=${prepare(value)}`
const rdnKey = (attributes: string[]) => [...attributes].sort().join('+')

function utf8(bytes: number[]): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes))
  } catch {
    return undefined
  }
}

/** The RDNs of an RFC 4514 string in DER order, each as a canonical key; undefined when it cannot be read. */
export function parseRfc4514(dn: string): string[] | undefined {
  const rdns: string[][] = [[]]
  let i = 0
  const skipSpaces = () => {
    while (dn[i] === ' ') i++
  }
  while (i <= dn.length) {
    skipSpaces()
    const type = /^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)/.exec(dn.slice(i))?.[0]
    if (!type) return undefined
    i += type.length
    const oid = /^\d/.test(type) ? type : attributeTypes[type.toUpperCase()]
    if (!oid) return undefined
    skipSpaces()
    if (dn[i] !== '=') return undefined
    i++
    skipSpaces()
    if (dn[i] === '#' || dn[i] === '"') return undefined
    const bytes: number[] = []
    while (i < dn.length && dn[i] !== ',' && dn[i] !== '+') {
      if (dn[i] === '\\') {
        const next = dn[i + 1] ?? ''
        if (/^[0-9A-Fa-f]{2}$/.test(dn.slice(i + 1, i + 3))) {
          bytes.push(parseInt(dn.slice(i + 1, i + 3), 16))
          i += 3
        } else if (next !== '' && SPECIAL.includes(next)) {
          bytes.push(next.charCodeAt(0))
          i += 2
        } else return undefined
      } else {
        const char = String.fromCodePoint(dn.codePointAt(i)!)
        bytes.push(...Buffer.from(char, 'utf8'))
        i += char.length
      }
    }
    const value = utf8(bytes)
    if (value === undefined) return undefined
    rdns.at(-1)!.push(attribute(oid, value))
    if (i >= dn.length) break
    if (dn[i] === ',') rdns.push([])
    i++
  }
  if (rdns.some((rdn) => rdn.length === 0)) return undefined
  return rdns.map(rdnKey).reverse()
}

/** The RDNs of a DER Name (a certificate's subject), in DER order, as canonical keys. */
export function derNameRdns(der: ArrayBuffer): string[] {
  return AsnConvert.parse(der, AsnName).map((rdn) => rdnKey(rdn.map((entry) => attribute(entry.type, entry.value.toString()))))
}

export function distinguishedNameMatches(subjectDer: ArrayBuffer, registeredRfc4514: string): boolean {
  const registered = parseRfc4514(registeredRfc4514)
  const presented = derNameRdns(subjectDer)
  return registered !== undefined && registered.length === presented.length && registered.every((rdn, index) => rdn === presented[index])
}
