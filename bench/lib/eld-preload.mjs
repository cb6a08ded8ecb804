// Preloaded into Node servers under test (`node --expose-gc --import bench/lib/eld-preload.mjs …`):
// samples the event-loop delay and reports memory without touching the server's code. On SIGUSR2
// it writes, to $BENCH_ELD_FILE (atomically), the event-loop delay percentiles since the previous
// SIGUSR2 and process.memoryUsage(); when the file "$BENCH_ELD_FILE.gc" exists it runs a full GC
// first (so heapUsed is live memory); when "$BENCH_ELD_FILE.snap" exists it writes a heap snapshot
// to the path it holds. Then it resets the delay histogram.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { writeHeapSnapshot } from "node:v8"

const file = process.env.BENCH_ELD_FILE
if (file) {
  const h = monitorEventLoopDelay({ resolution: 10 })
  h.enable()
  process.on("SIGUSR2", () => {
    if (typeof globalThis.gc === "function" && existsSync(`${file}.gc`)) globalThis.gc()
    if (existsSync(`${file}.snap`)) {
      // "$BENCH_ELD_FILE.snap" holds the path to write a heap snapshot to
      const target = readFileSync(`${file}.snap`, "utf8").trim()
      rmSync(`${file}.snap`, { force: true })
      writeHeapSnapshot(target)
    }
    const us = (ns) => Math.round(ns / 1000)
    const m = process.memoryUsage()
    const out = {
      n: h.count,
      p50_us: us(h.percentile(50)),
      p99_us: us(h.percentile(99)),
      max_us: us(h.max),
      rss: m.rss,
      heap_used: m.heapUsed,
      external: m.external,
      array_buffers: m.arrayBuffers
    }
    writeFileSync(`${file}.tmp`, JSON.stringify(out))
    renameSync(`${file}.tmp`, file)
    h.reset()
  })
}
