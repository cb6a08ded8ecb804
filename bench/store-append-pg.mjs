#!/usr/bin/env node
// Micro-benchmark of the PostgreSQL store alone (no sockets): acked appends/s with concurrent
// appenders (group commit) and read_since rows/s.
//
//   npx tsc -b packages/server && node bench/store-append-pg.mjs [--appends N] [--inflight N]
//       [--channels N] [--reads N] [--url postgres://user@host:port/db]
//
// Creates a scratch database `conclave_bench_<random>` on the server of `--url` (default
// $CONCLAVE_TEST_POSTGRES or postgres://postgres@127.0.0.1:5432/test), builds `PgStore.layer` on
// it, appends N messages with `inflight` appenders waiting concurrently on `appendMessage` (an
// append counts once its promise of durability resolved, i.e. after COMMIT), spread over
// `channels` channels, checks every channel's seqs are 1..n with no gap, then reads the first
// channel back in 500-row `readSince` pages `reads` times (before and after ANALYZE). Prints operations/s, µs of process
// CPU per operation and the load average; drops the scratch database.
import { Effect, ManagedRuntime } from "effect"
import * as crypto from "node:crypto"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import pg from "pg"

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const dist = (file) => pathToFileURL(path.join(ROOT, "packages/server/dist", file)).href
const PgStore = await import(dist("PgStore.js"))
const { Store } = await import(dist("Store.js"))

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : fallback
}
const APPENDS = Number(arg("appends", 50_000))
const INFLIGHT = Number(arg("inflight", 256))
const CHANNELS = Number(arg("channels", 4))
const READS = Number(arg("reads", 20))
const URL_ = arg("url", process.env.CONCLAVE_TEST_POSTGRES ?? "postgres://postgres@127.0.0.1:5432/test")

const scratch = `conclave_bench_${crypto.randomBytes(4).toString("hex")}`
const admin = new pg.Client({ connectionString: URL_ })
await admin.connect()
await admin.query(`CREATE DATABASE ${scratch}`)
const url = new URL(URL_)
url.pathname = `/${scratch}`
const runtime = ManagedRuntime.make(PgStore.layer({ url: url.toString() }))

const measure = async (label, count, unit, run) => {
  const cpu0 = process.cpuUsage()
  const t0 = process.hrtime.bigint()
  await run()
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  const cpu = process.cpuUsage(cpu0)
  const perSecond = Math.round(count / seconds)
  const cpuUs = ((cpu.user + cpu.system) / count).toFixed(2)
  console.log(`${label.padEnd(36)} ${String(perSecond).padStart(8)} ${unit}/s   ${cpuUs.padStart(7)} µs CPU/${unit}`)
  return perSecond
}

const message = (i) => ({
  channel: `bench${i % CHANNELS}`,
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
    Effect.forEach(
      Array.from({ length: CHANNELS }, (_, c) => c),
      (c) => store.createChannel({ name: `bench${c}`, visibility: "public", createdBy: "alice", now }),
      { discard: true }
    )
  )
  // warm-up (JIT, connections)
  await runtime.runPromise(
    Effect.forEach(Array.from({ length: 2_000 }, (_, i) => i), (i) => store.appendMessage(message(i)), {
      concurrency: INFLIGHT,
      discard: true
    })
  )
  const before = os.loadavg()
  await measure(`append (${INFLIGHT} in flight, ${CHANNELS} ch)`, APPENDS, "append", () =>
    runtime.runPromise(
      Effect.forEach(Array.from({ length: APPENDS }, (_, i) => i), (i) => store.appendMessage(message(2_000 + i)), {
        concurrency: INFLIGHT,
        discard: true
      })
    ))
  // every channel holds 1..n without a gap
  const check = new pg.Client({ connectionString: url.toString() })
  await check.connect()
  const { rows: gaps } = await check.query(
    "SELECT channel, count(*)::int AS n, min(seq)::int AS lo, max(seq)::int AS hi FROM messages GROUP BY channel"
  )
  await check.end()
  for (const g of gaps) {
    if (g.lo !== 1 || g.hi !== g.n) throw new Error(`channel ${g.channel}: seqs ${g.lo}..${g.hi} for ${g.n} rows`)
  }
  console.log(`seqs gap-free per channel: ${gaps.map((g) => `${g.channel} 1..${g.n}`).join(", ")}`)
  const perChannel = gaps.find((g) => g.channel === "bench0").n
  const pages = Math.ceil(perChannel / 500)
  const readAll = () =>
    runtime.runPromise(Effect.gen(function*() {
      for (let r = 0; r < READS; r++) {
        let since = 0
        for (let p = 0; p < pages; p++) {
          const page = yield* store.readSince({
            channel: "bench0",
            since: { _tag: "Seq", seq: since },
            cutoffMs: 0,
            limit: 500
          })
          if (page.messages.length === 0) break
          since = page.messages[page.messages.length - 1].seq
        }
      }
    }))
  // Right after a bulk load the table has no statistics yet and the planner may sort instead of
  // walking the (channel, seq) index; autovacuum analyzes it within a minute. Both are measured.
  await measure(`readSince, no stats (${perChannel} rows)`, READS * perChannel, "row", readAll)
  const analyze = new pg.Client({ connectionString: url.toString() })
  await analyze.connect()
  await analyze.query("ANALYZE messages")
  await analyze.end()
  await measure(`readSince, analyzed (${perChannel} rows)`, READS * perChannel, "row", readAll)
  const after = os.loadavg()
  console.log(
    `load average: before ${before.map((l) => l.toFixed(2)).join(" ")}, after ${
      after.map((l) => l.toFixed(2)).join(" ")
    } (${os.cpus().length} CPUs)`
  )
} finally {
  await runtime.dispose()
  await admin.query(`DROP DATABASE IF EXISTS ${scratch} WITH (FORCE)`)
  await admin.end()
}
