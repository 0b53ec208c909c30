// The partner CA as an operator runs it: `node src/main.ts ca ...` processes, the real
// openssl binary, and a running gateway that trusts the CA.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, X509Certificate } from 'node:crypto'
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs'
import { once } from 'node:events'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { startOcspResponder, type RunningOcspResponder } from '../../src/ca/ocsp-responder.ts'
import { createPartnerClient } from '../../src/client/partner-client.ts'
import { freePort } from '../../dev/environment.ts'
import { startTestGateway, testPki, type TestGateway } from '../support/gateway.ts'
import { MAIN } from '../support/gateway-process.ts'
import { openssl, run, tempDir, type Run, type TempDir } from '../unit/ca/ca-fixture.ts'

function ca(...args: string[]): Promise<Run> {
  return run(process.execPath, [MAIN, 'ca', ...args])
}

function thumbprint(certPem: string): string {
  return createHash('sha256').update(new X509Certificate(certPem).raw).digest('base64url')
}

interface ResponderProcess {
  readonly child: ChildProcess
  readonly output: () => string
  stop(): Promise<number | null>
}

async function spawnResponder(dir: string, port: number, ...extra: string[]): Promise<ResponderProcess> {
  const child = spawn(process.execPath, [MAIN, 'ca', 'ocsp-responder', '--dir', dir, '--port', String(port), ...extra], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const listening = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk
      if (output.includes('listening on')) resolve()
    })
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk))
    child.once('exit', (code) => reject(new Error(`responder exited with ${code}: ${output}`)))
  })
  await listening
  return {
    child,
    output: () => output,
    async stop() {
      if (child.exitCode !== null) return child.exitCode
      child.kill('SIGTERM')
      const [code] = await once(child, 'exit')
      return code as number | null
    },
  }
}

