/**
 * Bad input (BENCH-AND-RELIABILITY §6.3): malformed WebSocket frames, oversized frames and
 * schema-wrong JSON, each while a health probe receives a channel at 10 msg/s with 0 loss.
 */
import { Codec, Validate } from "@conclave/protocol"
import * as Kit from "@conclave/testkit"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Either, Option } from "effect"
import * as Fs from "node:fs"
import * as HealthProbe from "../src/HealthProbe.js"
import * as JsonFuzz from "../src/JsonFuzz.js"
import * as Prng from "../src/Prng.js"
import * as Profile from "../src/Profile.js"
import * as RawWs from "../src/RawWs.js"
import * as Report from "../src/Report.js"

const range = (n: number) => Array.from({ length: n }, (_, i) => i)
const rows: Array<Report.Row> = []
const notes: Array<string> = []
const MAX_FRAME = 64 * 1024

/**
 * Wait for the server's close frame (or the socket ending), bounded: woken by each chunk the server
 * sends and by the socket's end, never by a timer. `ms` is how long it took.
 */
const awaitClose = (conn: RawWs.RawConn, withinMs: number) =>
  Effect.async<number | undefined>((resume) => {
    let done = false
    const finish = (code: number | undefined) => {
      if (done) return
      done = true
      conn.socket.off("data", onData)
      resume(Effect.succeed(code))
    }
    // RawWs's own listener (registered first) has appended the chunk by the time this one runs.
    const onData = () => {
      const code = RawWs.closeCodeIn(conn.received())
      if (code !== undefined) finish(code)
    }
    conn.socket.on("data", onData)
    void conn.ended.then(() => finish(RawWs.closeCodeIn(conn.received())))
    onData()
    return Effect.sync(() => {
      done = true
      conn.socket.off("data", onData)
    })
  }).pipe(
    Effect.timeoutOption(withinMs),
    Effect.timed,
    Effect.map(([took, got]) =>
      Option.isNone(got)
        ? { code: undefined, ms: Infinity }
        : { code: got.value, ms: Duration.toMillis(took) }
    )
  )

/** Sockets open in this process (server and clients both live here). */
const ownSockets = () =>
  Fs.readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return Fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith("socket:")
    } catch {
      return false
    }
  }).length

const signed = (n: number) => (n < 0 ? `${n}` : `+${n}`)

