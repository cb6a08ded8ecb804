/**
 * The soak's option parsing, its growth arithmetic and the heap probe it preloads into the server
 * (a real `node` child: SIGUSR2 → two `gc()` → `process.memoryUsage()` written atomically).
 */
import { Codec } from "@conclave/protocol"
import * as Kit from "@conclave/testkit"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as HeapProbe from "../src/HeapProbe.js"
import * as Processes from "../src/Processes.js"
import * as Soak from "../src/soak.js"

// Prints "ready" once the preload (which runs before the script) has installed its handler.
const keepAlive = "console.log('ready'); setInterval(() => {}, 1000)"

const spawnNode = (nodeArgs: ReadonlyArray<string>, env: Record<string, string>, script = keepAlive) =>
  Effect.gen(function*() {
    const child = yield* Processes.spawn(process.execPath, [...nodeArgs, "-e", script], { env })
    yield* Kit.eventually(
      () => `the child to be ready; stderr: ${child.stderr()}`,
      () => child.stdoutLines.includes("ready"),
      "10 seconds",
      "20 millis"
    )
    return child
  })

describe("soak options", () => {
  it("defaults", () => {
    const o = Soak.parseOptions([])
    assert.deepStrictEqual(o, {
      durationMs: 600_000,
      rate: 200,
      subscribers: 50,
      churnPerMin: 60,
      warmupMs: 150_000,
      serverHeapMb: 192,
      nodes: 1,
      report: false
    })
  })

  it("parses durations and numbers", () => {
    const o = Soak.parseOptions(["--duration", "90s", "--warmup", "30s", "--rate", "50", "--subscribers", "20"])
    assert(typeof o !== "string")
    assert.strictEqual(o.durationMs, 90_000)
    assert.strictEqual(o.warmupMs, 30_000)
    assert.strictEqual(o.rate, 50)
    assert.strictEqual(o.subscribers, 20)
    assert.strictEqual(Soak.parseDuration("1h"), 3_600_000)
    assert.strictEqual(Soak.parseDuration("250ms"), 250)
  })

  it("refuses wrong options", () => {
    assert.strictEqual(Soak.parseOptions(["--bogus"]), "unknown option --bogus")
    assert.match(String(Soak.parseOptions(["--duration", "5s"])), /--duration/)
    assert.match(String(Soak.parseOptions(["--duration", "soon"])), /--duration/)
    assert.match(String(Soak.parseOptions(["--duration", "1m", "--warmup", "1m"])), /--warmup/)
    assert.match(String(Soak.parseOptions(["--rate", "-3"])), /--rate/)
    assert.match(String(Soak.parseOptions(["--server-heap-mb", "8"])), /--server-heap-mb/)
    assert.match(String(Soak.parseOptions(["--nodes", "0"])), /--nodes/)
    assert.match(String(Soak.parseOptions(["--nodes", "2.5"])), /--nodes/)
    assert.match(String(Soak.parseOptions(["--nodes", "three"])), /--nodes/)
  })

  it("growth in percent", () => {
    assert.strictEqual(Soak.growthPct(100, 105), 5)
    assert.strictEqual(Soak.growthPct(200, 190), -5)
    assert.strictEqual(Soak.growthPct(3, 4), 33.3)
    assert.strictEqual(Soak.growthPct(0, 10), 0)
  })
})

describe("soak RSS windows", () => {
  const sample = (atMs: number, rss: ReadonlyArray<number>) => ({ atMs, rss, fds: rss.map(() => 10) })

  it("compares the last samples before the warm-up's forced GC with the last of the run", () => {
    const samples = [
      sample(0, [90, 50]),
      sample(5_000, [100, 60]),
      sample(10_000, [101, 61]),
      sample(15_000, [99, 59]),
      // the warm-up's heap sample at 20 s forced two full GCs: V8 gave back committed heap
      sample(20_000, [70, 40]),
      sample(25_000, [71, 41]),
      sample(30_000, [72, 42]),
      sample(35_000, [104, 60]),
      sample(40_000, [103, 62]),
      sample(45_000, [102, 61])
    ]
    const w = Soak.rssWindows(samples, 20_000, 2)
    assert.deepStrictEqual(w, [{ warm: 100, end: 103 }, { warm: 60, end: 61 }])
    // the trough right after the forced GC is not the baseline (it would read +45 % on node 1)
    assert.strictEqual(Soak.growthPct(w[0]!.warm, w[0]!.end), 3)
  })

  it("takes the first samples when none came before the warm-up's heap sample", () => {
    const w = Soak.rssWindows([sample(0, [80]), sample(5_000, [82]), sample(10_000, [81]), sample(15_000, [90])], 0, 1)
    assert.deepStrictEqual(w, [{ warm: 81, end: 82 }])
  })

  it("a real growth still shows", () => {
    const samples = Array.from({ length: 20 }, (_, i) => sample(i * 5_000, [100 + i * 2]))
    const [w] = Soak.rssWindows(samples, 50_000, 1)
    assert.isAbove(Soak.growthPct(w!.warm, w!.end), 5)
  })
})

