/**
 * Scale-out faults (issue 17, DECISIONS D-42): spawned `conclave serve` nodes on one PostgreSQL
 * database (a scratch database per test) and a `nats-server` of the suite's own on a free port (so
 * the machine's shared NATS is never disturbed and no other deployment's traffic mixes in).
 *
 * - SIGKILL of one of three nodes under publish load: 0 acknowledged messages lost or duplicated,
 *   per-channel seq gap-free, the dead node's sessions leave `who` within three heartbeat intervals
 *   (`--heartbeat-ms 1500` here, so the rule is held to the configured interval), its client reconnects to another node and fills the gap by seq.
 * - PostgreSQL unreachable (reset by a fault proxy): posts are refused `unavailable` with
 *   `retry_after_ms`, never acknowledged; `/health` answers 503; acks resume when it returns.
 * - PostgreSQL stopped and started under publish load (`pg_ctlcluster … stop|start` on a cluster of
 *   the test's own): refused `unavailable` while it is down, 0 acknowledged lost, nothing refused
 *   stored, acks resume on their own.
 * - NATS restarted under load: acks go on (the store holds the history), live fan-out resumes,
 *   subscribers fill the gap by seq: 0 acknowledged lost.
 *
 * Without PostgreSQL, `nats-server` or the built CLI the suite says so and is skipped (under
 * `CI=true`, it fails).
 */
import type { Frames, Names } from "@conclave/protocol"
import * as Kit from "@conclave/testkit"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Fiber, Option } from "effect"
import * as Http from "node:http"
import * as Backends from "../src/Backends.js"
import * as FaultProxy from "../src/FaultProxy.js"
import * as PgCluster from "../src/PgCluster.js"
import * as Processes from "../src/Processes.js"
import * as Report from "../src/Report.js"

// A short heartbeat (`serve --heartbeat-ms`): the dead node must leave `who` within three of the
// configured intervals, not of the 5 s default.
const HEARTBEAT_MS = 1500

const missing = Backends.missing()

const rows: Array<Report.Row> = []

const scratchDatabase = Backends.scratchDatabase
const freePort = Backends.freePort
const natsServer = Backends.natsServer

const node = (store: string, nats: string, id: string, prefix = "conclave") =>
  Processes.spawnServer("", {
    store,
    extraArgs: [
      "--broker",
      nats,
      "--node-id",
      id,
      "--admin",
      "root",
      "--heartbeat-ms",
      String(HEARTBEAT_MS),
      "--nats-prefix",
      prefix
    ]
  })

const keyOf = (p: Names.SessionPath) => `${p.user}/${p.machine}/${p.session}`

const whoKeys = (s: Kit.Session) =>
  Effect.flatMap(
    s.request({ type: "who", channel: null }),
    (r) => Effect.sync(() => Kit.expectType(r, "presence").sessions.map(keyOf))
  )

const httpStatus = (port: number, path: string) =>
  Effect.async<number>((resume) => {
    Http.get({ host: "127.0.0.1", port, path }, (res) => {
      res.resume()
      resume(Effect.succeed(res.statusCode ?? 0))
    }).on("error", () => resume(Effect.succeed(0)))
  })

/** Post flat out from `s` until `stop`; every acknowledged seq → its text. */
const publishUntil = (s: Kit.Session, tag: string, acked: Map<number, string>, stop: Deferred.Deferred<void>) =>
  Effect.gen(function*() {
    for (let i = 0; !(yield* Deferred.isDone(stop)); i++) {
      const text = `${tag}-${i}`
      const reply = yield* Effect.either(
        s.request({ type: "channel_msg", channel: "load", payload: Kit.plain(text), reply_to: null }, "10 seconds")
      )
      if (reply._tag === "Left") return
      if (reply.right.type === "ack" && reply.right.seq !== null) acked.set(reply.right.seq, text)
    }
  }).pipe(Effect.fork)

/** Every message of `load` after `since`, by seq (paging), as seq → text. */
const readAll = (s: Kit.Session, since: number) =>
  Effect.gen(function*() {
    const seen = new Map<number, string>()
    let after = since
    for (;;) {
      const page = Kit.expectType(
        yield* s.request({ type: "read_since", channel: "load", since_seq: after, since_ms: null }),
        "history"
      )
      for (const m of page.messages) {
        if (seen.has(m.seq)) return yield* Effect.dieMessage(`duplicate seq ${m.seq}`)
        seen.set(m.seq, m.payload.kind === "plain" ? m.payload.text : "")
        after = m.seq
      }
      if (!page.more) return seen
    }
  })

