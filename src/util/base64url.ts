const BASE64URL = /^[A-Za-z0-9_-]*$/

/**
 * RFC 7515 §2: base64url without padding, in its one canonical spelling. Decoders accept
 * spare bits in the last character, so without this one token or proof has several
 * spellings, and every list or cache keyed by the string could be sidestepped.
 */
export function isCanonicalBase64url(value: unknown): value is string {
  return typeof value === 'string' && BASE64URL.test(value) && Buffer.from(value, 'base64url').toString('base64url') === value
}
