import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { exportJWK, calculateJwkThumbprint, generateKeyPair } from 'jose'
import { checkBinding, checkProofKeyBinding } from '../../../src/checks/binding.ts'
import { checkCredentials } from '../../../src/checks/credentials.ts'
import { createDevPki, type DevPki, type Issued } from '../../../dev/pki.ts'
import { routePolicySchema, type BindingRequirement } from '../../../src/config/schema.ts'
import { createRouteTable, type Route } from '../../../src/routes/route-table.ts'
import type { ErrorCode } from '../../../src/errors.ts'
import type { AccessToken, ClientCert, PresentedToken, TokenBinding } from '../../../src/types.ts'

let pki: DevPki
let jktA: string
let jktB: string

before(async () => {
  pki = await createDevPki()
  const thumbprintOfNewKey = async () => calculateJwkThumbprint(await exportJWK((await generateKeyPair('ES256')).publicKey))
  jktA = await thumbprintOfNewKey()
  jktB = await thumbprintOfNewKey()
})

const routes = createRouteTable(
  (['dpop', 'mtls', 'dpop-or-mtls', 'none'] as const).map((binding) =>
    routePolicySchema.parse({ name: binding, path: `/${binding}`, methods: ['GET'], upstream: 'api', binding }),
  ),
  ['bank'],
)

function route(binding: BindingRequirement): Route {
  return routes.match('GET', `/${binding}`).route
}

function presented(scheme: 'Bearer' | 'DPoP' | 'dpop' | 'bearer'): PresentedToken {
  return checkCredentials({ authorization: [`${scheme} at.payload.sig`], dpop: [], interactionId: undefined }, '/')
}

function token(binding: TokenBinding, tokenType?: string): AccessToken {
  return {
    format: tokenType === undefined ? 'jwt' : 'opaque',
    issuerName: 'bank',
    iss: 'https://as.example',
    sub: 'user',
    clientId: 'partner-a',
    scopes: new Set(['accounts:read']),
    audiences: ['https://api.example'],
    exp: 2_000_000_000,
    jti: 'jti-1',
    binding,
    tokenType,
  }
}

function thumbprint(issued: Issued): string {
  return createHash('sha256').update(issued.cert.raw).digest('base64url')
}

function clientCert(issued: Issued): ClientCert {
  return {
    thumbprint: thumbprint(issued),
    subject: issued.cert.subject,
    issuer: issued.cert.issuer,
    serialNumber: issued.cert.serialNumber,
    notAfter: Date.parse(issued.cert.validTo),
    chainDer: [issued.cert.raw, pki.intermediate.cert.raw],
  }
}

function refusedWith(code: ErrorCode) {
  return (error: unknown) => {
    assert.equal((error as { code?: unknown }).code, code, String(error))
    return true
  }
}

test('a DPoP-bound token sent with the DPoP scheme passes on routes that accept DPoP and asks for a proof', () => {
  for (const binding of ['dpop', 'dpop-or-mtls', 'none'] as const) {
    assert.equal(checkBinding(route(binding), presented('DPoP'), token({ jkt: jktA }), undefined), 'dpop', binding)
    assert.equal(checkBinding(route(binding), presented('dpop'), token({ jkt: jktA }), clientCert(pki.partnerA)), 'dpop', binding)
  }
  // RFC 9449 §6.2: an introspected token with token_type DPoP and cnf.jkt.
  assert.equal(checkBinding(route('dpop'), presented('DPoP'), token({ jkt: jktA }, 'DPoP'), undefined), 'dpop')
  assert.equal(checkBinding(route('dpop'), presented('DPoP'), token({ jkt: jktA }, 'dpop'), undefined), 'dpop')
})

test('a DPoP-bound token sent with Bearer is GW_TOKEN_DOWNGRADE', () => {
  for (const binding of ['dpop', 'dpop-or-mtls', 'none', 'mtls'] as const) {
    assert.throws(() => checkBinding(route(binding), presented('Bearer'), token({ jkt: jktA }), undefined), refusedWith('GW_TOKEN_DOWNGRADE'), binding)
    assert.throws(
      () => checkBinding(route(binding), presented('bearer'), token({ jkt: jktA, x5t: thumbprint(pki.partnerA) }), clientCert(pki.partnerA)),
      refusedWith('GW_TOKEN_DOWNGRADE'),
      binding,
    )
  }
})

