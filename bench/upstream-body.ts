/** The 200-byte answer every bench target returns. */
export const UPSTREAM_BODY = JSON.stringify({ account: 'bench-account-0001', balance: '1024.00', currency: 'EUR', pad: 'x'.repeat(122) })
