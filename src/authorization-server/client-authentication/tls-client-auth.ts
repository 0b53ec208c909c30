// tls_client_auth (RFC 8705 §2.1): a certificate chaining to the configured client CAs (checked by the
// listener) whose subject DN or one SAN is the one registered for the partner (RFC 8705 §2.1.2).
// Subject DNs are compared as names, not strings (distinguished-name.ts).
import { isIP } from 'node:net'
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import type { PartnerConfig } from '../../config/schema.ts'
import type { PeerCertificateVerdict } from '../../types.ts'
import { oauthRefuse } from '../errors.ts'
import { distinguishedNameMatches } from './distinguished-name.ts'

type TlsClientAuthRegistration = Extract<PartnerConfig['authentication'], { method: 'tls_client_auth' }>

function certificateInvalid(detail: string): never {
  return oauthRefuse('AS_CLIENT_CERTIFICATE_INVALID', detail)
}

/** IPv4 or IPv6 in one textual form, so that ::1 and 0:0:0:0:0:0:0:1 agree. */
function canonicalIp(value: string): string | undefined {
  const version = isIP(value)
  if (version === 4) return value
  if (version === 6) return new URL(`http://[${value}]/`).hostname
  return undefined
}

function sanMatches(names: readonly x509.JsonGeneralName[], registration: TlsClientAuthRegistration): boolean {
  const { sanDns, sanUri, sanIp, sanEmail } = registration
  if (sanDns !== undefined) return names.some((n) => n.type === 'dns' && n.value.toLowerCase() === sanDns.toLowerCase())
  if (sanUri !== undefined) return names.some((n) => n.type === 'url' && n.value === sanUri)
  if (sanIp !== undefined) {
    const wanted = canonicalIp(sanIp)
    return wanted !== undefined && names.some((n) => n.type === 'ip' && canonicalIp(n.value) === wanted)
  }
  if (sanEmail !== undefined) return names.some((n) => n.type === 'email' && n.value.toLowerCase() === sanEmail.toLowerCase())
  return false
}

function subjectAlternativeNames(cert: x509.X509Certificate): x509.JsonGeneralName[] {
  const extension = cert.getExtension(x509.SubjectAlternativeNameExtension)
  return extension ? extension.names.toJSON() : []
}

/** Throws AS_CLIENT_CERTIFICATE_INVALID unless the connection's certificate authenticates the partner. */
export function authenticateTlsClient(peer: PeerCertificateVerdict, registration: TlsClientAuthRegistration): void {
  if (peer.kind === 'absent') certificateInvalid('certificate: none presented')
  if (peer.kind === 'invalid') certificateInvalid(`certificate: ${peer.reason}`)
  const leafDer = peer.cert.chainDer[0] ?? certificateInvalid('certificate: none presented')
  let cert: x509.X509Certificate
  try {
    cert = new x509.X509Certificate(leafDer)
  } catch {
    return certificateInvalid('certificate: cannot be parsed')
  }
  if (registration.subjectDn !== undefined) {
    if (!distinguishedNameMatches(cert.subjectName.toArrayBuffer(), registration.subjectDn)) certificateInvalid('subject: not the registered subject DN')
    return
  }
  if (!sanMatches(subjectAlternativeNames(cert), registration)) certificateInvalid('san: not the registered subject alternative name')
}