test('an introspected token with token_type DPoP is DPoP-bound: Bearer is a downgrade, and without cnf.jkt it is invalid', () => {
  assert.throws(() => checkBinding(route('dpop-or-mtls'), presented('Bearer'), token({}, 'DPoP'), undefined), refusedWith('GW_TOKEN_DOWNGRADE'))
  assert.throws(
    () => checkBinding(route('dpop-or-mtls'), presented('Bearer'), token({ x5t: thumbprint(pki.partnerA) }, 'dpop'), clientCert(pki.partnerA)),
    refusedWith('GW_TOKEN_DOWNGRADE'),
  )
  assert.throws(() => checkBinding(route('dpop'), presented('DPoP'), token({}, 'DPoP'), undefined), refusedWith('GW_TOKEN_INVALID'))
  assert.throws(() => checkBinding(route('none'), presented('DPoP'), token({}, 'DPoP'), undefined), refusedWith('GW_TOKEN_INVALID'))
  // token_type Bearer carries no binding of its own.
  assert.equal(checkBinding(route('none'), presented('Bearer'), token({}, 'Bearer'), undefined), 'unbound')
})

test('the DPoP scheme with a token that is not DPoP-bound is GW_TOKEN_SCHEME_MISMATCH', () => {
  for (const binding of ['dpop', 'dpop-or-mtls', 'none', 'mtls'] as const) {
    assert.throws(() => checkBinding(route(binding), presented('DPoP'), token({}), undefined), refusedWith('GW_TOKEN_SCHEME_MISMATCH'), binding)
    assert.throws(() => checkBinding(route(binding), presented('DPoP'), token({}, 'Bearer'), undefined), refusedWith('GW_TOKEN_SCHEME_MISMATCH'), binding)
    assert.throws(
      () => checkBinding(route(binding), presented('DPoP'), token({ x5t: thumbprint(pki.partnerA) }), clientCert(pki.partnerA)),
      refusedWith('GW_TOKEN_SCHEME_MISMATCH'),
      binding,
    )
  }
})

test('a certificate-bound token with the matching client certificate passes', () => {
  for (const binding of ['mtls', 'dpop-or-mtls', 'none'] as const) {
    assert.equal(checkBinding(route(binding), presented('Bearer'), token({ x5t: thumbprint(pki.partnerA) }), clientCert(pki.partnerA)), 'mtls', binding)
  }
})

test('a certificate-bound token without a client certificate, or with another one, is GW_CERT_BINDING_MISMATCH', () => {
  const bound = token({ x5t: thumbprint(pki.partnerA) })
  for (const binding of ['mtls', 'dpop-or-mtls', 'none'] as const) {
    assert.throws(() => checkBinding(route(binding), presented('Bearer'), bound, undefined), refusedWith('GW_CERT_BINDING_MISMATCH'), binding)
    assert.throws(() => checkBinding(route(binding), presented('Bearer'), bound, clientCert(pki.partnerB)), refusedWith('GW_CERT_BINDING_MISMATCH'), binding)
    // Same subject, other CA: only the thumbprint counts.
    assert.throws(() => checkBinding(route(binding), presented('Bearer'), bound, clientCert(pki.untrusted)), refusedWith('GW_CERT_BINDING_MISMATCH'), binding)
    // A thumbprint that differs only in length or padding is not the same thumbprint.
    assert.throws(
      () => checkBinding(route(binding), presented('Bearer'), token({ x5t: thumbprint(pki.partnerA) + '=' }), clientCert(pki.partnerA)),
      refusedWith('GW_CERT_BINDING_MISMATCH'),
      binding,
    )
    assert.throws(
      () => checkBinding(route(binding), presented('Bearer'), token({ x5t: '' }), clientCert(pki.partnerA)),
      refusedWith('GW_CERT_BINDING_MISMATCH'),
      binding,
    )
  }
})

