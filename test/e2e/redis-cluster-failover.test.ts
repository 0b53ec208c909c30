// Redis Cluster as data holders run it: three masters with a replica each, two gateway processes,
// DPoP load over many tokens (so the claims spread over every master), then one master killed
// with SIGKILL (later another one frozen with SIGSTOP, like a host cut off) while the load goes on,
// and its replica promoted. Each proof goes to both gateways, some twice: whatever happens, no
// proof is accepted twice and no revoked token is accepted; while the slots are in the air the
// answer is 503 GW_REPLAY_STORE_UNAVAILABLE, and once the replica is in charge the same gateway
// processes answer 200 again.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { accessTokenHash, createPartnerClient, createProof, generateDpopKey, type DpopKey, type PartnerClient } from '../../src/client/partner-client.ts'
import { revokeThroughAdmin, spawnGateway, waitForReady, type GatewayProcess } from '../support/gateway-process.ts'
import { certThumbprint, startTestGateway, testPki, type TestGateway } from '../support/gateway.ts'
import { startRedisCluster, type RedisCluster } from '../support/redis.ts'

const PUBLIC_BASE_URL = 'https://api.bank.example'
const ADMIN_TOKEN = 'admin-secret'
const KEY_PREFIX = 'fapigw:'
/** cluster-node-timeout: a lost master is replaced after about twice this (failure detection, then the election). */
const NODE_TIMEOUT_MS = 1000
const COMMAND_TIMEOUT_MS = 500
const TOKENS = 48
const REVOKED_TOKENS = 12
const SENDERS = 4
/** Proofs answered before the master fails, and after the cluster is healthy again. */
const PROOFS_BEFORE_LOSS = 60
const PROOFS_AFTER_RECOVERY = 40

/** at: when the answer came; ms: how long it took. */
type Answer = { readonly status: number; readonly code: string | undefined; readonly at: number; readonly ms: number }
interface ProofRecord {
  readonly token: number
  readonly proof: string
  readonly answers: Answer[]
}

