/**
 * The soak's option parsing, its growth arithmetic and the heap probe it preloads into the server
 * (a real `node` child: SIGUSR2 → two `gc()` → `process.memoryUsage()` written atomically).
 */
import { Codec } from "@conclave/protocol"
import * as Kit from "@conclave/testkit"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
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
      const probe = yield* Processes.heapProbe(dir)
      assert.include(probe.nodeArgs, "--expose-gc")
      const child = yield* spawnNode(probe.nodeArgs, probe.env)
      const first = yield* Processes.heapSample(child, probe, 0)
      assert.strictEqual(first.n, 1)
      assert.isTrue(first.gc)
      assert.isAbove(first.heapUsed, 0)
      assert.isAtLeast(first.heapTotal, first.heapUsed)
      assert.isAbove(first.rss, first.heapUsed)
      const second = yield* Processes.heapSample(child, probe, first.n)
      assert.strictEqual(second.n, 2)
      // The process is still running: the probe's handler replaced SIGUSR2's default (terminate).
      assert.isNull(child.proc.exitCode)
      assert.isNull(child.proc.signalCode)
    })))

  it.live("fails clearly without --expose-gc", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* Kit.tempDir("conclave-heapprobe-")
      const probe = yield* Processes.heapProbe(dir)
      const child = yield* spawnNode(probe.nodeArgs.filter((a) => a !== "--expose-gc"), probe.env)
      const error = yield* Effect.flip(Processes.heapSample(child, probe, 0))
      assert.match(error.message, /gc\(\) is not exposed/)
    })))

  it.live("fails clearly when no sample arrives in time", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* Kit.tempDir("conclave-heapprobe-")
      const probe = yield* Processes.heapProbe(dir)
      // A process that handles SIGUSR2 but has no probe: it survives the signal and writes nothing.
      const child = yield* spawnNode([], {}, `process.on("SIGUSR2", () => {}); ${keepAlive}`)
      const error = yield* Effect.flip(Processes.heapSample(child, probe, 0, "500 millis"))
      assert.match(error.message, /no heap sample .* within 500ms of SIGUSR2/)
    })))

  it.live("fails clearly when the process has no probe and dies of the signal", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* Kit.tempDir("conclave-heapprobe-")
      const probe = yield* Processes.heapProbe(dir)
      const child = yield* spawnNode([], {})
      const error = yield* Effect.flip(Processes.heapSample(child, probe, 0))
      assert.match(error.message, /process exited \(SIGUSR2\) before writing heap sample 1/)
    })))

  it.live("ignores a stale sample from before the request", () =>
    Effect.scoped(Effect.gen(function*() {
      const dir = yield* Kit.tempDir("conclave-heapprobe-")
      const probe = yield* Processes.heapProbe(dir)
      const child = yield* spawnNode(probe.nodeArgs, probe.env)
      const first = yield* Processes.heapSample(child, probe, 0)
      // Asking for a sample after n = 5 cannot be satisfied by the probe's second sample (n = 2).
      const error = yield* Effect.flip(Processes.heapSample(child, probe, first.n + 4, "600 millis"))
      assert.match(error.message, /no heap sample/)
    })))
})
