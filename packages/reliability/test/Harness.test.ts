/**
 * The harness itself: the fault proxy's modes against a TCP echo server, the seeded generator, the
 * report writer's splicing, and the soak's option parsing (fed wrong values).
 */
import * as Kit from "@conclave/testkit"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import * as Net from "node:net"
import * as FaultProxy from "../src/FaultProxy.js"
import * as Prng from "../src/Prng.js"
import * as Report from "../src/Report.js"
import { parseDuration, parseOptions } from "../src/soak.js"

const echoServer = Effect.acquireRelease(
  Effect.async<{ readonly server: Net.Server; readonly port: number; readonly ends: Array<string> }>((resume) => {
    const ends: Array<string> = []
    const server = Net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.on("error", (e) => ends.push(`error:${(e as { readonly code?: string }).code}`))
      socket.on("end", () => {
        ends.push("end")
        socket.end()
      })
      socket.on("data", (d) => socket.write(d))
    })
    server.listen(
      0,
      "127.0.0.1",
      () => resume(Effect.succeed({ server, port: (server.address() as Net.AddressInfo).port, ends }))
    )
  }),
  ({ server }) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
)

interface Dialed {
  readonly socket: Net.Socket
  readonly received: () => number
  readonly events: Array<string>
}

const dial = (port: number) =>
  Effect.async<Dialed>((resume) => {
    let got = 0
    const events: Array<string> = []
    const socket = Net.connect({ host: "127.0.0.1", port }, () =>
      resume(Effect.succeed({ socket, received: () => got, events })))
    socket.on("data", (d) => {
      got += d.length
    })
    socket.on("end", () =>
      events.push("end"))
    socket.on("error", (e) => events.push(`error:${(e as { readonly code?: string }).code}`))
    socket.on("close", () => events.push("close"))
  })

/** Whether `pred` comes to hold within `ms` (checked every 10 ms). */
const until = (pred: () => boolean, ms: number) =>
  Kit.eventually("a condition", pred, Duration.millis(ms), "10 millis").pipe(
    Effect.as(true),
    Effect.orElseSucceed(() => pred())
  )