test('an unbound token is GW_TOKEN_UNBOUND unless the route binding is none', () => {
  for (const binding of ['dpop', 'mtls', 'dpop-or-mtls'] as const) {
    assert.throws(() => checkBinding(route(binding), presented('Bearer'), token({}), undefined), refusedWith('GW_TOKEN_UNBOUND'), binding)
    assert.throws(() => checkBinding(route(binding), presented('Bearer'), token({}), clientCert(pki.partnerA)), refusedWith('GW_TOKEN_UNBOUND'), binding)
  }
  assert.equal(checkBinding(route('none'), presented('Bearer'), token({}), undefined), 'unbound')
  assert.equal(checkBinding(route('none'), presented('Bearer'), token({}), clientCert(pki.partnerA)), 'unbound')
})

test('a dpop route refuses a token that is only certificate-bound with GW_BINDING_NOT_ALLOWED', () => {
  assert.throws(
    () => checkBinding(route('dpop'), presented('Bearer'), token({ x5t: thumbprint(pki.partnerA) }), clientCert(pki.partnerA)),
    refusedWith('GW_BINDING_NOT_ALLOWED'),
  )
  assert.throws(
    () => checkBinding(route('dpop'), presented('Bearer'), token({ x5t: thumbprint(pki.partnerA) }), undefined),
    refusedWith('GW_BINDING_NOT_ALLOWED'),
  )
})

test('an mtls route refuses a DPoP-bound token with GW_BINDING_NOT_ALLOWED', () => {
  assert.throws(() => checkBinding(route('mtls'), presented('DPoP'), token({ jkt: jktA }), clientCert(pki.partnerA)), refusedWith('GW_BINDING_NOT_ALLOWED'))
  assert.throws(
    () => checkBinding(route('mtls'), presented('DPoP'), token({ jkt: jktA, x5t: thumbprint(pki.partnerA) }), clientCert(pki.partnerA)),
    refusedWith('GW_BINDING_NOT_ALLOWED'),
  )
})

test('a token bound both ways needs the matching certificate and a DPoP proof', () => {
  const both = token({ jkt: jktA, x5t: thumbprint(pki.partnerA) })
  for (const binding of ['dpop', 'dpop-or-mtls', 'none'] as const) {
    assert.equal(checkBinding(route(binding), presented('DPoP'), both, clientCert(pki.partnerA)), 'dpop', binding)
    assert.throws(() => checkBinding(route(binding), presented('DPoP'), both, undefined), refusedWith('GW_CERT_BINDING_MISMATCH'), binding)
    assert.throws(() => checkBinding(route(binding), presented('DPoP'), both, clientCert(pki.partnerB)), refusedWith('GW_CERT_BINDING_MISMATCH'), binding)
    assert.throws(() => checkBinding(route(binding), presented('Bearer'), both, clientCert(pki.partnerA)), refusedWith('GW_TOKEN_DOWNGRADE'), binding)
  }
})

test('checkProofKeyBinding passes when the proof key is the key the token is bound to', () => {
  assert.doesNotThrow(() => checkProofKeyBinding(jktA, jktA))
})

test('checkProofKeyBinding refuses another key with GW_DPOP_BINDING_MISMATCH, naming the key presented', () => {
  assert.throws(
    () => checkProofKeyBinding(jktA, jktB),
    (error: unknown) => refusedWith('GW_DPOP_BINDING_MISMATCH')(error) && (error as { keyThumbprint?: string }).keyThumbprint === jktB,
  )
  assert.throws(() => checkProofKeyBinding(jktA, jktA.slice(0, -1)), refusedWith('GW_DPOP_BINDING_MISMATCH'))
  assert.throws(() => checkProofKeyBinding(jktA, jktA + 'A'), refusedWith('GW_DPOP_BINDING_MISMATCH'))
  assert.throws(
    () => checkProofKeyBinding(jktA, jktA.toLowerCase() === jktA ? jktA.toUpperCase() : jktA.toLowerCase()),
    refusedWith('GW_DPOP_BINDING_MISMATCH'),
  )
  assert.throws(() => checkProofKeyBinding(jktA, ''), refusedWith('GW_DPOP_BINDING_MISMATCH'))
})

test('checkProofKeyBinding refuses a token that carries no cnf.jkt', () => {
  assert.throws(() => checkProofKeyBinding(undefined, jktA), refusedWith('GW_DPOP_BINDING_MISMATCH'))
})
