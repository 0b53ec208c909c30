// @peculiar/x509 needs reflect-metadata loaded first and a WebCrypto provider; every CA
// module imports the library through this file.
import 'reflect-metadata'
import { webcrypto } from 'node:crypto'
import * as x509 from '@peculiar/x509'

x509.cryptoProvider.set(webcrypto as never)

export { x509 }