describe("bad input", () => {
  it.live(
    "malformed WebSocket frames are closed with 1002/1007/1009 within 1 s; the probe sees 0 loss",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* Kit.startServer({ ...Kit.noLimits, maxFrameBytes: MAX_FRAME, maxPendingPerIp: 0 })
        const probe = yield* HealthProbe.start(server.url)
        const n = Profile.count(300, 100_000)
        const base = Prng.make(Profile.seed ^ 0x1001)
        const wrong: Array<string> = []
        let slow = 0
        let checked = 0
        yield* Effect.forEach(range(n), (i) =>
          Effect.scoped(Effect.gen(function*() {
            const c = RawWs.malformed(base.fork(i), MAX_FRAME)
            const conn = yield* Effect.acquireRelease(
              RawWs.upgrade(server.port),
              (conn) => Effect.sync(() => conn.socket.destroy())
            )
            conn.socket.write(c.bytes)
            if (c.expect.length === 0) {
              yield* awaitClose(conn, 100)
              return
            }
            checked++
            const { code, ms } = yield* awaitClose(conn, 1000)
            if (code === undefined || !c.expect.includes(code)) {
              if (wrong.length < 20) wrong.push(`${c.name}: got ${code ?? "no close"} want ${c.expect.join("/")}`)
              else wrong.push("")
            } else if (ms > 1000) slow++
          })), { concurrency: Profile.count(16, 32), discard: true })
        const result = yield* probe.stop
        const crashes = yield* HealthProbe.crashes(server.port)
        rows.push({
          test: "malformed WebSocket frames (pre-auth, raw TCP)",
          figure:
            `${n} tried (${checked} with a required close code), ${crashes} crashes, ${wrong.length} wrong close codes, ${slow} slower than 1 s; ${
              HealthProbe.describe(result)
            }`,
          target: "≥ 100 000 tried, 0 crashes, closed 1002/1007/1009 within 1 s, probe 0 loss",
          checks: [
            Report.atLeast("tried", n, 100_000),
            Report.equals("crashes", crashes, 0),
            Report.equals("wrong close codes", wrong.length, 0),
            Report.equals("slower than 1 s", slow, 0),
            Report.equals("probe lost", result.lost, 0)
          ]
        })
        assert.deepStrictEqual(wrong.slice(0, 20), [], "wrong close codes")
        assert.strictEqual(slow, 0)
        assert.strictEqual(result.lost, 0, HealthProbe.describe(result))
        assert.isAbove(result.acked, 0)
      })),
    1_800_000
  )

  it.live(
    "oversized frames (declared maxPayload+1) are closed with 1009 and memory returns to baseline",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* Kit.startServer({ ...Kit.noLimits, maxFrameBytes: MAX_FRAME, maxPendingPerIp: 0 })
        const probe = yield* HealthProbe.start(server.url)
        const n = Profile.count(50, 1_000)
        global.gc?.()
        const rss0 = process.memoryUsage().rss
        const sockets0 = ownSockets()
        const conns = yield* Effect.forEach(range(n), () => RawWs.upgrade(server.port), { concurrency: 50 })
        // Every connection declares maxPayload+1 and starts streaming the body, concurrently.
        for (const conn of conns) {
          conn.socket.write(RawWs.frame({ opcode: 2, declaredLength: BigInt(MAX_FRAME + 1) }))
          conn.socket.write(Buffer.alloc(MAX_FRAME / 2))
        }
        const results = yield* Effect.forEach(conns, (conn) => awaitClose(conn, 3000), { concurrency: "unbounded" })
        const peak = process.memoryUsage().rss
        for (const conn of conns) conn.socket.destroy()
        const bad = results.filter((r) => r.code !== 1009).length
        // The server has let go of every socket (the process's sockets are back to where they were)
        // before the "after" figure is taken.
        yield* Kit.eventually(
          `the server to close the ${n} oversized connections (sockets back to ${sockets0})`,
          Effect.sync(() => (ownSockets() <= sockets0 ? Option.some(true) : Option.none())),
          "15 seconds",
          "20 millis"
        )
        global.gc?.()
        const rss1 = process.memoryUsage().rss
        const result = yield* probe.stop
        const growthMb = Math.round(((peak - rss0) / 1048576) * 10) / 10
        const crashes = yield* HealthProbe.crashes(server.port)
        rows.push({
          test: `oversized frames, ${n} concurrent (maxPayload ${MAX_FRAME} B)`,
          figure: `${n} tried, ${crashes} crashes, ${bad} not closed with 1009; transient RSS ${
            signed(growthMb)
          } MiB (bound ${Math.round((n * MAX_FRAME) / 1048576)} MiB), after ${
            signed(Math.round(((rss1 - rss0) / 1048576) * 10) / 10)
          } MiB; ${HealthProbe.describe(result)}`,
          target: "1 000 tried, 0 crashes, close 1009, RSS ≤ 1 000 × maxPayload transient",
          checks: [
            Report.atLeast("tried", n, 1000),
            Report.equals("crashes", crashes, 0),
            Report.equals("not closed with 1009", bad, 0),
            Report.atMost(
              "transient RSS growth",
              growthMb,
              Math.round((n * MAX_FRAME + 64 * 1048576) / 1048576),
              " MiB"
            ),
            Report.equals("probe lost", result.lost, 0)
          ]
        })
        assert.strictEqual(bad, 0, "every oversized frame is answered with 1009")
        assert.isAtMost(peak - rss0, n * MAX_FRAME + 64 * 1048576)
        assert.strictEqual(result.lost, 0, HealthProbe.describe(result))
      })),
    300_000
  )

  it.live(
    "schema-wrong JSON after auth: a reply for every message, 0 crashes, state unchanged",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const server = yield* Kit.startServer({ ...Kit.noLimits, maxPendingPerIp: 0 })
        const probe = yield* HealthProbe.start(server.url, { name: "jprobe" })
        const admin = yield* Kit.register(server.url, "fz-owner")
        yield* Kit.keepAlive(admin)
        yield* admin.request(Kit.op({ kind: "create_channel", name: "fz", visibility: "private" }))
        yield* admin.request(Kit.op({ kind: "acl_add", channel: "fz", user: "someone" }))
        const snapshot = Effect.gen(function*() {
          const list = yield* admin.request({ type: "list_channels" })
          const acl = yield* admin.request(Kit.op({ kind: "acl_list", channel: "fz" }))
          const machines = yield* admin.request({ type: "list_machines" })
          const strip = (f: unknown) => JSON.stringify(f, (k, v) => (k === "id" ? undefined : v))
          const channels = list.type === "channel_list"
            ? list.channels.filter((c) => c.name === "fz") // fuzzed valid frames may create their own channels
            : list
          return strip({ channels, acl, machines })
        })
        const before = yield* snapshot
        const n = Profile.count(250, 100_000)
        const workers = Profile.count(4, 8)
        const per = Math.ceil(n / workers)
        const base = Prng.make(Profile.seed ^ 0x2002)
        let tried = 0
        let unanswered = 0
        let closes = 0
        let closesWithoutError = 0
        let handshakes = 0
        const problems: Array<string> = []
        yield* Effect.forEach(range(workers), (w) =>
          Effect.gen(function*() {
            const identity = Kit.newIdentity()
            let registered = false
            let k = 0
            while (k < per) {
              yield* Effect.scoped(Effect.gen(function*() {
                const s = yield* Kit.connect(server.url, {
                  identity,
                  handle: `h${w}`,
                  ...(registered ? {} : { register: { username: `fuzz${w}`, machine: "box" } })
                })
                registered = true
                handshakes++
                while (k < per) {
                  const c = JsonFuzz.next(base.fork(w * 1_000_003 + k), k % 50 === 49)
                  k++
                  tried++
                  yield* s.send(c.data)
                  const reply = yield* Effect.raceFirst(
                    Effect.map(s.next("10 seconds"), Option.some),
                    Effect.as(s.closed, Option.none())
                  ).pipe(Effect.either)
                  if (reply._tag === "Left") {
                    unanswered++
                    if (problems.length < 10) problems.push(`no answer to ${c.name}`)
                    return
                  }
                  if (Option.isNone(reply.right)) {
                    closes++
                    closesWithoutError++
                    return
                  }
                  const frame = reply.right.value
                  if (frame.type === "error" && s.ws.readyState !== s.ws.OPEN) {
                    closes++
                    return
                  }
                  if (frame.type === "error") {
                    // Undecodable → error then close (D-8); otherwise the session stays: a ping tells which.
                    yield* s.send({ type: "ping" })
                    const after: Option.Option<"alive" | number> = yield* Effect.raceFirst(
                      Effect.as(s.next("10 seconds"), "alive" as const),
                      Effect.map(s.closed, (c) => c.code)
                    ).pipe(Effect.option)
                    if (Option.isNone(after)) {
                      unanswered++
                      if (problems.length < 10) problems.push(`no answer after ${c.name}`)
                      return
                    }
                    if (typeof after.value === "number") {
                      closes++
                      if (after.value !== 1008 && problems.length < 10) problems.push(`${c.name}: close ${after.value}`)
                      return
                    }
                  }
                }
              }))
            }
          }), { concurrency: "unbounded", discard: true })
        const after = yield* snapshot
        const result = yield* probe.stop
        const crashes = yield* HealthProbe.crashes(server.port)
        rows.push({
          test: "schema-wrong JSON after auth",
          figure:
            `${tried} tried over ${handshakes} sessions, ${crashes} crashes, ${unanswered} unanswered, ${closes} closes (${closesWithoutError} without an error frame), state ${
              before === after ? "unchanged" : "CHANGED"
            }; ${HealthProbe.describe(result)}`,
          target: "≥ 100 000 tried, 0 crashes, 0 state corruption, error reply per message",
          checks: [
            Report.atLeast("tried", tried, 100_000),
            Report.equals("crashes", crashes, 0),
            Report.equals("unanswered", unanswered, 0),
            Report.equals("closes without an error frame", closesWithoutError, 0),
            Report.holds("state unchanged", before === after),
            Report.equals("probe lost", result.lost, 0)
          ]
        })
        notes.push(
          "The server closes the connection (1008, after a `malformed_frame` error, D-8) on the first undecodable frame, so the \"disconnect after ≥ 10 protocol errors\" target is met trivially; frames that decode but are semantically wrong get an error reply and the session stays."
        )
        assert.deepStrictEqual(problems, [])
        assert.strictEqual(unanswered, 0)
        assert.strictEqual(closesWithoutError, 0, "every close is preceded by a malformed_frame error")
        assert.strictEqual(after, before, "no state change from fuzzed frames")
        assert.strictEqual(result.lost, 0, HealthProbe.describe(result))
      })),
    900_000
  )

  it("schema-wrong JSON at the decoder edge: never throws, never yields an invalid frame", () => {
    const n = Profile.count(5_000, 100_000)
    const rng = Prng.make(Profile.seed ^ 0x2112)
    let decoded = 0
    let refused = 0
    const thrown: Array<string> = []
    for (let i = 0; i < n; i++) {
      const c = JsonFuzz.next(rng.fork(i), i % 500 === 499)
      try {
        const r = Codec.decodeClientFrame(c.data)
        if (Either.isLeft(r)) refused++
        else {
          decoded++
          Validate.validateClientFrame(r.right)
        }
      } catch (e) {
        if (thrown.length < 5) thrown.push(`${c.name}: ${String(e).slice(0, 100)}`)
        else thrown.push("")
      }
    }
    rows.push({
      test: "schema-wrong JSON at the server's decoder edge (`Codec.decodeClientFrame` + `Validate`, in-process)",
      figure:
        `${n} tried, ${thrown.length} threw, ${refused} refused as undecodable, ${decoded} decoded (then validated)`,
      target: "≥ 100 000 tried, 0 crashes",
      checks: [Report.atLeast("tried", n, 100_000), Report.equals("threw", thrown.length, 0)]
    })
    assert.deepStrictEqual(thrown.slice(0, 5), [])
  })

  afterAll(() => Effect.runPromise(Report.record("bad-input", "Bad input: frames, sizes, schema", rows, notes)))
})
