/**
 * `npm run soak` — a bounded soak of a spawned `conclave serve` (BENCH-AND-RELIABILITY T11):
 * one publisher fans a channel out to stable subscribers at a fixed rate while churn sessions come
 * and go; the server's RSS and open descriptors are sampled every 5 s, and its V8 heap after a full GC
 * (through a preload, `Processes.heapProbe`) at the end of the warm-up, every 5 min and at the end.
 * Stops by itself after `--duration`.
 *
 * Options: `--duration 10m` (s/m/h; default 10m), `--rate 200` (messages/s), `--subscribers 50`,
 * `--churn-per-min 60` (sessions started per minute, each living 2–20 s), `--warmup <duration>`
 * (default a quarter of the run, at most 5 min), `--server-heap-mb 192` (the server's V8 old-space cap, so
 * RSS reflects live memory rather than lazy collection; a leak then ends in an out-of-memory crash),
 * `--nodes N` (default 1: one node on SQLite; 2 or more: N nodes on a scratch PostgreSQL database and a
 * `nats-server` of the soak's own, issue 17, with the publisher on the first node and the subscribers and
 * churn sessions spread over all of them), `--report` (write RELIABILITY.md's soak section, or its
 * scale-out soak section with `--nodes`).
 * Prints one JSON summary on stdout; exits 1 when a target is missed.
 *
 * @since 0.1.0
 */
import type { Frames } from "@conclave/protocol"
import * as Kit from "@conclave/testkit"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Logger from "effect/Logger"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Backends from "./Backends.js"
import * as Processes from "./Processes.js"
import * as Report from "./Report.js"

/** @since 0.1.0 @category options */
export interface SoakOptions {
  readonly durationMs: number
  readonly rate: number
  readonly subscribers: number
  readonly churnPerMin: number
  readonly warmupMs: number
  readonly serverHeapMb: number
  readonly nodes: number
  readonly report: boolean
}

/** "90s", "10m", "1h", "600" (seconds) → ms; undefined when unparseable. @since 0.1.0 @category options */
export const parseDuration = (s: string): number | undefined => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s.trim())
  if (m === null) return undefined
  const n = Number(m[1])
  const unit = m[2] ?? "s"
  return Math.round(n * (unit === "ms" ? 1 : unit === "s" ? 1000 : unit === "m" ? 60_000 : 3_600_000))
}

/** @since 0.1.0 @category options */
export const parseOptions = (argv: ReadonlyArray<string>): SoakOptions | string => {
  const get = (name: string) => {
    const i = argv.indexOf(name)
    return i >= 0 ? argv[i + 1] : undefined
  }
  const known = [
    "--duration",
    "--rate",
    "--subscribers",
    "--churn-per-min",
    "--warmup",
    "--server-heap-mb",
    "--nodes",
    "--report"
  ]
  const unknown = argv.filter((a) => a.startsWith("--") && !known.includes(a))
  if (unknown.length > 0) return `unknown option ${unknown[0]}`
  const durationMs = parseDuration(get("--duration") ?? "10m")
  if (durationMs === undefined || durationMs < 10_000) return "--duration must be a duration of at least 10s (e.g. 2m)"
  const num = (name: string, def: number, min: number) => {
    const raw = get(name)
    if (raw === undefined) return def
    const n = Number(raw)
    return Number.isFinite(n) && n >= min ? n : undefined
  }
  const rate = num("--rate", 200, 1)
  const subscribers = num("--subscribers", 50, 1)
  const churnPerMin = num("--churn-per-min", 60, 0)
  const serverHeapMb = num("--server-heap-mb", 192, 32)
  if (rate === undefined || subscribers === undefined || churnPerMin === undefined || serverHeapMb === undefined) {
    return "--rate, --subscribers, --churn-per-min and --server-heap-mb take non-negative numbers"
  }
  const nodes = num("--nodes", 1, 1)
  if (nodes === undefined || !Number.isInteger(nodes) || nodes > 9) return "--nodes takes a whole number from 1 to 9"
  const warmRaw = get("--warmup")
  const warmupMs = warmRaw === undefined ? Math.min(300_000, Math.floor(durationMs / 4)) : parseDuration(warmRaw)
  if (warmupMs === undefined || warmupMs >= durationMs) return "--warmup must be a duration shorter than --duration"
  return {
    durationMs,
    rate,
    subscribers,
    churnPerMin,
    warmupMs,
    serverHeapMb,
    nodes,
    report: argv.includes("--report")
  }
}

