#!/usr/bin/env node
// Plain JavaScript, so that an older Node.js reaches this line and says what to do instead of
// failing on TypeScript with a stack trace.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  console.error(
    `fapi-gateway needs Node.js 22.19 or later (Node 24 LTS recommended); this is ${process.version}. Run it through npm (npm start, npm run demo), which uses the Node 24 that npm ci installs, or install Node 24.`,
  )
  process.exit(1)
}
await import('../src/main.ts')
