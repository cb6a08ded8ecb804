/**
 * Network and process faults (BENCH-AND-RELIABILITY §6.3): half-open / blackholed / reset clients
 * through the fault proxy (0 ghost presences after the reaper window), reconnect + read_since
 * (0 gaps, 0 duplicates after dedupe), a SIGSTOPped slow consumer (dropped, the others lose
 * nothing), and the store on a tiny tmpfs until it is full (0 false acks, recovery).
 */
import { Auth } from "@conclave/protocol"
import * as Kit from "@conclave/testkit"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Option, Scope } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as FaultProxy from "../src/FaultProxy.js"
import * as HealthProbe from "../src/HealthProbe.js"
import * as Integrity from "../src/Integrity.js"
import * as Prng from "../src/Prng.js"
import * as Processes from "../src/Processes.js"
import * as Profile from "../src/Profile.js"
import * as Report from "../src/Report.js"

const rows: Array<Report.Row> = []
const notes: Array<string> = []

/** Whether this machine lets the suite mount a tmpfs (the disk-full test needs one). */
const tmpfsMountable = (): boolean => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "conclave-mount-probe-"))
  try {
    const ok = ChildProcess.spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir]).status === 0
    if (ok) ChildProcess.spawnSync("umount", ["-l", dir])
    return ok
  } finally {
    Fs.rmSync(dir, { recursive: true, force: true })
  }
}

const MOUNT_REASON = "`mount -t tmpfs` is not permitted here"

/**
 * The disk-full test runs where a tmpfs can be mounted. Elsewhere it is reported skipped with its
 * reason, except under `CI=true` (this project's CI machines, where root can mount): there it fails.
 */
const diskFull = (name: string, body: Parameters<typeof it.live>[1], timeout: number): void => {
  if (tmpfsMountable()) return void it.live(name, body, timeout)
  if (process.env["CI"] === "true") {
    return void it(name, () => assert.fail(`${MOUNT_REASON}: the disk-full test must run under CI=true`))
  }
  rows.push({
    test: "disk full: SQLite on a 4 MiB tmpfs, ~1 MiB left, 8 KB posts",
    figure: "not measured",
    target: "0 crashes, 0 false acks, recovers when space is freed",
    checks: [],
    skipped: MOUNT_REASON
  })
  it.skip(`${name} (skipped: ${MOUNT_REASON})`, () => {})
}
const range = (n: number) => Array.from({ length: n }, (_, i) => i)