interface Sample {
  readonly atMs: number
  /** Per node. */
  readonly rss: ReadonlyArray<number>
  readonly fds: ReadonlyArray<number>
}

/** Growth from `from` to `to` in percent, one decimal (0 when `from` is 0). @since 0.1.0 @category soak */
export const growthPct = (from: number, to: number): number =>
  from === 0 ? 0 : Math.round(((to - from) / from) * 1000) / 10

const mib = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10

const heapEveryMs = 300_000

/**
 * A growable bitmap of sequence numbers: one bit per seq, so a 30-minute soak at 1 000 msg/s keeps
 * about 225 KB per subscriber instead of a `Set` entry per message.
 *
 * @since 0.1.0
 * @category soak
 */
export class SeqSet {
  private bits = new Uint8Array(1024)
  private n = 0
  /** Distinct seqs added. */
  get size(): number {
    return this.n
  }
  /** Add `seq`; whether it was new (false for a repeat or a seq that is not a whole number ≥ 0). */
  add(seq: number): boolean {
    if (!Number.isInteger(seq) || seq < 0) return false
    const byte = seq >>> 3
    if (byte >= this.bits.length) {
      let len = this.bits.length * 2
      while (len <= byte) len *= 2
      const grown = new Uint8Array(len)
      grown.set(this.bits)
      this.bits = grown
    }
    const mask = 1 << (seq & 7)
    if ((this.bits[byte]! & mask) === 0) {
      this.bits[byte] = this.bits[byte]! | mask
      this.n++
      return true
    }
    return false
  }
  has(seq: number): boolean {
    if (!Number.isInteger(seq) || seq < 0) return false
    const byte = seq >>> 3
    return byte < this.bits.length && (this.bits[byte]! & (1 << (seq & 7))) !== 0
  }
}

const channelMsgPrefix = `{"type":"channel_msg",`
const seqKey = `"seq":`

/**
 * The `seq` of a `channel_msg` frame read straight from its JSON text, or `undefined` for any other
 * frame (which then takes the decoding path). JSON escapes every quote inside a string, so `"seq":`
 * can only occur as a key; the payload (`kind`, `text`) has none.
 *
 * @since 0.1.0
 * @category soak
 */
export const channelMsgSeq = (text: string): number | undefined => {
  if (!text.startsWith(channelMsgPrefix)) return undefined
  const at = text.indexOf(seqKey)
  if (at < 0) return undefined
  let i = at + seqKey.length
  let seq = 0
  let digits = 0
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 48 || c > 57) break
    seq = seq * 10 + (c - 48)
    digits++
  }
  return digits === 0 || digits > 15 ? undefined : seq
}

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? 0 : s[Math.floor(s.length / 2)]!
}

/** A join that must be answered `joined`; anything else is a failure the churn loop counts. */
const joined = (join: Effect.Effect<Frames.Reply, Kit.WireError>) =>
  Effect.flatMap(join, (reply) =>
    Effect.try({
      try: () => Kit.expectType(reply, "joined"),
      catch: (e) => new Kit.WireError({ message: e instanceof Error ? e.message : String(e) })
    }))

interface Node {
  readonly server: Processes.ServerProcess
  readonly probe: Processes.HeapProbe
  readonly heap: Array<Processes.HeapSample & { readonly atMs: number }>
}

const sum = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0)

/**
 * The soak's servers: one `conclave serve` on SQLite in `dir`, or (`nodes` ≥ 2) a deployment on a
 * scratch PostgreSQL database and a `nats-server` of its own; each with the heap probe.
 */
