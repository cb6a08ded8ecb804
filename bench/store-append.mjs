#!/usr/bin/env node
// Micro-benchmark of the SQLite store alone (no sockets): group-committed appends and hot reads.
//
//   npx tsc -b packages/server && node bench/store-append.mjs [--appends N] [--inflight N] [--reads N] [--dist DIR]
//
// Builds `SqliteStore.layer` on a temp file, appends N messages with `inflight` concurrently waiting
// on `appendMessageThen`, then runs `findMachineByKey` and `getChannel` N times each. Prints
// operations/s and µs of process CPU (user + system) per operation.
import { Effect, ManagedRuntime } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const distIndex = process.argv.indexOf("--dist") // another build of packages/server/dist, to compare
const DIST = distIndex >= 0 ? path.resolve(process.argv[distIndex + 1]) : path.join(ROOT, "packages/server/dist")
const dist = (file) => pathToFileURL(path.join(DIST, file)).href
const SqliteStore = await import(dist("SqliteStore.js"))
const { Store } = await import(dist("Store.js"))

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const APPENDS = arg("appends", 50_000)
const INFLIGHT = arg("inflight", 128)
const READS = arg("reads", 20_000)

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "conclave-store-bench-"))
const runtime = ManagedRuntime.make(SqliteStore.layer({ filename: path.join(dir, "bench.db") }))

const measure = async (label, count, run) => {
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  await run()
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = process.cpuUsage(cpu0)
  const cpuUs = (cpu.user + cpu.system) / count
  const result = { label, count, perSecond: Math.round(count / seconds), cpuUsPerOp: Number(cpuUs.toFixed(2)) }
  console.log(
    `${label.padEnd(28)} ${String(result.perSecond).padStart(8)} /s   ${
      result.cpuUsPerOp.toFixed(2).padStart(7)
    } µs CPU/op`
  )
  return result
}

const PUBKEY = "A".repeat(43)
const message = (i) => ({
  channel: "bench",
  from: "alice/laptop/s1",
  payload: { kind: "plain", text: `message number ${i} with a few words of body` },
  ts_ms: 1_700_000_000_000 + i,
  origin: "agent",
  reply_to: null
})

try {
  const store = await runtime.runPromise(Store)
  const now = new Date(0).toISOString()
  await runtime.runPromise(
    Effect.zipRight(
      store.registerUser({ username: "alice", machine: "laptop", pubkey: PUBKEY, now }),
      store.createChannel({ name: "bench", visibility: "public", createdBy: "alice", now })
    )
  )
  // warm-up (JIT, statement cache)
  await runtime.runPromise(
    Effect.forEach(
      Array.from({ length: 2_000 }, (_, i) => i),
      (i) => store.appendMessageThen(message(i), () => Effect.void),
      {
        concurrency: INFLIGHT,
        discard: true
      }
    )
  )
  let last = 0
  let ordered = true
  await measure(`append (${INFLIGHT} in flight)`, APPENDS, () =>
    runtime.runPromise(
      Effect.forEach(
        Array.from({ length: APPENDS }, (_, i) => i),
        (i) =>
          store.appendMessageThen(message(i), (seq) =>
            Effect.sync(() => {
              if (seq <= last) ordered = false
              last = seq
            })),
        { concurrency: INFLIGHT, discard: true }
      )
    ))
  if (!ordered) console.log("WARNING: afterCommit ran out of seq order")
  const loop = (n, f) =>
    Effect.gen(function*() {
      for (let i = 0; i < n; i++) yield* f(i)
    })
  await runtime.runPromise(loop(1_000, () => store.findMachineByKey(PUBKEY)))
  await measure("findMachineByKey", READS, () => runtime.runPromise(loop(READS, () => store.findMachineByKey(PUBKEY))))
  await runtime.runPromise(loop(1_000, () => store.getChannel("bench")))
  await measure("getChannel", READS, () => runtime.runPromise(loop(READS, () => store.getChannel("bench"))))
  await measure("isMember", READS, () => runtime.runPromise(loop(READS, () => store.isMember("bench", "alice"))))
  await measure(
    "messageExists",
    READS,
    () => runtime.runPromise(loop(READS, (i) => store.messageExists("bench", i + 1)))
  )
} finally {
  await runtime.dispose()
  fs.rmSync(dir, { recursive: true, force: true })
}