const assertComplete = (acked: ReadonlyMap<number, string>, stored: ReadonlyMap<number, string>, what: string) => {
  for (const [seq, text] of acked) assert.strictEqual(stored.get(seq), text, `${what}: acknowledged seq ${seq} lost`)
  const seqs = [...stored.keys()].sort((a, b) => a - b)
  seqs.forEach((seq, i) => assert.strictEqual(seq, i + 1, `${what}: per-channel seq has a gap before ${seq}`))
  assert.strictEqual(new Set(stored.values()).size, stored.size, `${what}: a message was stored twice`)
}

const suite = missing.length === 0 ? describe : describe.skip
if (missing.length > 0) {
  if (process.env["CI"] === "true") {
    describe("scale-out faults", () => {
      it("its backends are present (required under CI=true)", () => {
        assert.fail(missing.join("; "))
      })
    })
  } else {
    console.log(`skipped: ${missing.join("; ")}`)
  }
}

suite("scale-out faults", () => {
  afterAll(() => Effect.runPromise(Report.record("scale-out", "Scale-out: three nodes on PostgreSQL + NATS", rows)))

  it.live(
    "SIGKILL of one of three nodes under publish load: 0 acknowledged lost, its sessions leave who within three heartbeats, its client fills the gap elsewhere",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const store = yield* scratchDatabase
        const nats = `nats://127.0.0.1:${yield* freePort}`
        yield* natsServer(Number(new URL(nats).port))
        const n1 = yield* node(store, nats, "n1")
        const n2 = yield* node(store, nats, "n2")
        const n3 = yield* node(store, nats, "n3")
        const root = yield* Kit.register(n1.url, "root")
        Kit.expectType(
          yield* root.request(Kit.op({ kind: "create_channel", name: "load", visibility: "public" })),
          "ack"
        )
        const pubs = [
          yield* Kit.register(n1.url, "p1"),
          yield* Kit.register(n2.url, "p2"),
          yield* Kit.register(n3.url, "p3")
        ]
        const sub = yield* Kit.register(n3.url, "sub")
        for (const s of [...pubs, sub]) {
          Kit.expectType(yield* s.request({ type: "join", channel: "load", token: null }), "joined")
        }
        let lastSeen = 0
        sub.onFrame = (frame) => {
          if (frame.type === "channel_msg") {
            lastSeen = Math.max(lastSeen, frame.seq)
          }
        }
        yield* Kit.eventually(
          "n1 to see the sessions of n3",
          Effect.map(whoKeys(root), (keys) => keys.includes(sub.key) ? Option.some(keys) : Option.none()),
          "10 seconds"
        )

        const acked = new Map<number, string>()
        const stop = yield* Deferred.make<void>()
        const fibers = yield* Effect.forEach(pubs, (s, i) => publishUntil(s, `p${i + 1}`, acked, stop))
        yield* Effect.sleep("700 millis")
        yield* Processes.kill9(n3)
        const killedAt = yield* Clock.currentTimeMillis
        yield* Deferred.await(n3.exited).pipe(Effect.timeout("5 seconds"))
        yield* Effect.sleep("500 millis")
        yield* Deferred.succeed(stop, undefined)
        yield* Effect.forEach(fibers, Fiber.join, { discard: true })

        yield* Kit.eventually(
          "n3's sessions to leave who on n1",
          Effect.map(whoKeys(root), (keys) =>
            keys.includes(sub.key) || keys.includes(pubs[2]!.key) ? Option.none() : Option.some(keys)),
          "20 seconds",
          "100 millis"
        )
        const goneAfter = (yield* Clock.currentTimeMillis) - killedAt

        // the subscriber reconnects to n2 and fills its gap by seq
        const back = yield* Kit.connect(n2.url, { identity: sub.identity, handle: sub.path.session })
        Kit.expectType(yield* back.request({ type: "join", channel: "load", token: null }), "joined")
        const missed = yield* readAll(back, lastSeen)
        const stored = yield* readAll(back, 0)
        assertComplete(acked, stored, "after the SIGKILL")
        for (const [seq, text] of missed) {
          assert.strictEqual(stored.get(seq), text)
        }
        assert.isAtMost(goneAfter, 3 * HEARTBEAT_MS, `n3's sessions left who after ${goneAfter} ms`)
        rows.push({
          test: "SIGKILL of one of three `conclave serve` nodes (PostgreSQL + NATS) under publish load from every node",
          figure:
            `${acked.size} acknowledged, 0 lost, 0 duplicates, seq gap-free 1..${stored.size}; the dead node's sessions left who after ${goneAfter} ms; its subscriber reconnected to another node and read the ${missed.size} it missed`,
          target: `0 acknowledged lost; gone from who within 3 heartbeats (--heartbeat-ms ${HEARTBEAT_MS}: ${
            3 * HEARTBEAT_MS
          } ms)`,
          checks: [
            Report.atMost("gone from who", goneAfter, 3 * HEARTBEAT_MS, " ms"),
            Report.holds("every acknowledged message present once", true)
          ]
        })
      })),
    120_000
  )

  it.live(
    "--nats-prefix keeps two deployments on one NATS apart: each node sees the sessions of its own deployment only",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const store = yield* scratchDatabase
        const nats = `nats://127.0.0.1:${yield* freePort}`
        yield* natsServer(Number(new URL(nats).port))
        const a1 = yield* node(store, nats, "a1", "team.a")
        const a2 = yield* node(store, nats, "a2", "team.a")
        const b1 = yield* node(store, nats, "b1", "team.b")
        const root = yield* Kit.register(a1.url, "root")
        const other = yield* Kit.register(b1.url, "other")
        const mate = yield* Kit.register(a2.url, "mate")
        yield* Kit.eventually(
          "a1 to see the session on a2",
          Effect.map(whoKeys(root), (keys) => keys.includes(mate.key) ? Option.some(keys) : Option.none()),
          "10 seconds"
        )
        // An absence: give team.b's node two leases' time to (wrongly) reach a1.
        yield* Effect.sleep(`${2 * HEARTBEAT_MS} millis`)
        const seenOnA = yield* whoKeys(root)
        const seenOnB = yield* whoKeys(other)
        assert.notInclude(seenOnA, other.key, "a session of team.b leaked into team.a's who")
        assert.notInclude(seenOnB, mate.key, "a session of team.a leaked into team.b's who")
        assert.include(seenOnB, other.key)
      })),
    120_000
  )

  it.live(
    "PostgreSQL unreachable: posts are refused `unavailable` with retry_after_ms, never acknowledged; /health 503; acks resume when it returns",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const store = new URL(yield* scratchDatabase)
        const proxy = yield* FaultProxy.make({ host: store.hostname, port: Number(store.port || 5432) })
        store.host = `127.0.0.1:${proxy.port}`
        const n1 = yield* Processes.spawnServer("", { store: store.toString(), extraArgs: ["--admin", "root"] })
        const root = yield* Kit.register(n1.url, "root")
        Kit.expectType(
          yield* root.request(Kit.op({ kind: "create_channel", name: "load", visibility: "public" })),
          "ack"
        )
        Kit.expectType(yield* root.request({ type: "join", channel: "load", token: null }), "joined")
        const post = (text: string) =>
          root.request(
            { type: "channel_msg", channel: "load", payload: Kit.plain(text), reply_to: null },
            "30 seconds"
          )
        const before = Kit.expectType(yield* post("before"), "ack")

        proxy.setMode(FaultProxy.Modes.rst)
        const refusals: Array<Frames.ServerFrame> = []
        for (let i = 0; i < 5; i++) refusals.push(yield* post(`during-${i}`))
        for (const r of refusals) {
          assert.strictEqual(r.type, "error", `never an ack while the store is unreachable: ${JSON.stringify(r)}`)
          if (r.type === "error") {
            assert.strictEqual(r.error.kind, "unavailable")
            assert.isAbove((r.error as { readonly retry_after_ms?: number }).retry_after_ms ?? 0, 0)
          }
        }
        yield* Kit.eventually(
          "/health to answer 503",
          Effect.map(httpStatus(n1.port, "/health"), (code) => code === 503 ? Option.some(code) : Option.none()),
          "15 seconds",
          "200 millis"
        )

        proxy.setMode(FaultProxy.Modes.pass)
        const after = yield* Kit.eventually(
          "posts to be acknowledged again",
          Effect.map(post("after"), (r) => r.type === "ack" ? Option.some(r) : Option.none()),
          "30 seconds",
          "200 millis"
        )
        assert.strictEqual(after.seq, before.seq! + 1, "nothing refused was stored")
        const stored = yield* readAll(root, 0)
        assert.deepStrictEqual([...stored.values()], ["before", "after"])
        rows.push({
          test: "PostgreSQL reset under a node (fault proxy, every connection RST)",
          figure:
            "5/5 posts refused `unavailable` with retry_after_ms, 0 false acks, /health 503, acks resumed when it returned, nothing refused was stored",
          target: "never a false ack; automatic recovery",
          checks: [Report.holds("0 false acks, recovery", true)]
        })
      })),
    120_000
  )

  const pgClusterMissing = PgCluster.missing()
  // Without the tools (or root) the test says so and is skipped; under CI=true it fails instead.
  const withPgCluster = (name: string, body: Parameters<typeof it.live>[1], timeout: number): void => {
    if (pgClusterMissing.length === 0 || process.env["CI"] === "true") return void it.live(name, body, timeout)
    console.log(`skipped: pg_ctlcluster stop|start (${pgClusterMissing.join("; ")})`)
    it.skip(name, () => {})
  }
  withPgCluster(
    "PostgreSQL stopped and started with pg_ctlcluster under publish load: refused `unavailable` while down, 0 acknowledged lost, acks resume",
    () =>
      Effect.scoped(Effect.gen(function*() {
        if (pgClusterMissing.length > 0) return assert.fail(pgClusterMissing.join("; "))
        const cluster = yield* PgCluster.make
        const n1 = yield* Processes.spawnServer("", { store: cluster.url, extraArgs: ["--admin", "root"] })
        const root = yield* Kit.register(n1.url, "root")
        Kit.expectType(
          yield* root.request(Kit.op({ kind: "create_channel", name: "load", visibility: "public" })),
          "ack"
        )
        Kit.expectType(yield* root.request({ type: "join", channel: "load", token: null }), "joined")
        const acked = new Map<number, string>()
        const refused = new Set<string>()
        const wrongRefusals: Array<string> = []
        const stop = yield* Deferred.make<void>()
        const publisher = yield* Effect.fork(Effect.gen(function*() {
          for (let i = 0; !(yield* Deferred.isDone(stop)); i++) {
            const text = `pg-${i}`
            const reply = yield* root.request(
              { type: "channel_msg", channel: "load", payload: Kit.plain(text), reply_to: null },
              "30 seconds"
            )
            if (reply.type === "ack" && reply.seq !== null) acked.set(reply.seq, text)
            else {
              refused.add(text)
              const retry = reply.type === "error"
                ? (reply.error as { readonly retry_after_ms?: number }).retry_after_ms
                : 0
              if (reply.type !== "error" || reply.error.kind !== "unavailable" || (retry ?? 0) <= 0) {
                wrongRefusals.push(JSON.stringify(reply))
              }
              // a client told to retry later waits a little
              yield* Effect.sleep("50 millis")
            }
          }
        }))
        yield* Kit.eventually(
          "posts to be acknowledged before the stop",
          Effect.sync(() => acked.size >= 20 ? Option.some(acked.size) : Option.none()),
          "20 seconds",
          "50 millis"
        )
        const stoppedAt = yield* Clock.currentTimeMillis
        yield* cluster.stop
        const ackedBefore = acked.size
        yield* Kit.eventually(
          "posts to be refused while PostgreSQL is stopped",
          Effect.sync(() => refused.size >= 5 ? Option.some(refused.size) : Option.none()),
          "30 seconds",
          "50 millis"
        )
        yield* Kit.eventually(
          "/health to answer 503",
          Effect.map(httpStatus(n1.port, "/health"), (code) => code === 503 ? Option.some(code) : Option.none()),
          "15 seconds",
          "200 millis"
        )
        yield* cluster.start
        const startedAt = yield* Clock.currentTimeMillis
        const ackedAtStart = acked.size
        const resumed = yield* Kit.eventually(
          "acks to resume after the start",
          Effect.flatMap(
            Clock.currentTimeMillis,
            (now) => Effect.sync(() => acked.size >= ackedAtStart + 20 ? Option.some(now) : Option.none())
          ),
          "60 seconds",
          "50 millis"
        )
        yield* Kit.eventually(
          "/health to answer 200 again",
          Effect.map(httpStatus(n1.port, "/health"), (code) => code === 200 ? Option.some(code) : Option.none()),
          "15 seconds",
          "200 millis"
        )
        yield* Deferred.succeed(stop, undefined)
        yield* Fiber.join(publisher)
        const stored = yield* readAll(root, 0)
        assertComplete(acked, stored, "after pg_ctlcluster stop|start")
        const storedTexts = new Set(stored.values())
        const refusedButStored = [...refused].filter((t) => storedTexts.has(t))
        assert.deepStrictEqual(refusedButStored, [], "a refused post was stored (a false refusal)")
        assert.deepStrictEqual(
          wrongRefusals,
          [],
          "every refusal while PostgreSQL was down is `unavailable` with retry_after_ms"
        )
        assert.isAbove(acked.size, ackedBefore, "acks resumed")
        rows.push({
          test:
            "PostgreSQL stopped and started under publish load (`pg_ctlcluster` stop, then start, on a cluster of the test's own)",
          figure:
            `${acked.size} acknowledged (${ackedBefore} before the stop), ${refused.size} refused \`unavailable\` with retry_after_ms while down, 0 lost, 0 duplicates, 0 refused posts stored; /health 503 while down, 200 after; acks resumed ${
              resumed - startedAt
            } ms after the start (stopped for ${startedAt - stoppedAt} ms)`,
          target: "never a false ack; automatic recovery",
          checks: [Report.holds("0 lost, 0 false refusals, recovery", true)]
        })
      })),
    180_000
  )

  it.live(
    "NATS restarted under load: acks go on, live fan-out resumes, the subscriber fills the gap by seq",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const store = yield* scratchDatabase
        const port = yield* freePort
        const nats = `nats://127.0.0.1:${port}`
        const first = yield* natsServer(port)
        const n1 = yield* node(store, nats, "n1")
        const n2 = yield* node(store, nats, "n2")
        const root = yield* Kit.register(n1.url, "root")
        Kit.expectType(
          yield* root.request(Kit.op({ kind: "create_channel", name: "load", visibility: "public" })),
          "ack"
        )
        const pub = yield* Kit.register(n1.url, "pub")
        const sub = yield* Kit.register(n2.url, "sub")
        for (const s of [pub, sub]) {
          Kit.expectType(yield* s.request({ type: "join", channel: "load", token: null }), "joined")
        }
        const live = new Map<number, string>()
        sub.onFrame = (frame) => {
          if (frame.type === "channel_msg" && frame.payload.kind === "plain") {
            live.set(frame.seq, frame.payload.text)
          }
        }
        const acked = new Map<number, string>()
        const stop = yield* Deferred.make<void>()
        const fiber = yield* publishUntil(pub, "pub", acked, stop)
        yield* Effect.sleep("500 millis")
        yield* Processes.kill9(first)
        yield* Deferred.await(first.exited)
        const duringStart = acked.size
        yield* Effect.sleep("1 second")
        const ackedWhileDown = acked.size - duringStart
        yield* natsServer(port)
        const resumedFrom = Math.max(0, ...acked.keys())
        yield* Kit.eventually(
          "live fan-out to resume on n2",
          Effect.sync(() => [...live.keys()].some((seq) => seq > resumedFrom) ? Option.some(true) : Option.none()),
          "30 seconds",
          "100 millis"
        )
        yield* Deferred.succeed(stop, undefined)
        yield* Fiber.join(fiber)
        const stored = yield* readAll(sub, 0)
        assertComplete(acked, stored, "after the NATS restart")
        assert.isAbove(ackedWhileDown, 0, "posts were acknowledged while NATS was down (the store holds them)")
        rows.push({
          test: "NATS killed and restarted under publish load (publisher on node 1, subscriber on node 2)",
          figure:
            `${acked.size} acknowledged (${ackedWhileDown} while NATS was down), 0 lost, 0 duplicates; live fan-out resumed; ${live.size} delivered live, the rest read by seq`,
          target: "0 acknowledged lost; fan-out resumes",
          checks: [Report.atLeast("acknowledged while NATS was down", ackedWhileDown, 1)]
        })
      })),
    120_000
  )
})
