// The gateway's own keys as the authorization-server façade uses them (issue 14 point 6): one to sign
// JARM responses, others to decrypt request objects partners encrypt to it. One small interface, so
// that an HSM or a cloud KMS signer can stand where files are read today without touching the flow.
import type { JWK } from 'jose'

export type GatewayKeyUse = 'sig' | 'enc'

export interface GatewaySigner {
  readonly kid: string
  /** PS256, ES256 or EdDSA. */
  readonly alg: string
  /** Signs a JWS over `payload` with header {alg, kid, typ}; returns the compact serialization. */
  sign(payload: Record<string, unknown>, typ: string): Promise<string>
}

export interface GatewayDecrypter {
  readonly kid: string
  /** RSA-OAEP-256 or ECDH-ES. */
  readonly alg: string
  /** Decrypts a compact JWE (content encryption A256GCM); throws when it is not for this key or does not decrypt. */
  decrypt(jwe: string): Promise<Uint8Array>
}

export interface GatewayKeySource {
  /** The key that signs now: the newest active signing key (published at least `publishAheadSeconds` before it signs). */
  signer(nowMs: number): GatewaySigner
  /** Every decryption key still accepted (the current one and those kept through an overlap), by kid. */
  decrypters(nowMs: number): readonly GatewayDecrypter[]
  /** The public keys to publish at the gateway's jwks_uri: upcoming, current and retiring ones. */
  publicJwks(nowMs: number): { readonly keys: readonly JWK[] }
  /** For the expiry gauge: each key's kid, use and the time it stops being used (ms since the epoch). */
  expiries(): readonly { readonly kid: string; readonly use: GatewayKeyUse; readonly notAfter: number }[]
  close(): Promise<void>
}
