#!/usr/bin/env node
// The NATS broker alone (no sockets, no store): one publisher node and one subscriber node, each a
// process of its own with a `NatsBroker.layer` on the same NATS server, a paced stream of channel
// envelopes with a 200-byte frame; then the same stream through the in-process memory broker.
//
//   npx tsc -b packages/server && node bench/broker-nats.mjs [--rate 30000] [--seconds 10]
//       [--bytes 200] [--url nats://127.0.0.1:4222]
//
// Each frame carries its publish time (performance.timeOrigin + performance.now(), a wall clock
// shared by the two processes with sub-millisecond resolution); the subscriber records
// deliver - publish for every envelope. Prints envelopes delivered/s, latency p50/p99/max, µs of
// CPU per envelope in each process, and the load average before and after.
import { Effect, ManagedRuntime } from "effect"
import { fork } from "node:child_process"
import * as crypto from "node:crypto"
import * as os from "node:os"
import * as path from "node:path"
import { performance } from "node:perf_hooks"
import { fileURLToPath, pathToFileURL } from "node:url"

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const dist = (file) => pathToFileURL(path.join(ROOT, "packages/server/dist", file)).href
const NatsBroker = await import(dist("NatsBroker.js"))
const { Broker, layerMemory } = await import(dist("Broker.js"))

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : fallback
}
const RATE = Number(arg("rate", 30_000))
const SECONDS = Number(arg("seconds", 10))
const BYTES = Number(arg("bytes", 200))
const URL_ = arg("url", process.env.CONCLAVE_TEST_NATS ?? "nats://127.0.0.1:4222")
const ROLE = arg("role", "publisher")
const PREFIX = arg("prefix", `conclave_bench_${crypto.randomBytes(4).toString("hex")}`)

const now = () => performance.timeOrigin + performance.now()

/** A channel_msg-like frame of exactly BYTES bytes carrying its publish time. */
const frame = (i) => {
  const head = `{"type":"channel_msg","channel":"bench","seq":${i},"t":${now().toFixed(3)},"payload":"`
  return head + "x".repeat(Math.max(0, BYTES - head.length - 2)) + "\"}"
}

const percentile = (sorted, p) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]

/** A recorder: deliver(envelope) notes its latency. */
const recorder = () => {
  const latencies = []
  let delivered = 0
  return {
    deliver: (envelope) => {
      delivered++
      const t = Number(
        envelope.frame.slice(envelope.frame.indexOf("\"t\":") + 4, envelope.frame.indexOf(",\"payload\""))
      )
      latencies.push(now() - t)
    },
    get delivered() {
      return delivered
    },
    summary: () => {
      const sorted = Float64Array.from(latencies).sort()
      return { delivered, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted[sorted.length - 1] }
    }
  }
}

/** Publish RATE envelopes/s for SECONDS through `publish`, in ticks of about a millisecond. */
const pace = (broker) =>
  new Promise((resolve) => {
    const start = now()
    let sent = 0
    const total = RATE * SECONDS
    const tick = () => {
      const due = Math.min(total, Math.floor(((now() - start) / 1000) * RATE))
      if (due > sent) {
        for (; sent < due; sent++) {
          broker.publish({ _tag: "Channel", channel: "bench", frame: frame(sent), exclude: null })
        }
      }
      if (sent < total) {
        setTimeout(tick, 1)
      } else resolve({ sent, seconds: (now() - start) / 1000 })
    }
    tick()
  })

const cpu = (since) => {
  const c = process.cpuUsage(since)
  return c.user + c.system
}

if (ROLE === "subscriber") {
  const runtime = ManagedRuntime.make(NatsBroker.layer({ url: URL_, prefix: PREFIX, name: "bench-subscriber" }))
  const broker = await runtime.runPromise(Broker)
  const rec = recorder()
  runtime.runFork(Effect.scoped(Effect.zipRight(broker.subscribe(rec.deliver), Effect.never)))
  let cpu0
  process.on("message", async (m) => {
    if (m.type === "start") cpu0 = process.cpuUsage()
    if (m.type === "collect") {
      // wait (bounded) until everything sent has arrived or nothing more arrives for 2 s
      let last = -1
      let quietSince = now()
      while (rec.delivered < m.sent && now() - quietSince < 2000) {
        if (rec.delivered !== last) {
          last = rec.delivered
          quietSince = now()
        }
        await new Promise((r) => setTimeout(r, 20))
      }
      process.send({ type: "summary", ...rec.summary(), cpuUs: cpu(cpu0) })
      await runtime.dispose()
      process.exit(0)
    }
  })
  process.send({ type: "ready" })
} else {
  const before = os.loadavg()
  console.log(`${RATE} envelopes/s of ${BYTES} bytes for ${SECONDS} s; NATS at ${URL_}, prefix ${PREFIX}`)

  // NATS: this process publishes, a child process subscribes.
  const child = fork(fileURLToPath(import.meta.url), ["--role", "subscriber", "--url", URL_, "--prefix", PREFIX])
  const fromChild = (type) => new Promise((resolve) => child.on("message", (m) => m.type === type && resolve(m)))
  await fromChild("ready")
  const runtime = ManagedRuntime.make(NatsBroker.layer({ url: URL_, prefix: PREFIX, name: "bench-publisher" }))
  const broker = await runtime.runPromise(Broker)
  child.send({ type: "start" })
  const cpu0 = process.cpuUsage()
  const { sent, seconds } = await pace(broker)
  const pubCpu = cpu(cpu0)
  const summaryP = fromChild("summary")
  child.send({ type: "collect", sent })
  const nats = await summaryP
  await runtime.dispose()
  const line = (label, s, sentN, secs, extra) =>
    console.log(
      `${label.padEnd(8)} sent ${sentN} in ${secs.toFixed(2)} s, delivered ${s.delivered} (${
        Math.round(s.delivered / secs)
      }/s); publish→deliver p50 ${s.p50.toFixed(3)} ms, p99 ${s.p99.toFixed(3)} ms, max ${s.max.toFixed(3)} ms${extra}`
    )
  line(
    "nats",
    nats,
    sent,
    seconds,
    `; CPU ${(pubCpu / sent).toFixed(2)} µs/env publisher, ${(nats.cpuUs / sent).toFixed(2)} µs/env subscriber`
  )

  // Memory: one process, one broker, the recorder subscribed to it.
  const memory = ManagedRuntime.make(layerMemory)
  const mem = await memory.runPromise(Broker)
  const rec = recorder()
  memory.runFork(Effect.scoped(Effect.zipRight(mem.subscribe(rec.deliver), Effect.never)))
  const cpu1 = process.cpuUsage()
  const m = await pace(mem)
  const memCpu = cpu(cpu1)
  line("memory", rec.summary(), m.sent, m.seconds, `; CPU ${(memCpu / m.sent).toFixed(2)} µs/env (publish + deliver)`)
  await memory.dispose()

  const after = os.loadavg()
  console.log(
    `load average: before ${before.map((l) => l.toFixed(2)).join(" ")}, after ${
      after.map((l) => l.toFixed(2)).join(" ")
    } (${os.cpus().length} CPUs)`
  )
  if (nats.delivered !== sent) {
    console.log(`LOST: ${sent - nats.delivered} envelopes did not arrive`)
    process.exitCode = 1
  }
}
