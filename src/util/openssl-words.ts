// OpenSSL's errors in the words of someone who configured a certificate and a key, for messages
// that name the configuration key: `key values mismatch` says nothing to most operators.
const WORDS: Record<string, string> = {
  ERR_OSSL_X509_KEY_VALUES_MISMATCH: 'the private key does not belong to the certificate',
  ERR_OSSL_PEM_NO_START_LINE: 'not PEM: no "-----BEGIN" line where a certificate or key was expected',
  ERR_OSSL_UNSUPPORTED: 'the private key is not a PEM private key OpenSSL can read',
  ERR_OSSL_PEM_BAD_BASE64_DECODE: 'damaged PEM: the base64 between the BEGIN and END lines does not decode',
  ERR_OSSL_BAD_DECRYPT: 'the private key is encrypted; give it unencrypted (mode 0600)',
  ERR_OSSL_EVP_BAD_DECRYPT: 'the private key is encrypted; give it unencrypted (mode 0600)',
  ERR_OSSL_SSL_EE_KEY_TOO_SMALL: 'the key is too small for OpenSSL to use',
  ERR_OSSL_SSL_CA_MD_TOO_WEAK: 'the certificate is signed with a digest OpenSSL no longer accepts (MD5 or SHA-1)',
}

export function opensslInWords(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code === 'string' && WORDS[code]) return WORDS[code]
  // `error:05800074:x509 certificate routines::key values mismatch` → `key values mismatch`
  return (error instanceof Error ? error.message : String(error)).replace(/^error:[0-9A-F]+:[^:]*::?/, '')
}
