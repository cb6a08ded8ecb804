/**
 * The heap probe (soak): an ESM preload for a spawned `node` that answers SIGUSR2 with its memory
 * after two `gc()` calls, optionally writing a heap snapshot, and can keep a 5-second memory trace.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import { type Child, ProcessError } from "./Processes.js"

/**
 * When set (in the environment of the probed process, which inherits it from the soak), a directory
 * the heap probe also writes a heap snapshot to at every sample (`heap-<n>.heapsnapshot`): compare
 * two with `node bench/heap-top.mjs <later> 0 40 <earlier>` to see what grew.
 *
 * @since 0.1.0
 * @category heap probe
 */
export const heapSnapshotsEnv = "CONCLAVE_HEAP_PROBE_SNAPSHOTS"

/**
 * When set (in the environment of the probed process), a file the heap probe appends the process's
 * `process.memoryUsage()` to every 5 s (one JSON line, no GC): how RSS follows V8's committed heap.
 *
 * @since 0.1.0
 * @category heap probe
 */
export const heapProbeTraceEnv = "CONCLAVE_HEAP_PROBE_TRACE"

/** The environment variable naming the file the heap probe writes. @since 0.1.0 @category heap probe */
export const heapProbeEnv = "CONCLAVE_HEAP_PROBE_FILE"

/**
 * Source of an ESM preload (`node --expose-gc --import <file> …`) that leaves the program alone
 * until SIGUSR2: then it runs `gc()` twice (so `heapUsed` is live memory) and writes
 * `{ n, gc, rss, heapUsed, heapTotal, external, arrayBuffers, rssBeforeGc, heapTotalBeforeGc }` as
 * JSON to `$CONCLAVE_HEAP_PROBE_FILE` (tmp + rename), `n` counting the samples from 1, `gc` telling
 * whether `gc()` was exposed and the `…BeforeGc` figures read just before it (a forced full GC
 * shrinks V8's committed heap, and with it the RSS, for a while: RSS compared across a run must not
 * be read right after one on one side only). With `$CONCLAVE_HEAP_PROBE_TRACE` it also appends
 * `process.memoryUsage()` (no GC) as a JSON line to that file every 5 s, for diagnosis.
 *
 * @since 0.1.0
 * @category heap probe
 */
export const heapProbeSource: string = `import { appendFileSync, renameSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { writeHeapSnapshot } from "node:v8"
const file = process.env.${heapProbeEnv}
const snapshots = process.env.${heapSnapshotsEnv}
const trace = process.env.${heapProbeTraceEnv}
let n = 0
if (trace) {
  const t0 = Date.now()
  setInterval(() => {
    const m = process.memoryUsage()
    appendFileSync(trace, JSON.stringify({ t: Date.now() - t0, samples: n, rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers }) + "\\n")
  }, 5000).unref()
}
if (file) {
  process.on("SIGUSR2", () => {
    const before = process.memoryUsage()
    const gc = typeof globalThis.gc === "function"
    if (gc) {
      globalThis.gc()
      globalThis.gc()
    }
    const m = process.memoryUsage()
    n++
    if (snapshots) writeHeapSnapshot(join(snapshots, "heap-" + n + ".heapsnapshot"))
    const sample = { n, gc, rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, rssBeforeGc: before.rss, heapTotalBeforeGc: before.heapTotal }
    writeFileSync(file + ".tmp", JSON.stringify(sample))
    renameSync(file + ".tmp", file)
  })
}
`

/** One sample written by the heap probe (bytes). @since 0.1.0 @category heap probe */
export const HeapSample = Schema.Struct({
  n: Schema.Int,
  gc: Schema.Boolean,
  rss: Schema.Number,
  heapUsed: Schema.Number,
  heapTotal: Schema.Number,
  external: Schema.Number,
  arrayBuffers: Schema.Number,
  rssBeforeGc: Schema.Number,
  heapTotalBeforeGc: Schema.Number
})
/** @since 0.1.0 @category heap probe */
export type HeapSample = typeof HeapSample.Type

/** One line of the probe's memory trace (bytes; `t`: ms since the process started). @since 0.1.0 @category heap probe */
export const MemoryTraceLine = Schema.Struct({
  t: Schema.Number,
  /** Heap samples (forced GCs) taken so far. */
  samples: Schema.Number,
  rss: Schema.Number,
  heapUsed: Schema.Number,
  heapTotal: Schema.Number,
  external: Schema.Number,
  arrayBuffers: Schema.Number
})
/** @since 0.1.0 @category heap probe */
export type MemoryTraceLine = typeof MemoryTraceLine.Type