describe('fapi-gateway ca (command line)', () => {
  let tmp: TempDir
  let caDir: string
  let caCrt: string
  let ocspPort: number
  const responders: ResponderProcess[] = []

  before(async () => {
    tmp = tempDir('fapi-ca-cli-')
    caDir = tmp.file('partner-ca')
    caCrt = join(caDir, 'ca.crt')
    ocspPort = await freePort()
    const init = await ca(
      'init',
      '--dir',
      caDir,
      '--subject',
      'CN=CLI Partner CA, O=Bank',
      '--ocsp-url',
      `http://127.0.0.1:${ocspPort}`,
      '--crl-url',
      `http://127.0.0.1:${ocspPort}/ca.crl`,
    )
    assert.equal(init.code, 0, init.output)
    assert.match(init.stdout, /root CA "CN=CLI Partner CA, O=Bank" created in /)
  })
  after(async () => {
    await Promise.all(responders.map((responder) => responder.stop()))
    tmp.remove()
  })

  it('prints its usage, and refuses unknown commands and flags with status 2', async () => {
    const help = await ca('help')
    assert.equal(help.code, 0)
    assert.match(help.stdout, /ocsp-responder --dir D --port N/)
    const unknown = await ca('frobnicate')
    assert.equal(unknown.code, 2)
    assert.match(unknown.stderr, /unknown command "frobnicate"/)
    const badFlag = await ca('list', '--dir', caDir, '--colour')
    assert.equal(badFlag.code, 2)
    assert.match(badFlag.stderr, /--colour/)
    const missing = await ca('issue', '--subject', 'CN=x', '--out-key', tmp.file('x.key'), '--out', tmp.file('x.crt'))
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /fapi-gateway ca issue: --dir is required/)
    const gatewayUsage = await run(process.execPath, [MAIN, '--help'])
    assert.match(gatewayUsage.output, /fapi-gateway ca <command>/)
  })

  it('issues from a generated key and from an openssl CSR, lists them, revokes one and publishes a CRL openssl checks', async () => {
    const keyFile = tmp.file('partner-a.key')
    const certFile = tmp.file('partner-a.crt')
    const issued = await ca('issue', '--dir', caDir, '--subject', 'CN=partner-a, O=Partner', '--out-key', keyFile, '--out', certFile, '--validity-days', '90')
    assert.equal(issued.code, 0, issued.output)
    assert.equal(statSync(keyFile).mode & 0o777, 0o600)
    assert.equal((await openssl('verify', '-CAfile', caCrt, certFile)).code, 0)
    const text = (await openssl('x509', '-in', certFile, '-noout', '-text')).stdout
    assert.match(text, /TLS Web Client Authentication/)
    assert.match(text, new RegExp(`OCSP - URI:http://127\\.0\\.0\\.1:${ocspPort}`))
    assert.match(text, new RegExp(`URI:http://127\\.0\\.0\\.1:${ocspPort}/ca\\.crl`))

    const csrFile = tmp.file('partner-b.csr')
    assert.equal(
      (await openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', tmp.file('partner-b.key'), '-subj', '/CN=partner-b/O=Partner', '-out', csrFile))
        .code,
      0,
    )
    const fromCsr = await ca('issue', '--dir', caDir, '--csr', csrFile, '--out', tmp.file('partner-b.crt'))
    assert.equal(fromCsr.code, 0, fromCsr.output)
    const serialB = /issued serial ([0-9a-f]+)/.exec(fromCsr.stdout)![1]!

    const list = await ca('list', '--dir', caDir)
    assert.equal(list.code, 0)
    assert.match(list.stdout, /^serial +subject +kind +notAfter +days left +status/)
    assert.match(list.stdout, /CN=partner-a, O=Partner +partner +\S+ +(89|90) +valid/)
    const rows = JSON.parse((await ca('list', '--dir', caDir, '--json')).stdout) as { serial: string; daysLeft: number; status: string; notAfter: string }[]
    assert.ok(rows.some((row) => row.serial === serialB && row.status === 'valid' && row.daysLeft >= 364))

    const revoke = await ca('revoke', '--dir', caDir, '--serial', serialB.toUpperCase().replace(/(..)(?!$)/g, '$1:'), '--reason', 'affiliationChanged')
    assert.equal(revoke.code, 0, revoke.output)
    assert.match(revoke.stdout, new RegExp(`revoked serial ${serialB} .*\\(affiliationChanged\\)`))
    const badReason = await ca('revoke', '--dir', caDir, '--serial', serialB, '--reason', 'bored')
    assert.equal(badReason.code, 1)
    assert.match(badReason.stderr, /--reason: unknown revocation reason "bored"/)

    const crlFile = tmp.file('ca.crl.pem')
    const crl = await ca('crl', '--dir', caDir, '--out', crlFile, '--next-update-hours', '6')
    assert.equal(crl.code, 0, crl.output)
    assert.match(crl.stdout, /CRL number 1 with 1 revoked certificate/)
    assert.match((await openssl('crl', '-in', crlFile, '-CAfile', caCrt, '-noout')).stderr, /verify OK/)
    assert.equal((await openssl('verify', '-crl_check', '-CAfile', caCrt, '-CRLfile', crlFile, certFile)).code, 0)
    const revoked = await openssl('verify', '-crl_check', '-CAfile', caCrt, '-CRLfile', crlFile, tmp.file('partner-b.crt'))
    assert.notEqual(revoked.code, 0)
    assert.match(revoked.output, /certificate revoked/)
  })

  it('refuses weak CSRs and loose key files with a message naming the file, and status 1', async () => {
    const weakCsr = tmp.file('weak.csr')
    await openssl('req', '-new', '-newkey', 'rsa:1024', '-nodes', '-keyout', tmp.file('weak.key'), '-subj', '/CN=weak', '-out', weakCsr)
    const weak = await ca('issue', '--dir', caDir, '--csr', weakCsr, '--out', tmp.file('weak.crt'))
    assert.equal(weak.code, 1)
    assert.match(weak.stderr, new RegExp(`fapi-gateway ca issue: --csr ${weakCsr}: RSA key of 1024 bits; at least 2048 required`))
    assert.equal(existsSync(tmp.file('weak.crt')), false)

    const badType = await ca('issue', '--dir', caDir, '--subject', 'CN=x', '--out-key', tmp.file('t.key'), '--out', tmp.file('t.crt'), '--key-type', 'dsa-512')
    assert.equal(badType.code, 1)
    assert.match(badType.stderr, /--key-type: unknown key type "dsa-512"/)

    const looseDir = tmp.file('loose-ca')
    assert.equal((await ca('init', '--dir', looseDir, '--subject', 'CN=Loose')).code, 0)
    chmodSync(join(looseDir, 'ca.key'), 0o644)
    const loose = await ca('issue', '--dir', looseDir, '--subject', 'CN=x', '--out-key', tmp.file('loose.key'), '--out', tmp.file('loose.crt'))
    assert.equal(loose.code, 1)
    assert.match(loose.stderr, /ca\.key: private key is accessible by group or others \(mode 0644\); run chmod 600/)
  })

  it('creates an intermediate CA and a delegated responder certificate from the command line', async () => {
    const interDir = tmp.file('inter-ca')
    const init = await ca(
      'init',
      '--dir',
      interDir,
      '--parent',
      caDir,
      '--subject',
      'CN=CLI Intermediate',
      '--key-type',
      'ec-p384',
      '--validity-days',
      '365',
      '--responder-cert',
    )
    assert.equal(init.code, 0, init.output)
    assert.match(init.stdout, /intermediate CA "CN=CLI Intermediate"/)
    assert.ok(existsSync(join(interDir, 'ocsp', 'responder.crt')))
    assert.equal(statSync(join(interDir, 'ocsp', 'responder.key')).mode & 0o777, 0o600)
    assert.equal((await openssl('verify', '-CAfile', caCrt, join(interDir, 'ca.crt'))).code, 0)
    const rotated = await ca('responder-cert', '--dir', interDir, '--validity-days', '7')
    assert.equal(rotated.code, 0, rotated.output)
    assert.match(rotated.stdout, /OCSP responder certificate serial [0-9a-f]+, valid until/)
  })

  it('runs the OCSP responder, which openssl trusts and which sees a `ca revoke` without a restart', async () => {
    const responder = await spawnResponder(caDir, ocspPort)
    responders.push(responder)
    const certFile = tmp.file('ocsp-partner.crt')
    const issued = await ca('issue', '--dir', caDir, '--subject', 'CN=ocsp-partner', '--out-key', tmp.file('ocsp-partner.key'), '--out', certFile)
    const serial = /issued serial ([0-9a-f]+)/.exec(issued.stdout)![1]!
    const ask = () => openssl('ocsp', '-issuer', caCrt, '-cert', certFile, '-url', `http://127.0.0.1:${ocspPort}`, '-resp_text', '-CAfile', caCrt)
    const good = await ask()
    assert.match(good.stderr, /Response verify OK/)
    assert.match(good.stdout, /ocsp-partner\.crt: good/)
    assert.equal((await ca('revoke', '--dir', caDir, '--serial', serial, '--reason', 'keyCompromise')).code, 0)
    const revoked = await ask()
    assert.match(revoked.stderr, /Response verify OK/)
    assert.match(revoked.stdout, /ocsp-partner\.crt: revoked[\s\S]*Reason: keyCompromise/)
    assert.match(responder.output(), /"event":"ocsp.request".*"status":"revoked"/)
    assert.equal(await responder.stop(), 0, 'SIGTERM stops it cleanly')
  })

  describe('with a running gateway that trusts the CA and checks revocation at its OCSP responder', () => {
    // How long the responder says its answers stay valid: the gateway's refresh interval.
    const nextUpdateSeconds = 1
    let gw: TestGateway
    let responder: RunningOcspResponder

    before(async () => {
      responder = await startOcspResponder({ dir: caDir, port: ocspPort, nextUpdateSeconds })
      gw = await startTestGateway({
        config: {
          listener: {
            tls: { certFile: 'server-chain.crt', keyFile: 'server.key', clientCaFile: caCrt, clientCertificate: 'request' },
          },
          // The CLI's certificates name the responder in their AIA extension.
          revocation: { cas: [{ name: 'cli-partners', caFile: caCrt, sources: ['ocsp'] }] },
        },
      })
    })
    after(async () => {
      await gw.close()
      await responder.close()
    })

    async function partner(name: string) {
      const keyFile = tmp.file(`${name}.key`)
      const certFile = tmp.file(`${name}.crt`)
      const issued = await ca('issue', '--dir', caDir, '--subject', `CN=${name}, O=Partner`, '--out-key', keyFile, '--out', certFile)
      assert.equal(issued.code, 0, issued.output)
      const certPem = readFileSync(certFile, 'utf8')
      const client = createPartnerClient({
        baseUrl: gw.baseUrl,
        caPem: (await testPki()).root.certPem,
        identity: { certPem, keyPem: readFileSync(keyFile, 'utf8') },
      })
      const serial = /issued serial ([0-9a-f]+)/.exec(issued.stdout)![1]!
      return { client, certPem, serial }
    }

    it('passes a partner certificate issued by the CLI with a token bound to it', async () => {
      const { client, certPem } = await partner('gateway-partner')
      try {
        const token = await gw.issuer.mint({ x5t: thumbprint(certPem) })
        const response = await client.send('GET', '/accounts/1', [['authorization', `Bearer ${token}`]])
        assert.equal(response.status, 200, response.body)
        assert.equal(gw.upstream.received.at(-1)?.headers['x-fapi-gateway-cert-thumbprint'], thumbprint(certPem))
        const otherToken = await gw.issuer.mint({ x5t: thumbprint((await testPki()).partnerA.certPem) })
        const refused = await client.send('GET', '/accounts/1', [['authorization', `Bearer ${otherToken}`]])
        assert.equal(refused.status, 401)
        assert.equal(refused.json?.code, 'GW_CERT_BINDING_MISMATCH')
      } finally {
        await client.close()
      }
    })

    // Acceptance (issue 3).
    it('refuses a partner certificate issued and then revoked with the CLI within one CRL/OCSP refresh interval, without a restart', async () => {
      const { client, certPem, serial } = await partner('revoked-partner')
      try {
        const token = await gw.issuer.mint({ x5t: thumbprint(certPem) })
        const send = () => client.send('GET', '/accounts/1', [['authorization', `Bearer ${token}`]])
        assert.equal((await send()).status, 200)
        assert.equal((await ca('revoke', '--dir', caDir, '--serial', serial, '--reason', 'keyCompromise')).code, 0)
        // A cached "good" may be used until its nextUpdate; after one interval the gateway must ask again.
        await delay(nextUpdateSeconds * 1000 + 100)
        const refused = await send()
        assert.equal(refused.status, 401, refused.body)
        assert.equal(refused.json?.code, 'GW_CLIENT_CERT_REVOKED')
        assert.ok(
          gw.log.events().some((event) => event.event.action === 'cert.revoked' && event.tls?.client !== undefined),
          'a cert.revoked event',
        )
      } finally {
        await client.close()
      }
    })
  })
})