const startNodes = (dir: string, options: SoakOptions) =>
  Effect.gen(function*() {
    const probes = yield* Effect.forEach(Array.from({ length: options.nodes }, (_, i) => i), (i) =>
      Effect.flatMap(
        Effect.sync(() => {
          const sub = Path.join(dir, `n${i + 1}`)
          Fs.mkdirSync(sub, { recursive: true })
          return sub
        }),
        Processes.heapProbe
      ))
    const extraArgs = ["--max-pending-per-ip", "0", "--register-limit", "0"]
    const nodeArgs = (i: number) => [`--max-old-space-size=${options.serverHeapMb}`, ...probes[i]!.nodeArgs]
    const servers = options.nodes === 1
      ? [yield* Processes.spawnServer(dir, { extraArgs, nodeArgs: nodeArgs(0), env: probes[0]!.env })]
      : (yield* Backends.cluster({ nodes: options.nodes, extraArgs, nodeArgs, env: (i) => probes[i]!.env })).nodes
    return servers.map((server, i): Node => ({ server, probe: probes[i]!, heap: [] }))
  })

/** Run the soak; returns the summary. @since 0.1.0 @category soak */
export const run = (options: SoakOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const dir = yield* Kit.tempDir("conclave-soak-")
    const nodes = yield* startNodes(dir, options)
    const server = nodes[0]!.server
    const urlFor = (i: number) => nodes[i % nodes.length]!.server.url
    const sampleHeap = (atMs: number) =>
      Effect.forEach(nodes, (node, i) =>
        Effect.gen(function*() {
          const h = yield* Processes.heapSample(node.server, node.probe, node.heap.at(-1)?.n ?? 0)
          node.heap.push({ ...h, atMs })
          yield* Effect.logInfo("soak heap sample").pipe(
            Effect.annotateLogs({
              node: i + 1,
              s: Math.round(atMs / 1000),
              heapUsedMiB: mib(h.heapUsed),
              heapTotalMiB: mib(h.heapTotal),
              externalMiB: mib(h.external),
              rssMiB: mib(h.rss)
            })
          )
        }), { discard: true })
    yield* Effect.logInfo("soak started").pipe(
      Effect.annotateLogs({ urls: nodes.map((n) => n.server.url).join(" "), ...options })
    )
    const pub = yield* Kit.register(server.url, "soak-pub")
    yield* pub.request(Kit.op({ kind: "create_channel", name: "main", visibility: "public" }))
    yield* pub.request(Kit.op({ kind: "create_channel", name: "churn", visibility: "public" }))
    Kit.expectType(yield* pub.request({ type: "join", channel: "main", token: null }), "joined")
    const received: Array<SeqSet> = []
    let duplicates = 0
    yield* Effect.forEach(Array.from({ length: options.subscribers }, (_, i) => i), (i) =>
      Effect.gen(function*() {
        const got = new SeqSet()
        received.push(got)
        const s = yield* Kit.register(urlFor(i), `soak-sub${i}`)
        // Deliveries are counted from the raw text (the bench's subscriber does the same); any other
        // frame is decoded in full.
        s.onRaw = (text) => {
          const seq = channelMsgSeq(text)
          if (seq === undefined) return false
          if (!got.add(seq)) duplicates++
          return true
        }
        s.onFrame = (f) => {
          if (f.type === "channel_msg" && f.seq !== null && !got.add(f.seq)) duplicates++
        }
        Kit.expectType(yield* s.request({ type: "join", channel: "main", token: null }), "joined")
        yield* Kit.keepAlive(s)
      }), { concurrency: 8, discard: true })
    const churnIds = Array.from({ length: 20 }, () => Kit.newIdentity())
    yield* Effect.forEach(churnIds, (identity, i) =>
      Effect.scoped(
        Kit.connect(urlFor(i), { identity, handle: "init", register: { username: `churn${i}`, machine: "m" } })
      ), {
      discard: true
    })
    const fds0 = nodes.map((n) => Processes.fdsOf(n.server.pid))
    const t0 = performance.now()
    const elapsed = () => performance.now() - t0
    const acked: Array<number> = []
    let refused = 0
    let churned = 0
    let churnFailures = 0
    let firstChurnFailure = ""

    const publisher = yield* Effect.gen(function*() {
      const tickMs = 20
      let sent = 0
      while (elapsed() < options.durationMs) {
        // Paced by the clock, not by the tick count: a slow ack round does not lower the rate.
        const batch = Math.max(0, Math.floor((options.rate * elapsed()) / 1000) - sent)
        sent += batch
        yield* Effect.forEach(Array.from({ length: batch }), () =>
          Effect.map(
            pub.request({ type: "channel_msg", channel: "main", payload: Kit.plain("s".repeat(200)) }),
            (r) => {
              if (r.type === "ack" && r.seq !== null) acked.push(r.seq)
              else refused++
            }
          ), { concurrency: "unbounded", discard: true })
        yield* Effect.sleep(`${tickMs} millis`)
      }
    }).pipe(Effect.fork)

    const churners = yield* FiberSet.make<void, never>()
    const churnLoop = yield* Effect.gen(function*() {
      if (options.churnPerMin <= 0) {
        return
      }
      const every = 60_000 / options.churnPerMin
      for (let i = 0; elapsed() < options.durationMs - 20_000; i++) {
        const identity = churnIds[i % churnIds.length]!
        const lifeMs = 2000 + ((i * 7919) % 18_000)
        yield* FiberSet.run(
          churners,
          Effect.scoped(Effect.gen(function*() {
            const s = yield* Kit.connect(urlFor(i), { identity, handle: `c${i}` })
            yield* joined(s.request({ type: "join", channel: "main", token: null }))
            yield* joined(s.request({ type: "join", channel: "churn", token: null }))
            for (let k = 0; k < 3; k++) {
              yield* s.request({ type: "channel_msg", channel: "churn", payload: Kit.plain(`c${i}-${k}`) })
            }
            const last = acked.at(-1) ?? 0
            yield* s.request({ type: "read_since", channel: "main", since_seq: Math.max(0, last - 50) })
            yield* Effect.sleep(`${lifeMs} millis`)
            churned++
          })).pipe(Effect.catchAll((e) =>
            Effect.sync(() => {
              churnFailures++
              if (firstChurnFailure === "") firstChurnFailure = e.message
            })
          ))
        )
        yield* Effect.sleep(`${every} millis`)
      }
    }).pipe(Effect.fork)

    const samples: Array<Sample> = []
    while (elapsed() < options.durationMs) {
      const at = elapsed()
      const lastHeap = nodes[0]!.heap.at(-1)
      if (lastHeap === undefined ? at >= options.warmupMs : at - lastHeap.atMs >= heapEveryMs) {
        yield* sampleHeap(Math.round(at))
      }
      const sample: Sample = {
        atMs: Math.round(elapsed()),
        rss: nodes.map((n) => Processes.rssOf(n.server.pid)),
        fds: nodes.map((n) => Processes.fdsOf(n.server.pid))
      }
      samples.push(sample)
      yield* Effect.logInfo("soak sample").pipe(
        Effect.annotateLogs({
          s: Math.round(sample.atMs / 1000),
          rssMiB: sample.rss.map((r) => Math.round(r / 1048576)).join("/"),
          fds: sample.fds.join("/"),
          acked: acked.length,
          duplicates,
          churned
        })
      )
      yield* Effect.sleep("5 seconds")
    }
    // Taken under the same load as the warm-up sample (the publisher is on its last tick).
    yield* sampleHeap(Math.round(elapsed()))
    yield* Fiber.join(publisher)
    yield* Fiber.join(churnLoop)
    yield* FiberSet.awaitEmpty(churners).pipe(Effect.timeout("30 seconds"), Effect.ignore)
    yield* Effect.sleep("2 seconds")
    const fds1 = nodes.map((n) => Processes.fdsOf(n.server.pid))
    const lost = received.reduce((n, got) => n + acked.filter((seq) => !got.has(seq)).length, 0)
    const afterWarm = samples.filter((s) => s.atMs >= options.warmupMs)
    const perNode = nodes.map((node, i) => {
      const rssWarm = median(afterWarm.slice(0, 3).map((s) => s.rss[i]!))
      const rssEnd = median(samples.slice(-3).map((s) => s.rss[i]!))
      const heapWarm = node.heap[0]!.heapUsed
      const heapEnd = node.heap.at(-1)!.heapUsed
      return {
        rssWarm,
        rssEnd,
        rssGrowthPct: growthPct(rssWarm, rssEnd),
        heapWarm,
        heapEnd,
        heapGrowthPct: growthPct(heapWarm, heapEnd),
        fdsAbove: fds1[i]! - fds0[i]!,
        alive: node.server.proc.exitCode === null && node.server.proc.signalCode === null
      }
    })
    const worst = (f: (n: typeof perNode[number]) => number) => Math.max(...perNode.map(f))
    const rssGrowthPct = worst((n) => n.rssGrowthPct)
    const heapGrowthPct = worst((n) => n.heapGrowthPct)
    const loadAvg = Os.loadavg().map((l) => Math.round(l * 100) / 100)
    const summary = {
      nodes: options.nodes,
      durationS: Math.round(options.durationMs / 1000),
      warmupS: Math.round(options.warmupMs / 1000),
      rate: options.rate,
      subscribers: options.subscribers,
      deliveriesPerS: options.rate * options.subscribers,
      acked: acked.length,
      refused,
      lost,
      duplicates,
      churned,
      churnFailures,
      firstChurnFailure,
      rssWarmMiB: mib(sum(perNode.map((n) => n.rssWarm))),
      rssEndMiB: mib(sum(perNode.map((n) => n.rssEnd))),
      rssGrowthPct,
      rssGrowthPctByNode: perNode.map((n) => n.rssGrowthPct),
      heapWarmMiB: mib(sum(perNode.map((n) => n.heapWarm))),
      heapEndMiB: mib(sum(perNode.map((n) => n.heapEnd))),
      heapGrowthPct,
      heapGrowthPctByNode: perNode.map((n) => n.heapGrowthPct),
      heapSamplesMiB: nodes.map((n) => n.heap.map((h) => mib(h.heapUsed))),
      fdsBaseline: fds0,
      fdsEnd: fds1,
      serverHeapMb: options.serverHeapMb,
      serverAlive: perNode.every((n) => n.alive),
      loadAvg
    }
    // Health of this run (the exit status); the report also holds the run to the 30-minute target.
    const health = [
      Report.equals("lost", lost, 0),
      Report.equals("duplicates", duplicates, 0),
      Report.equals("refused", refused, 0),
      Report.atMost(options.nodes === 1 ? "RSS growth" : "RSS growth (worst node)", rssGrowthPct, 5, " %"),
      Report.atMost(options.nodes === 1 ? "heap growth" : "heap growth (worst node)", heapGrowthPct, 5, " %"),
      Report.atMost("fds above baseline", worst((n) => n.fdsAbove), 2),
      Report.holds(options.nodes === 1 ? "server alive at the end" : "every node alive at the end", summary.serverAlive)
    ]
    const ok = health.every(Report.passes)
    const load = `; load average at the end ${loadAvg.join(" / ")} (1/5/15 min, 2 cores shared)`
    if (options.report && options.nodes > 1) {
      const byNode = (xs: ReadonlyArray<number>) => xs.join(" / ")
      yield* Report.record("soak-cluster", "Scale-out soak (`npm run soak -- --nodes 3`)", [{
        test:
          `soak ${summary.durationS} s on ${options.nodes} nodes (PostgreSQL + NATS): 1 publisher on node 1 × ${summary.subscribers} subscribers spread over the nodes at ${summary.rate} msg/s (${summary.deliveriesPerS} deliveries/s), ${options.churnPerMin} churn sessions/min spread over the nodes`,
        figure:
          `${summary.acked} acknowledged, ${summary.lost} lost, ${summary.duplicates} duplicates, ${summary.churned} churn sessions (${summary.churnFailures} failed); RSS per node ${
            byNode(summary.rssGrowthPctByNode)
          } % after a ${summary.warmupS} s warm-up (all nodes ${summary.rssWarmMiB} → ${summary.rssEndMiB} MiB), heap after GC per node ${
            byNode(summary.heapGrowthPctByNode)
          } % (${summary.heapWarmMiB} → ${summary.heapEndMiB} MiB), fds ${byNode(summary.fdsBaseline)} → ${
            byNode(summary.fdsEnd)
          }; ${summary.serverAlive ? "every node alive" : "a node DIED"} at the end${load}`,
        target: "10 min at a steady load: 0 lost, 0 duplicates, RSS growth ≤ 5 % (issue 17)",
        checks: [Report.atLeast("duration", summary.durationS, 600, " s"), ...health]
      }], [
        "Each node runs with the heap probe (see the soak section) and a V8 old-space cap of `--server-heap-mb`; RSS and heap growth are judged per node, the worst node counting.",
        "The deployment is a scratch PostgreSQL database on the machine's server and a `nats-server` of the soak's own on a free port, all on the same 2-core box as the load generator."
      ], { force: true, label: "`npm run soak -- --nodes 3`" })
    } else if (options.report) {
      // BENCH-AND-RELIABILITY §6.3: 30 minutes at 50 % of T1 (the 1→100 saturation in BENCHMARKS.md,
      // ~200 000 deliveries/s).
      const checks = [
        Report.atLeast("duration", summary.durationS, 1800, " s"),
        Report.atLeast("deliveries/s", summary.deliveriesPerS, 100_000),
        ...health
      ]
      yield* Report.record("soak", "Soak (`npm run soak`)", [{
        test:
          `soak ${summary.durationS} s: 1 publisher × ${summary.subscribers} subscribers at ${summary.rate} msg/s (${summary.deliveriesPerS} deliveries/s), ${options.churnPerMin} churn sessions/min`,
        figure:
          `${summary.acked} acknowledged, ${summary.lost} lost, ${summary.duplicates} duplicates, ${summary.churned} churn sessions (${summary.churnFailures} failed); RSS ${summary.rssWarmMiB} → ${summary.rssEndMiB} MiB after a ${summary.warmupS} s warm-up (${summary.rssGrowthPct} %), heap after GC ${summary.heapWarmMiB} → ${summary.heapEndMiB} MiB (${summary.heapGrowthPct} %), fds ${
            summary.fdsBaseline[0]
          } → ${summary.fdsEnd[0]}; server heap capped at ${summary.serverHeapMb} MiB, ${
            summary.serverAlive ? "alive" : "DIED"
          } at the end`,
        target:
          "RSS growth ≤ 5 % after warm-up, heap after GC within 5 %, fds back to baseline, 0 loss (30 min at 50 % of T1)",
        checks
      }], [
        "Heap after GC: the server runs with `--expose-gc` and a preload that, on SIGUSR2, runs `gc()` twice and writes `process.memoryUsage()`; sampled at the end of the warm-up, every 5 min and at the end, under load. Growth compares `heapUsed` of the first and the last sample.",
        "Load is fixed (`--rate`, `--subscribers`), not derived from a measured T1 saturation: the load generator shares the 2-core box with the server."
      ], { force: true, label: "`npm run soak`" })
    }
    return { ...summary, ok }
  }))

const main = Effect.gen(function*() {
  const parsed = parseOptions(process.argv.slice(2))
  if (typeof parsed === "string") {
    yield* Effect.logError(parsed)
    return yield* Effect.sync(() => process.exit(2))
  }
  const summary = yield* run(parsed)
  yield* Console.log(JSON.stringify(summary))
  if (!summary.ok) yield* Effect.sync(() => process.exit(1))
}).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger))))

if (process.argv[1] !== undefined && /soak\.(js|ts)$/.test(process.argv[1])) {
  NodeRuntime.runMain(main, { disablePrettyLogger: true })
}