const decodeTraceLine = Schema.decodeUnknownOption(Schema.parseJson(MemoryTraceLine))

/** The memory trace so far (lines that do not decode, such as a half-written last one, are left out). @since 0.1.0 @category heap probe */
export const memoryTrace = (probe: HeapProbe): ReadonlyArray<MemoryTraceLine> => {
  let text = ""
  try {
    text = Fs.readFileSync(probe.trace, "utf8")
  } catch {
    return []
  }
  return text.split("\n").flatMap((line) => Option.toArray(decodeTraceLine(line)))
}

/** @since 0.1.0 @category heap probe */
export interface HeapProbe {
  /** The file the samples land in. */
  readonly file: string
  /** The file the probe's 5-second memory trace lands in (JSON lines). */
  readonly trace: string
  /** `node` flags to start the probed process with (`--expose-gc --import <preload>`). */
  readonly nodeArgs: ReadonlyArray<string>
  /** Environment for the probed process. */
  readonly env: Record<string, string>
}

/**
 * Write the heap probe preload into `dir`; spread the result's `nodeArgs` and `env` into
 * `spawnServer` (or `spawn`), then ask for samples with `heapSample`.
 *
 * @since 0.1.0
 * @category heap probe
 */
export const heapProbe = (dir: string): Effect.Effect<HeapProbe> =>
  Effect.sync(() => {
    const script = Path.join(dir, "heap-probe.mjs")
    Fs.writeFileSync(script, heapProbeSource)
    const file = Path.join(dir, "heap-sample.json")
    const trace = Path.join(dir, "memory-trace.jsonl")
    return {
      file,
      trace,
      nodeArgs: ["--expose-gc", "--import", pathToFileURL(script).href],
      env: { [heapProbeEnv]: file, [heapProbeTraceEnv]: trace }
    }
  })

const decodeHeapSample = Schema.decodeUnknown(Schema.parseJson(HeapSample))

const alive = (child: Child) => child.proc.exitCode === null && child.proc.signalCode === null

/**
 * Send SIGUSR2 to a process started with `heapProbe`'s flags and wait (bounded by `timeout`) for
 * a sample numbered after `after` (0 for the first). Fails when the process exits first, when no
 * sample arrives in time, or when `gc()` was not exposed. A process without the probe is killed
 * by the signal (SIGUSR2's default action).
 *
 * @since 0.1.0
 * @category heap probe
 */
export const heapSample = (
  child: Child,
  probe: HeapProbe,
  after: number,
  timeout: Duration.DurationInput = "15 seconds"
): Effect.Effect<HeapSample, ProcessError> =>
  Effect.gen(function*() {
    child.signal("SIGUSR2")
    const read = Effect.suspend(() => {
      let text: string
      try {
        text = Fs.readFileSync(probe.file, "utf8")
      } catch {
        return Effect.succeed(Option.none<HeapSample>())
      }
      return decodeHeapSample(text).pipe(
        Effect.map(Option.some),
        Effect.mapError((e) => new ProcessError({ message: `heap probe wrote an unreadable sample: ${e.message}` }))
      )
    })
    const got = yield* read.pipe(
      Effect.repeat({
        schedule: Schedule.identity<Option.Option<HeapSample>>().pipe(Schedule.addDelay(() => Duration.millis(50))),
        until: (o) => (Option.isSome(o) && o.value.n > after) || !alive(child)
      }),
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () =>
          new ProcessError({
            message: `no heap sample in ${probe.file} within ${
              Duration.format(Duration.decode(timeout))
            } of SIGUSR2 (was the process started with the heap probe's node flags and env?)`
          })
      })
    )
    if (Option.isNone(got) || got.value.n <= after) {
      return yield* new ProcessError({
        message: `process exited (${child.proc.exitCode ?? child.proc.signalCode}) before writing heap sample ${
          after + 1
        }: ${child.stderr().slice(-2000)}`
      })
    }
    if (!got.value.gc) {
      return yield* new ProcessError({ message: "heap probe: gc() is not exposed (start node with --expose-gc)" })
    }
    return got.value
  })