describe("faults", () => {
  it.live(
    "half-open, blackholed and reset clients leave 0 ghost presences after the reaper window",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const idleMs = 1000
        const reaperMs = 200
        const server = yield* Kit.startServer({
          ...Kit.noLimits,
          idleTimeout: Duration.millis(idleMs),
          reaperInterval: Duration.millis(reaperMs),
          maxPendingPerIp: 0
        })
        const port = Number(new URL(server.url).port)
        const proxy = yield* FaultProxy.make({ host: "127.0.0.1", port })
        const rng = Prng.make(Profile.seed ^ 0x5005)
        const observer = yield* Kit.register(server.url, "observer")
        yield* observer.request(Kit.op({ kind: "create_channel", name: "ghosts", visibility: "public" }))
        const keepObserver = yield* Effect.forever(Effect.zipRight(
          Effect.sleep("250 millis"),
          observer.send({ type: "ping" })
        )).pipe(Effect.forkScoped)
        const sessionsN = Profile.count(10, 100)
        const rounds = Profile.count(2, 10)
        const perRound = Profile.count(5, 100)
        const identities = range(sessionsN).map(() => Kit.newIdentity())
        interface Live {
          readonly key: string
          readonly close: Effect.Effect<void>
          readonly pair: FaultProxy.Pair
        }
        const live = new Map<number, Live>()
        let gen = 0
        const registered = new Set<number>()
        // Each live session has its own scope so it can be abandoned (blackhole) or closed.
        const start = (i: number) =>
          Effect.gen(function*() {
            const handle = `s${i}-g${gen++}`
            const scope = yield* Scope.make()
            // a TCP proxy in front: the client names the server's authority, as it would its public URL
            const s = yield* Kit.connect(proxy.url, {
              host: Auth.authorityOf(server.url)!,
              identity: identities[i]!,
              handle,
              ...(registered.has(i) ? {} : { register: { username: `u${i}`, machine: "m" } })
            }).pipe(Scope.extend(scope))
            registered.add(i)
            const pair = proxy.pairs().at(-1)!
            Kit.expectType(yield* s.request({ type: "join", channel: "ghosts", token: null }), "joined")
            const pinger = yield* Effect.forever(Effect.zipRight(
              Effect.sleep("250 millis"),
              s.send({ type: "ping" })
            )).pipe(Effect.forkDaemon)
            live.set(i, {
              key: s.key,
              pair,
              close: Effect.zipRight(Fiber.interrupt(pinger), Scope.close(scope, Exit.void))
            })
          })
        yield* Effect.forEach(range(sessionsN), start, { discard: true })
        let events = 0
        let ghosts = 0
        let falseEvictions = 0
        const tally = new Map<string, number>()
        for (let r = 0; r < rounds; r++) {
          const victims = new Set<number>()
          while (victims.size < Math.min(perRound, sessionsN)) victims.add(rng.int(0, sessionsN - 1))
          for (const i of victims) {
            const v = live.get(i)!
            const fault = rng.pick(["blackhole", "rst", "halfClose"] as const)
            tally.set(fault, (tally.get(fault) ?? 0) + 1)
            events++
            proxy.setPairMode(v.pair, FaultProxy.Modes[fault])
            // The client process "dies" with the network: no more pings, socket abandoned.
            yield* v.close
            live.delete(i)
          }
          // Replace the victims with fresh sessions (new handles: ghosts cannot be superseded away).
          yield* Effect.forEach([...victims], start, { discard: true })
          // Presence must match the live sessions within the reaper window: poll until it does (or the
          // window ends), then count what still differs.
          const truth = new Set([...live.values()].map((l) => l.key))
          const presence = observer.request({ type: "who", channel: "ghosts" }).pipe(
            Effect.map((r) =>
              new Set(Kit.expectType(r, "presence").sessions.map((p) => `${p.user}/${p.machine}/${p.session}`))
            )
          )
          const settled = (present: ReadonlySet<string>) =>
            present.size === truth.size && [...present].every((k) => truth.has(k))
          yield* Kit.eventually(
            "presence to match the live sessions",
            Effect.map(presence, (p) => settled(p) ? Option.some(p) : Option.none()),
            Duration.millis(idleMs + 2 * reaperMs + 400),
            "100 millis"
          ).pipe(Effect.ignore)
          const present = yield* presence
          ghosts += [...present].filter((k) => !truth.has(k)).length
          falseEvictions += [...truth].filter((k) => !present.has(k)).length
        }
        yield* Fiber.interrupt(keepObserver)
        for (const l of live.values()) yield* l.close
        const crashes = yield* HealthProbe.crashes(server.port)
        rows.push({
          test:
            `half-open / blackhole / RST / half-close via the fault proxy (${sessionsN} sessions, idle ${idleMs} ms)`,
          figure: `${events} events (${
            [...tally.entries()].map(([k, v]) => `${k} ${v}`).join(", ")
          }), ${crashes} crashes, ${ghosts} ghost presences and ${falseEvictions} false evictions after the reaper window`,
          target: "≥ 1 000 events across 100 sessions, 0 ghost presences",
          checks: [
            Report.atLeast("events", events, 1000),
            Report.equals("crashes", crashes, 0),
            Report.equals("ghost presences", ghosts, 0),
            Report.equals("false evictions", falseEvictions, 0)
          ]
        })
        assert.strictEqual(ghosts, 0, "ghost presences")
        assert.strictEqual(falseEvictions, 0, "live sessions evicted")
      })),
    600_000
  )

  it.live(
    "reconnect + read_since after drops: 0 gaps, 0 duplicates after dedupe by seq",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* Kit.startServer({ ...Kit.noLimits, maxPendingPerIp: 0 })
        const port = Number(new URL(server.url).port)
        const proxy = yield* FaultProxy.make({ host: "127.0.0.1", port })
        const rng = Prng.make(Profile.seed ^ 0x6006)
        const cycles = Profile.count(20, 1000)
        const pub = yield* Kit.register(server.url, "rpub")
        yield* pub.request(Kit.op({ kind: "create_channel", name: "replay", visibility: "public" }))
        Kit.expectType(yield* pub.request({ type: "join", channel: "replay", token: null }), "joined")
        const acked = new Set<number>()
        let publishing = true
        const publisher = yield* Effect.gen(function*() {
          let i = 0
          while (publishing) {
            const r = yield* pub.request({ type: "channel_msg", channel: "replay", payload: Kit.plain(`m${i++}`) })
            if (r.type === "ack" && r.seq !== null) acked.add(r.seq)
            if (i % 20 === 0) yield* Effect.sleep("1 millis")
          }
        }).pipe(Effect.forkScoped)
        const identity = Kit.newIdentity()
        const seen = new Set<number>()
        let rawDuplicates = 0
        let lastSeq = 0
        let historyRows = 0
        const record = (seq: number) => {
          if (seen.has(seq)) rawDuplicates++
          else seen.add(seq)
          if (seq > lastSeq) lastSeq = seq
        }
        let registered = false
        for (let c = 0; c <= cycles; c++) {
          yield* Effect.scoped(Effect.gen(function*() {
            const s = yield* Kit.connect(proxy.url, {
              host: Auth.authorityOf(server.url)!,
              identity,
              handle: "rsub",
              ...(registered ? {} : { register: { username: "rsub", machine: "m" } })
            })
            registered = true
            const pair = proxy.pairs().at(-1)!
            const since = lastSeq
            s.onFrame = (f) => {
              if (f.type === "channel_msg" && f.seq !== null) record(f.seq)
            }
            Kit.expectType(yield* s.request({ type: "join", channel: "replay", token: null }), "joined")
            let cursor = since
            for (;;) {
              const page = Kit.expectType(
                yield* s.request({ type: "read_since", channel: "replay", since_seq: cursor }),
                "history"
              )
              for (const m of page.messages) {
                historyRows++
                record(m.seq)
                cursor = m.seq
              }
              if (!page.more) break
            }
            if (c === cycles) return
            yield* Effect.sleep(Duration.millis(rng.int(5, 60)))
            proxy.setPairMode(pair, rng.chance(0.5) ? FaultProxy.Modes.rst : FaultProxy.Modes.halfClose)
            yield* s.closed.pipe(Effect.timeout("5 seconds"), Effect.ignore)
          }))
        }
        publishing = false
        yield* Fiber.join(publisher)
        // A last catch-up after the publisher stopped.
        yield* Effect.scoped(Effect.gen(function*() {
          const s = yield* Kit.connect(server.url, { identity, handle: "rsub-final" })
          Kit.expectType(yield* s.request({ type: "join", channel: "replay", token: null }), "joined")
          let cursor = lastSeq
          for (;;) {
            const page = Kit.expectType(
              yield* s.request({ type: "read_since", channel: "replay", since_seq: cursor }),
              "history"
            )
            for (const m of page.messages) {
              record(m.seq)
              cursor = m.seq
            }
            if (!page.more) break
          }
        }))
        const gaps = [...acked].filter((seq) => !seen.has(seq)).length
        const phantom = [...seen].filter((seq) => !acked.has(seq)).length
        const crashes = yield* HealthProbe.crashes(server.port)
        rows.push({
          test: "reconnect + read_since (RST / half-close drops via the proxy)",
          figure:
            `${cycles} reconnect cycles, ${acked.size} acknowledged, ${crashes} crashes, ${gaps} gaps, 0 duplicates after dedupe (${rawDuplicates} overlapping live/history rows deduped, ${historyRows} history rows read), ${phantom} unacknowledged seqs seen`,
          target: "1 000 cycles, 0 gaps, 0 duplicates",
          checks: [
            Report.atLeast("cycles", cycles, 1000),
            Report.equals("crashes", crashes, 0),
            Report.equals("gaps", gaps, 0),
            Report.equals("unacknowledged seqs seen", phantom, 0)
          ]
        })
        assert.strictEqual(gaps, 0, "every acknowledged seq was received live or from history")
        assert.strictEqual(phantom, 0)
        assert.isAbove(acked.size, cycles)
      })),
    900_000
  )

  it.live(
    "a SIGSTOPped subscriber is dropped as a slow consumer while the others lose nothing",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* Kit.startServer({ ...Kit.noLimits, maxPendingPerIp: 0 })
        const others = Profile.count(5, 99)
        const body = "x".repeat(Profile.count(4096, 1024))
        const pub = yield* Kit.register(server.url, "spub")
        yield* pub.request(Kit.op({ kind: "create_channel", name: "firehose", visibility: "public" }))
        Kit.expectType(yield* pub.request({ type: "join", channel: "firehose", token: null }), "joined")
        const received = range(others).map(() => new Set<number>())
        yield* Effect.forEach(range(others), (i) =>
          Effect.gen(function*() {
            const s = yield* Kit.register(server.url, `good${i}`)
            s.onFrame = (f) => {
              if (f.type === "channel_msg" && f.seq !== null) received[i]!.add(f.seq)
            }
            Kit.expectType(yield* s.request({ type: "join", channel: "firehose", token: null }), "joined")
            yield* Kit.keepAlive(s)
          }), { concurrency: 8, discard: true })
        const seed = Buffer.from(Kit.newIdentity().seed).toString("hex")
        const child = yield* Processes.spawn(process.execPath, [
          Path.join(import.meta.dirname, "fixtures", "subscriber.mjs"),
          server.url,
          "sloth",
          "zzz",
          "firehose",
          seed,
          "1"
        ])
        yield* Kit.eventually(
          "the child subscriber to join",
          Effect.sync(() => (child.stdoutLines.includes("ready") ? Option.some(true) : Option.none())),
          "15 seconds"
        )
        const slothIn = Effect.map(
          pub.request({ type: "who", channel: "firehose" }),
          (p) => p.type === "presence" && p.sessions.some((x) => x.user === "sloth")
        )
        assert.isTrue(yield* slothIn)
        yield* Processes.stop(child)
        const acked = new Set<number>()
        const t0 = performance.now()
        let droppedAfterMs = -1
        let sent = 0
        // Publish flat out until the stopped consumer is gone (bounded), then a little more.
        while (performance.now() - t0 < 60_000) {
          const r = yield* pub.request({
            type: "channel_msg",
            channel: "firehose",
            payload: Kit.plain(`${sent++}${body}`)
          })
          if (r.type === "ack" && r.seq !== null) acked.add(r.seq)
          if (sent % 100 === 0) {
            if (!(yield* slothIn)) {
              droppedAfterMs = Math.round(performance.now() - t0)
              break
            }
          }
        }
        for (let i = 0; i < 100; i++) {
          const r = yield* pub.request({ type: "channel_msg", channel: "firehose", payload: Kit.plain(`tail${i}`) })
          if (r.type === "ack" && r.seq !== null) acked.add(r.seq)
        }
        // Fan-out keeps order: once every other subscriber has the last acknowledged post, whatever it
        // has not got by then is lost (bounded wait, not a silence window).
        const last = Math.max(...acked)
        yield* Kit.eventually(
          "every other subscriber to receive the last acknowledged post",
          Effect.sync(() => received.every((got) => got.has(last)) ? Option.some(true) : Option.none()),
          "10 seconds"
        ).pipe(Effect.ignore)
        const lost = received.map((got) => [...acked].filter((seq) => !got.has(seq)).length)
        const totalLost = lost.reduce((a, b) => a + b, 0)
        yield* Processes.resume(child)
        const closedLine = yield* Kit.eventually(
          "the child to report its close",
          Effect.sync(() => Option.fromNullable(child.stdoutLines.find((l) => l.startsWith("closed")))),
          "15 seconds"
        ).pipe(Effect.orElseSucceed(() => "closed ? (no report)"))
        const crashes = yield* HealthProbe.crashes(server.port)
        rows.push({
          test: `slow consumer: 1 SIGSTOPped subscriber among ${others + 1} (${body.length} B bodies, flat out)`,
          figure:
            `${sent} published; the stopped consumer was dropped after ${droppedAfterMs} ms (child saw: \`${closedLine}\`); the ${others} others: ${totalLost} lost; ${crashes} crashes`,
          target: "dropped with the slow-consumer reason; the others 0 loss",
          checks: [
            Report.atLeast("other subscribers", others, 99),
            Report.holds("the stopped consumer was dropped", droppedAfterMs >= 0),
            Report.equals("lost by the others", totalLost, 0),
            Report.equals("crashes", crashes, 0)
          ]
        })
        notes.push(
          "The slow-consumer kill's error frame sits behind the consumer's backlog (GAPS G-26), so a resumed consumer may see only the close; the server-side reason is asserted through presence and the kill path."
        )
        assert.isAtLeast(droppedAfterMs, 0, "the stopped consumer was dropped")
        assert.strictEqual(totalLost, 0, `loss per subscriber: ${lost.join(",")}`)
      })),
    600_000
  )

  diskFull(
    "the store on a full tmpfs: 0 false acks, 0 crashes, recovery when space returns",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const dir = yield* Kit.tempDir("conclave-full-")
        if (ChildProcess.spawnSync("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", dir]).status !== 0) {
          return yield* Effect.dieMessage("mount -t tmpfs failed although the probe could mount one")
        }
        yield* Effect.addFinalizer(() => Effect.sync(() => ChildProcess.spawnSync("umount", ["-l", dir])))
        const server = yield* Kit.startServer({ ...Kit.noLimits, maxPendingPerIp: 0 }, dir)
        const pub = yield* Kit.register(server.url, "dpub")
        const sub = yield* Kit.register(server.url, "dsub")
        yield* pub.request(Kit.op({ kind: "create_channel", name: "disk", visibility: "public" }))
        Kit.expectType(yield* pub.request({ type: "join", channel: "disk", token: null }), "joined")
        Kit.expectType(yield* sub.request({ type: "join", channel: "disk", token: null }), "joined")
        const delivered = new Map<number, string>()
        sub.onFrame = (f) => {
          if (f.type === "channel_msg" && f.seq !== null && f.payload.kind === "plain") {
            delivered.set(f.seq, f.payload.text)
          }
        }
        // Leave ~1 MiB free: a filler file we delete later to give the space back.
        const filler = Path.join(dir, "filler")
        const free = () => {
          const st = Fs.statfsSync(dir)
          return st.bavail * st.bsize
        }
        Fs.writeFileSync(filler, Buffer.alloc(Math.max(0, free() - 1024 * 1024)))
        const acked = new Map<number, string>()
        let errors = 0
        let firstError = ""
        let sent = 0
        const body = "d".repeat(8000)
        while (errors < 40 && sent < 5000) {
          const text = `${sent++}:${body}`
          const r = yield* pub.request({ type: "channel_msg", channel: "disk", payload: Kit.plain(text) })
          if (r.type === "ack" && r.seq !== null) acked.set(r.seq, text)
          else if (r.type === "error") {
            errors++
            if (firstError === "") firstError = `${r.error.kind}: ${"message" in r.error ? r.error.message : ""}`
          }
        }
        const fullAt = acked.size
        Fs.rmSync(filler)
        let recovered = 0
        for (let i = 0; i < 20; i++) {
          const text = `after${i}:${body}`
          const r = yield* pub.request({ type: "channel_msg", channel: "disk", payload: Kit.plain(text) })
          if (r.type === "ack" && r.seq !== null) {
            acked.set(r.seq, text)
            recovered++
          }
        }
        // Every acknowledged message is readable; nothing unacknowledged was delivered.
        const stored = new Map<number, string>()
        let cursor = 0
        for (;;) {
          const page = Kit.expectType(
            yield* pub.request({ type: "read_since", channel: "disk", since_seq: cursor }),
            "history"
          )
          for (const m of page.messages) {
            stored.set(m.seq, m.payload.kind === "plain" ? m.payload.text : "")
            cursor = m.seq
          }
          if (!page.more) break
        }
        const falseAcks = [...acked].filter(([seq, text]) => stored.get(seq) !== text).length
        const phantomDeliveries = [...delivered].filter(([seq, text]) => acked.get(seq) !== text).length
        const health = yield* Effect.tryPromise(() =>
          fetch(`http://127.0.0.1:${server.port}/health`).then((r) => r.text())
        )
        const crashes = health === "ok" ? 0 : 1
        rows.push({
          test: "disk full: SQLite on a 4 MiB tmpfs, ~1 MiB left, 8 KB posts",
          figure:
            `${sent} posts: ${fullAt} acknowledged before the disk filled, then ${errors} refused (first: \`${firstError}\`), ${crashes} crashes, ${falseAcks} false acks, ${phantomDeliveries} unacknowledged deliveries; after freeing space ${recovered}/20 acknowledged; /health ${health}`,
          target: "0 crashes, 0 false acks, recovers when space is freed",
          checks: [
            Report.atLeast("refused once full", errors, 1),
            Report.equals("crashes", crashes, 0),
            Report.equals("false acks", falseAcks, 0),
            Report.equals("unacknowledged deliveries", phantomDeliveries, 0),
            Report.equals("acknowledged after freeing space", recovered, 20)
          ]
        })
        assert.isAbove(errors, 0, "the disk filled")
        assert.strictEqual(falseAcks, 0)
        assert.strictEqual(phantomDeliveries, 0)
        assert.strictEqual(recovered, 20)
        assert.strictEqual(health, "ok")
        const integrity = yield* Integrity.integrityCheck(server.dbFile)
        assert.strictEqual(integrity, "ok")
      })),
    300_000
  )

  afterAll(() => Effect.runPromise(Report.record("faults", "Faults: network, slow consumers, disk", rows, notes)))
})