describe('Redis Cluster (3 masters, 3 replicas): a master lost under DPoP load', () => {
  let cluster: RedisCluster
  let gw: TestGateway
  let replicas: GatewayProcess[] = []
  let clients: PartnerClient[] = []
  /** With partner A's certificate, for certificate-bound Bearer tokens (their revocation is one EXISTS, not the claim script). */
  let mtlsClients: PartnerClient[] = []

  before(async () => {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1, nodeTimeoutMs: NODE_TIMEOUT_MS })
    gw = await startTestGateway({
      env: { FAPI_GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN },
      config: {
        listener: { publicBaseUrl: PUBLIC_BASE_URL },
        replay: { store: 'redis', redis: { cluster: cluster.addresses }, keyPrefix: KEY_PREFIX, commandTimeoutMs: COMMAND_TIMEOUT_MS },
      },
    })
    // One after the other: two processes compiling at once on a busy machine can outlast the start-up limit.
    for (let i = 0; i < 2; i++) replicas.push(await spawnGateway(gw.configFile, { FAPI_GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN }))
    const pki = await testPki()
    clients = replicas.map((g) => createPartnerClient({ baseUrl: `https://127.0.0.1:${g.port}`, caPem: pki.root.certPem }))
    const identity = { certPem: pki.partnerA.certPem.trimEnd() + '\n' + pki.intermediate.certPem, keyPem: pki.partnerA.keyPem }
    mtlsClients = replicas.map((g) => createPartnerClient({ baseUrl: `https://127.0.0.1:${g.port}`, caPem: pki.root.certPem, identity }))
  })
  after(async () => {
    await Promise.allSettled([...clients, ...mtlsClients].map((c) => c.close()))
    await Promise.allSettled(replicas.map((g) => g.stop()))
    await gw?.close()
    await cluster?.close()
  })

  it('a master killed (SIGKILL): no proof accepted twice, no revoked token accepted, 503 while its slots fail over, recovery without a restart', async () => {
    await loseAMaster('kill')
  })

  it('then another master frozen (SIGSTOP, answers nothing): the same', async () => {
    await loseAMaster('freeze')
  })

  async function loseAMaster(how: 'kill' | 'freeze'): Promise<void> {
    const pki = await testPki()
    const keys: DpopKey[] = await Promise.all([1, 2, 3, 4].map(() => generateDpopKey('ES256')))
    const mint = (i: number) => gw.issuer.mint({ jkt: keys[i % keys.length]!.jkt })
    const tokens = await Promise.all(Array.from({ length: TOKENS }, (_, i) => mint(i)))
    const revoked = await Promise.all(Array.from({ length: REVOKED_TOKENS }, (_, i) => mint(i)))
    const revokedBearer = await Promise.all(Array.from({ length: REVOKED_TOKENS / 2 }, () => gw.issuer.mint({ x5t: certThumbprint(pki.partnerA) })))
    for (const token of [...revoked, ...revokedBearer]) assert.equal(await revokeThroughAdmin(replicas[0]!.adminPort, token, ADMIN_TOKEN), 201)

    // The master to lose has a replica, holds revocations written through the gateway, and claims of the load.
    const ownerOf = (kind: 'revoked' | 'dpop', token: string) => cluster.masterFor(`${KEY_PREFIX}${kind}:{${accessTokenHash(token)}}`)
    const owners = async (kind: 'revoked' | 'dpop', list: readonly string[]) => {
      const ports: number[] = []
      for (const token of list) ports.push(await ownerOf(kind, token))
      return ports
    }
    let victim = Number.NaN
    let promoted: number | undefined
    for (let i = 0; promoted === undefined; i++) {
      victim = await ownerOf('revoked', revoked[i]!)
      promoted = await cluster.replicaOf(victim)
    }
    const loadOwners = await owners('dpop', tokens)
    assert.equal(new Set(loadOwners).size, 3, 'the load reaches every master')
    const revokedOnVictim = (await owners('revoked', [...revoked, ...revokedBearer])).filter((port) => port === victim).length
    // A token revoked the moment before the master dies: its key on that master, lost right after the 201.
    let revokedLast: { token: string; index: number } | undefined
    for (let index = 0; !revokedLast; index++) {
      const token = await mint(index)
      if ((await ownerOf('revoked', token)) === victim) revokedLast = { token, index }
    }

    const upstreamBefore = gw.upstream.received.length
    const pids = replicas.map((g) => g.child.pid)
    const proofs: ProofRecord[] = []
    const revokedAnswers: Answer[] = []
    let lostAt = Number.NaN
    let healthyAt = Number.NaN
    let answeredAfterRecovery = 0
    /** Set when the failover part fails, so the senders stop instead of waiting for a recovery that will not be seen. */
    let givenUp = false
    const warmedUp = Promise.withResolvers<void>()
    const now = () => performance.now()

    const ask = async (client: PartnerClient, headers: [string, string][]): Promise<Answer> => {
      const sent = now()
      const response = await client.send('GET', '/accounts/1', headers)
      return { status: response.status, code: response.json?.code as string | undefined, at: now(), ms: now() - sent }
    }
    const withProof = (client: PartnerClient, token: string, proof: string) =>
      ask(client, [
        ['authorization', `DPoP ${token}`],
        ['dpop', proof],
      ])
    const proofFor = (token: number, accessToken: string) =>
      createProof(keys[token % keys.length]!, { htm: 'GET', htu: `${PUBLIC_BASE_URL}/accounts/1`, accessToken })
    const askRevoked = async (n: number): Promise<Answer> => {
      const r = n % REVOKED_TOKENS
      if (n % 2 === 0) return withProof(clients[n % 4 === 0 ? 0 : 1]!, revoked[r]!, await proofFor(r, revoked[r]!))
      return ask(mtlsClients[n % 4 === 1 ? 0 : 1]!, [['authorization', `Bearer ${revokedBearer[r % revokedBearer.length]!}`]])
    }

    let sequence = 0
    const sender = async (): Promise<void> => {
      while (!givenUp && (Number.isNaN(healthyAt) || answeredAfterRecovery < PROOFS_AFTER_RECOVERY)) {
        const n = sequence++
        const token = n % TOKENS
        const record: ProofRecord = { token, proof: await proofFor(token, tokens[token]!), answers: [] }
        proofs.push(record)
        // To both replicas at once; every fourth proof a third time.
        const targets = n % 4 === 0 ? [clients[0]!, clients[1]!, clients[0]!] : [clients[0]!, clients[1]!]
        record.answers.push(...(await Promise.all(targets.map((client) => withProof(client, tokens[token]!, record.proof)))))
        if (!Number.isNaN(healthyAt) && record.answers[0]!.at > healthyAt) answeredAfterRecovery++
        if (proofs.filter((p) => p.answers.length > 0).length >= PROOFS_BEFORE_LOSS) warmedUp.resolve()
        if (n % 4 === 0) revokedAnswers.push(await askRevoked(n / 4))
      }
    }
    const loser = async (): Promise<void> => {
      try {
        await warmedUp.promise
        assert.equal(await revokeThroughAdmin(replicas[1]!.adminPort, revokedLast!.token, ADMIN_TOKEN), 201)
        lostAt = now()
        const node = cluster.nodes.find(({ port }) => port === victim)!
        if (how === 'kill') await node.kill()
        else node.freeze()
        await cluster.untilHealthy('the replica to take over')
        healthyAt = now()
      } catch (error) {
        givenUp = true
        throw error
      }
    }
    await Promise.all([loser(), ...Array.from({ length: SENDERS }, sender)])
    assert.equal(await ownerOf('revoked', revokedLast!.token), promoted, 'the replica took over')

    // Every proof accepted at any point is a replay now, on either replica: the claims survived the promotion.
    // A few at a time, and again after a 503 (a busy machine), until Redis has answered for each.
    const accepted = proofs.filter((p) => p.answers.some((a) => a.status === 200))
    const resent: Answer[] = []
    for (let i = 0; i < accepted.length; i += SENDERS) {
      const batch = accepted.slice(i, i + SENDERS)
      resent.push(...(await Promise.all(batch.map((p, j) => pastBusy503s(() => withProof(clients[(i + j) % 2]!, tokens[p.token]!, p.proof))))))
    }

    const answers = proofs.flatMap((p) => p.answers)
    // A 503 before the loss is possible too (a command slower than commandTimeoutMs on a busy machine): the window is the one after it.
    const unavailable = answers.filter((a) => a.status === 503 && a.at >= lostAt)
    const first503 = Math.min(...unavailable.map((a) => a.at))
    const last503 = Math.max(...unavailable.map((a) => a.at))
    const inWindow = answers.filter((a) => a.at >= first503 && a.at <= last503)
    const figures = {
      how,
      nodeTimeoutMs: NODE_TIMEOUT_MS,
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      proofs: proofs.length,
      requests: answers.length,
      doubleAcceptances: proofs.filter((p) => p.answers.filter((a) => a.status === 200).length > 1).length,
      resentAfterFailover: resent.length,
      acceptedAgainAfterFailover: resent.filter((a) => a.status === 200).length,
      acceptedInLast100msBeforeLoss: answers.filter((a) => a.status === 200 && a.at <= lostAt && a.at > lostAt - 100).length,
      answered503BeforeLoss: answers.filter((a) => a.status === 503 && a.at < lostAt).length,
      answered503: unavailable.length,
      answered503ForOtherMasters: unavailable.filter((a) => loadOwners[proofs.find((p) => p.answers.includes(a))!.token] !== victim).length,
      first503AfterLossMs: Math.round(first503 - lostAt),
      last503AfterLossMs: Math.round(last503 - lostAt),
      requestsIn503Window: inWindow.length,
      slowestAnswerMs: Math.round(Math.max(...answers.map((a) => a.ms))),
      clusterHealthySeenAfterLossMs: Math.round(healthyAt - lostAt),
      proofsRefusedAsReplayWithoutAcceptance: proofs.filter((p) => !p.answers.some((a) => a.status === 200) && p.answers.some((a) => a.status === 401)).length,
      answered503AfterRecovery: answers.filter((a) => a.status === 503 && a.at > healthyAt).length,
      revokedRequests: revokedAnswers.length,
      revokedAnswered503: revokedAnswers.filter((a) => a.status === 503).length,
      revokedOnLostMaster: revokedOnVictim + 1,
    }
    console.log(`cluster failover figures ${JSON.stringify(figures)}`)

    assert.equal(figures.doubleAcceptances, 0, 'no proof accepted twice')
    assert.equal(figures.acceptedAgainAfterFailover, 0, 'no claim lost in the promotion')
    assert.ok(
      resent.every((a) => a.status === 401 && a.code === 'GW_DPOP_REPLAY'),
      `resent: ${summary(resent)}`,
    )
    const is = (a: Answer, status: number, code?: string) => a.status === status && a.code === code
    const unexpected = answers.filter((a) => !(a.status === 200 || is(a, 401, 'GW_DPOP_REPLAY') || is(a, 503, 'GW_REPLAY_STORE_UNAVAILABLE')))
    assert.deepEqual(unexpected, [], 'only 200, 401 GW_DPOP_REPLAY (a proof seen before) and 503 GW_REPLAY_STORE_UNAVAILABLE')
    assert.ok(unavailable.length > 0, 'slots of the lost master are refused with 503 until its replica serves them')
    assert.ok(
      revokedAnswers.every((a) => is(a, 401, 'GW_TOKEN_REVOKED') || is(a, 503, 'GW_REPLAY_STORE_UNAVAILABLE')),
      `revoked tokens: ${summary(revokedAnswers)}`,
    )
    assert.equal(gw.upstream.received.length - upstreamBefore, answers.filter((a) => a.status === 200).length, 'only accepted requests reached the upstream')

    // Recovered, in the same processes: fresh proofs accepted on both replicas, revocations still in force.
    assert.deepEqual(
      replicas.map((g) => [g.child.pid, g.child.exitCode]),
      pids.map((pid) => [pid, null]),
      'no gateway restarted',
    )
    await Promise.all(replicas.map((g) => waitForReady(g.adminPort)))
    assert.ok(proofs.filter((p) => p.answers[0]!.at > healthyAt).length >= PROOFS_AFTER_RECOVERY, 'load went on after the recovery')
    // Every token whose claims lived on the lost master is served again by both replicas (again after a 503 from a busy machine).
    for (const [i, token] of tokens.entries()) {
      if (loadOwners[i] !== victim) continue
      for (const client of clients) {
        const answer = await pastBusy503s(async () => withProof(client, token, await proofFor(i, token)))
        assert.deepEqual(pick(answer), [200, undefined], `token ${i} after the failover`)
      }
    }
    for (const client of clients) {
      for (const [i, token] of revoked.entries()) {
        assert.deepEqual(pick(await withProof(client, token, await proofFor(i, token))), [401, 'GW_TOKEN_REVOKED'], `revoked token ${i} after the failover`)
      }
      const last: { token: string; index: number } = revokedLast!
      const answer = await withProof(client, last.token, await proofFor(last.index, last.token))
      assert.deepEqual(pick(answer), [401, 'GW_TOKEN_REVOKED'], 'revoked just before the loss')
    }
    for (const client of mtlsClients) {
      for (const token of revokedBearer) assert.deepEqual(pick(await ask(client, [['authorization', `Bearer ${token}`]])), [401, 'GW_TOKEN_REVOKED'])
    }
  }
})

/** Asks up to five times while the answer is 503: once the cluster is healthy, a 503 means a command slower than commandTimeoutMs. */
async function pastBusy503s(ask: () => Promise<Answer>): Promise<Answer> {
  let answer = await ask()
  for (let attempt = 1; answer.status === 503 && attempt < 5; attempt++) answer = await ask()
  return answer
}

function pick(answer: Answer): [number, string | undefined] {
  return [answer.status, answer.code]
}

function summary(answers: readonly Answer[]): string {
  const counts = new Map<string, number>()
  for (const { status, code } of answers) counts.set(`${status} ${code ?? ''}`, (counts.get(`${status} ${code ?? ''}`) ?? 0) + 1)
  return [...counts].map(([k, v]) => `${k}: ${v}`).join(', ')
}