describe("soak delivery counting", () => {
  it("SeqSet keeps distinct seqs across growth", () => {
    const set = new Soak.SeqSet()
    for (const seq of [1, 2, 2, 7, 8, 9000, 1_800_000]) set.add(seq)
    assert.strictEqual(set.size, 6)
    for (const seq of [1, 2, 7, 8, 9000, 1_800_000]) assert.isTrue(set.has(seq), `has ${seq}`)
    for (const seq of [0, 3, 8999, 1_799_999, 5_000_000, -1, 1.5]) assert.isFalse(set.has(seq), `not ${seq}`)
    set.add(-4)
    set.add(2.5)
    assert.strictEqual(set.size, 6)
  })

  it("reads seq from the server's own channel_msg encoding, whatever the payload says", () => {
    const frame = (seq: number, text: string) =>
      Codec.encodeFrame({
        type: "channel_msg",
        channel: "main",
        from: { user: "u\"seq\":1", machine: "m", session: "s" },
        payload: { kind: "plain", text },
        seq,
        origin: "agent",
        reply_to: null
      })
    assert.strictEqual(Soak.channelMsgSeq(frame(42, "plain")), 42)
    assert.strictEqual(Soak.channelMsgSeq(frame(1_234_567, `{"seq":9,"type":"channel_msg"} "seq":3`)), 1_234_567)
    assert.strictEqual(Soak.channelMsgSeq(frame(0, "")), 0)
  })

  it("leaves every other frame to the decoder", () => {
    assert.isUndefined(Soak.channelMsgSeq(`{"type":"ack","id":"q1","seq":5}`))
    assert.isUndefined(Soak.channelMsgSeq(`{"type":"whisper","seq":5}`))
    assert.isUndefined(Soak.channelMsgSeq(`{"type":"channel_msg","seq":null}`))
    assert.isUndefined(Soak.channelMsgSeq(`{"type":"channel_msg","channel":"main"}`))
    assert.isUndefined(Soak.channelMsgSeq(`not json`))
  })
})

describe("heap probe", () => {
  it.live("answers each SIGUSR2 with a new sample taken after gc()", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* Kit.tempDir("conclave-heapprobe-")
      const probe = yield* HeapProbe.heapProbe(dir)
      assert.include(probe.nodeArgs, "--expose-gc")
      const child = yield* spawnNode(probe.nodeArgs, probe.env)
      const first = yield* HeapProbe.heapSample(child, probe, 0)
      assert.strictEqual(first.n, 1)
      assert.isTrue(first.gc)
      assert.isAbove(first.heapUsed, 0)
      assert.isAtLeast(first.heapTotal, first.heapUsed)
      assert.isAbove(first.rss, first.heapUsed)
      // read just before the two gc() calls: at least the heap they leave
      assert.isAtLeast(first.heapTotalBeforeGc, first.heapUsed)
      assert.isAbove(first.rssBeforeGc, first.heapUsed)
      const second = yield* HeapProbe.heapSample(child, probe, first.n)
      assert.strictEqual(second.n, 2)
      // The process is still running: the probe's handler replaced SIGUSR2's default (terminate).
      assert.isNull(child.proc.exitCode)
      assert.isNull(child.proc.signalCode)
    })))

  it.live("keeps a memory trace every 5 s, counting the forced GCs so far", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* Kit.tempDir("conclave-heapprobe-")
      const probe = yield* HeapProbe.heapProbe(dir)
      const child = yield* spawnNode(probe.nodeArgs, probe.env)
      yield* HeapProbe.heapSample(child, probe, 0)
      // the first line written after the sample says one forced GC came before it
      const line = yield* Kit.eventually(
        "a memory trace line after the heap sample",
        Effect.sync(() => Option.fromNullable(HeapProbe.memoryTrace(probe).find((l) => l.samples === 1))),
        "15 seconds",
        "200 millis"
      )
      assert.isTrue(HeapProbe.memoryTrace(probe).every((l) => l.samples <= 1))
      assert.isAbove(line.rss, line.heapUsed)
      assert.isAtLeast(line.heapTotal, line.heapUsed)
    })))

  it.live("fails clearly without --expose-gc", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* Kit.tempDir("conclave-heapprobe-")
      const probe = yield* HeapProbe.heapProbe(dir)
      const child = yield* spawnNode(probe.nodeArgs.filter((a) => a !== "--expose-gc"), probe.env)
      const error = yield* Effect.flip(HeapProbe.heapSample(child, probe, 0))
      assert.match(error.message, /gc\(\) is not exposed/)
    })))

  it.live("fails clearly when no sample arrives in time", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* Kit.tempDir("conclave-heapprobe-")
      const probe = yield* HeapProbe.heapProbe(dir)
      // A process that handles SIGUSR2 but has no probe: it survives the signal and writes nothing.
      const child = yield* spawnNode([], {}, `process.on("SIGUSR2", () => {}); ${keepAlive}`)
      const error = yield* Effect.flip(HeapProbe.heapSample(child, probe, 0, "500 millis"))
      assert.match(error.message, /no heap sample .* within 500ms of SIGUSR2/)
    })))

  it.live("fails clearly when the process has no probe and dies of the signal", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* Kit.tempDir("conclave-heapprobe-")
      const probe = yield* HeapProbe.heapProbe(dir)
      const child = yield* spawnNode([], {})
      const error = yield* Effect.flip(HeapProbe.heapSample(child, probe, 0))
      assert.match(error.message, /process exited \(SIGUSR2\) before writing heap sample 1/)
    })))

  it.live("ignores a stale sample from before the request", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* Kit.tempDir("conclave-heapprobe-")
      const probe = yield* HeapProbe.heapProbe(dir)
      const child = yield* spawnNode(probe.nodeArgs, probe.env)
      const first = yield* HeapProbe.heapSample(child, probe, 0)
      // Asking for a sample after n = 5 cannot be satisfied by the probe's second sample (n = 2).
      const error = yield* Effect.flip(HeapProbe.heapSample(child, probe, first.n + 4, "600 millis"))
      assert.match(error.message, /no heap sample/)
    })))
})
