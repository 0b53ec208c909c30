// npm run certs: writes the development PKI to certs/dev/ (git-ignored). Never for production.
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createDevPki, writeDevPki } from '../dev/pki.ts'

const dir = process.argv[2] ?? join(fileURLToPath(new URL('.', import.meta.url)), 'dev')
writeDevPki(await createDevPki(), dir)
console.log(`development PKI written to ${dir}`)