describe("harness", () => {
  it.live("fault proxy: pass, delay, throttle, blackhole (no FIN), RST, half-close", () =>
    Effect.scoped(Effect.gen(function*() {
      const echo = yield* echoServer
      const proxy = yield* FaultProxy.make({ host: "127.0.0.1", port: echo.port })
      // pass
      const a = yield* dial(proxy.port)
      a.socket.write(Buffer.alloc(1000))
      assert.isTrue(yield* until(() => a.received() === 1000, 2000), "pass echoes")
      // delay: 300 ms each way
      proxy.setMode(FaultProxy.Modes.delay(300))
      const t0 = performance.now()
      a.socket.write(Buffer.alloc(10))
      assert.isTrue(yield* until(() => a.received() === 1010, 3000))
      assert.isAtLeast(performance.now() - t0, 550, "delayed both ways")
      // throttle: 20 kB/s, 10 kB takes ≥ ~0.4 s one way
      proxy.setMode(FaultProxy.Modes.throttle(20_000))
      const t1 = performance.now()
      a.socket.write(Buffer.alloc(10_000))
      assert.isTrue(yield* until(() => a.received() === 11_010, 5000))
      assert.isAtLeast(performance.now() - t1, 400, "throttled")
      // blackhole: nothing passes and nobody is told. The proxy takes the 100 bytes (its socket has
      // read them); then, passing again, a 7-byte marker is the only thing echoed after them.
      proxy.setMode(FaultProxy.Modes.blackhole)
      const pairA = proxy.pairs()[0]!
      a.socket.write(Buffer.alloc(100))
      assert.isTrue(yield* until(() => pairA.client.bytesRead === 11_110, 2000), "the proxy took the 100 bytes")
      proxy.setMode(FaultProxy.Modes.pass)
      a.socket.write(Buffer.alloc(7))
      assert.isTrue(yield* until(() => a.received() >= 11_017, 2000), "the marker is echoed")
      assert.strictEqual(a.received(), 11_017, "the blackholed bytes never reached the server")
      assert.deepStrictEqual(a.events, [], "the client was told nothing")
      assert.deepStrictEqual(echo.ends, [], "the server saw no FIN")
      // RST on a per-connection override
      proxy.setMode(FaultProxy.Modes.pass)
      const b = yield* dial(proxy.port)
      const pair = proxy.pairs().at(-1)!
      proxy.setPairMode(pair, FaultProxy.Modes.rst)
      assert.isTrue(yield* until(() => b.events.includes("close"), 2000))
      assert.isTrue(b.events.some((e) => e === "error:ECONNRESET"), b.events.join(","))
      // half-close: the server gets a FIN from the proxy
      const c = yield* dial(proxy.port)
      const before = echo.ends.filter((e) => e === "end").length
      proxy.setPairMode(proxy.pairs().at(-1)!, FaultProxy.Modes.halfClose)
      assert.isTrue(yield* until(() => echo.ends.filter((e) => e === "end").length > before, 2000), "server saw FIN")
      a.socket.destroy()
      c.socket.destroy()
    })))

  it("the generator is deterministic per seed", () => {
    const x = Prng.make(42)
    const y = Prng.make(42)
    const z = Prng.make(43)
    const xs = Array.from({ length: 10 }, () => x.int(0, 1e9))
    assert.deepStrictEqual(xs, Array.from({ length: 10 }, () => y.int(0, 1e9)))
    assert.notDeepEqual(xs, Array.from({ length: 10 }, () => z.int(0, 1e9)))
    assert.deepStrictEqual(Prng.make(1).fork(5).bytes(8), Prng.make(1).fork(5).bytes(8))
  })

  it("the report writer replaces its own section and appends new ones", () => {
    const one = Report.render("a", "A", [{
      test: "t",
      figure: "1 tried",
      target: "x",
      checks: [Report.atLeast("tried", 1, 1)]
    }], [])
    const two = Report.render("a", "A", [{
      test: "t",
      figure: "2 tried",
      target: "x",
      checks: [Report.atLeast("tried", 2, 1), Report.atMost("restart", 1255, 1000, " ms")]
    }], ["n"])
    const doc = Report.splice("# R\n\nintro\n", "a", one)
    assert.include(doc, "1 tried")
    const doc2 = Report.splice(Report.splice(doc, "b", "<!-- BEGIN b -->B<!-- END b -->"), "a", two)
    assert.notInclude(doc2, "1 tried")
    assert.include(doc2, "2 tried")
    assert.include(doc2, "| **no**: restart 1255 ms (target ≤ 1000 ms) |")
    assert.include(doc2, "<!-- BEGIN b -->B<!-- END b -->")
    assert.strictEqual(doc2.split("<!-- BEGIN a -->").length, 2)
  })

  it.effect("a report is stamped with the wall clock, not the TestClock it may run under", () =>
    Effect.gen(function*() {
      const stamped = yield* Report.wallClockMillis
      // it.effect's TestClock starts at 0 (1970); a report from this run must say 2026 or later
      assert.isAtLeast(new Date(stamped).getUTCFullYear(), 2026)
    }))

  it("soak options: defaults, durations, and wrong values refused", () => {
    const d = parseOptions([])
    assert.isObject(d)
    if (typeof d === "object") {
      assert.strictEqual(d.durationMs, 600_000)
      assert.strictEqual(d.warmupMs, 150_000)
    }
    assert.strictEqual(parseDuration("2m"), 120_000)
    assert.strictEqual(parseDuration("90"), 90_000)
    assert.strictEqual(parseDuration("1h"), 3_600_000)
    assert.isUndefined(parseDuration("two minutes"))
    assert.isString(parseOptions(["--duration", "5s"]))
    assert.isString(parseOptions(["--duration", "abc"]))
    assert.isString(parseOptions(["--rate", "-3"]))
    assert.isString(parseOptions(["--subscribers", "x"]))
    assert.isString(parseOptions(["--warmup", "20m", "--duration", "10m"]))
    assert.isString(parseOptions(["--bogus"]))
    const ok = parseOptions(["--duration", "2m", "--rate", "50", "--report"])
    assert.deepInclude(ok, { durationMs: 120_000, rate: 50, report: true, warmupMs: 30_000, serverHeapMb: 192 })
    assert.isString(parseOptions(["--server-heap-mb", "8"]))
  })
})

describe("Report: the met column is computed", () => {
  it("a row is met only when every check passes; a missed one names its figure; a skipped row says why", () => {
    const row = (checks: ReadonlyArray<Report.Check>, skipped?: string): Report.Row => ({
      test: "t",
      figure: "f",
      target: "x",
      checks,
      ...(skipped === undefined ? {} : { skipped })
    })
    assert.strictEqual(Report.metCell(row([Report.atMost("restart", 999, 1000, " ms")])), "yes")
    assert.strictEqual(
      Report.metCell(row([Report.atLeast("attempts/s", 1466, 2000), Report.equals("crashes", 0, 0)])),
      "**no**: attempts/s 1466 (target ≥ 2000)"
    )
    assert.strictEqual(
      Report.metCell(row([Report.holds("state unchanged", false)])),
      "**no**: state unchanged: does not hold"
    )
    assert.strictEqual(Report.metCell(row([], "mount not permitted")), "skipped: mount not permitted")
    assert.isFalse(Report.met(row([], "mount not permitted")))
    assert.isTrue(Report.met(row([Report.equals("crashes", 0, 0)])))
  })
})
