// Connections made before a reload that reduced the client CA bundle are judged again.
import { before, test } from 'node:test'
import assert from 'node:assert/strict'
import type { ClientCertPolicy } from '../../../src/server/peer-certificate.ts'
import type { PeerCertificateVerdict } from '../../../src/types.ts'
import { toClientCert } from '../../../src/x509.ts'
import { createDevPki, type DevPki, type Issued } from '../../../dev/pki.ts'
import { recheckAfterTrustChange, trustNarrowed } from '../../../src/server/trust-anchors.ts'

let pki: DevPki
before(async () => {
  pki = await createDevPki()
})

function valid(leaf: Issued, candidates: Issued[]): PeerCertificateVerdict {
  return {
    kind: 'valid',
    cert: toClientCert(
      leaf.cert,
      candidates.map((c) => c.cert),
    ),
  }
}

const policy = (...issuers: Issued[]): ClientCertPolicy => ({ minRsaBits: 2048, issuers: issuers.map((i) => i.cert) })

test('a bundle that only grew is not a narrowing; one that lost a certificate is', () => {
  assert.equal(trustNarrowed(policy(pki.root, pki.intermediate), policy(pki.root, pki.intermediate, pki.untrustedRoot)), false)
  assert.equal(trustNarrowed(policy(pki.root, pki.intermediate, pki.untrustedRoot), policy(pki.root, pki.intermediate)), true)
  assert.equal(trustNarrowed(policy(pki.root, pki.intermediate), policy(pki.root)), true, 'an intermediate removed counts')
})

test('after a narrowing, a connection whose chain still ends at a configured anchor keeps its verdict', () => {
  const verdict = valid(pki.partnerA, [pki.intermediate, pki.root])
  const after = recheckAfterTrustChange(verdict, policy(pki.root, pki.intermediate, pki.untrustedRoot), policy(pki.root, pki.intermediate))
  assert.equal(after, verdict)
})

test('after a narrowing, a connection of the removed CA, or one whose chain cannot be confirmed, is refused', () => {
  const removed = recheckAfterTrustChange(
    valid(pki.untrusted, [pki.untrustedRoot]),
    policy(pki.root, pki.intermediate, pki.untrustedRoot),
    policy(pki.root, pki.intermediate),
  )
  assert.equal(removed.kind, 'invalid')
  assert.match((removed as { reason: string }).reason, /client CA bundle a reload has since reduced/)
  // The partner sent its intermediate itself and it is not configured: the chain stops at the leaf.
  const unconfirmed = recheckAfterTrustChange(valid(pki.partnerA, []), policy(pki.root, pki.untrustedRoot), policy(pki.root))
  assert.equal(unconfirmed.kind, 'invalid')
})

test('without a narrowing nothing is judged again, and a refused connection stays refused', () => {
  const incomplete = valid(pki.partnerA, [])
  assert.equal(recheckAfterTrustChange(incomplete, policy(pki.root), policy(pki.root, pki.untrustedRoot)), incomplete)
  const invalid: PeerCertificateVerdict = { kind: 'invalid', reason: 'chain: unable to get local issuer certificate' }
  assert.equal(recheckAfterTrustChange(invalid, policy(pki.root, pki.untrustedRoot), policy(pki.untrustedRoot)), invalid)
  const absent: PeerCertificateVerdict = { kind: 'absent' }
  assert.equal(recheckAfterTrustChange(absent, policy(pki.root, pki.untrustedRoot), policy(pki.root)), absent)
})
