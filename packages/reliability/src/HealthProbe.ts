/**
 * The health probe of BENCH-AND-RELIABILITY §6.3: one subscribed client receives a channel fed at
 * 10 msg/s by another; every acknowledged message must arrive (0 loss) while a bad-input or fault
 * test hammers the same server. Reports loss, duplicates and delivery latency percentiles.
 *
 * @since 0.1.0
 */
import * as Kit from "@conclave/testkit"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"

/** @since 0.1.0 @category models */
export interface ProbeResult {
  readonly acked: number
  readonly received: number
  readonly lost: number
  readonly duplicates: number
  readonly refused: number
  readonly p50Ms: number
  readonly p99Ms: number
}

/** @since 0.1.0 @category models */
export interface Probe {
  /** Stop publishing, wait (bounded) for the tail, report. */
  readonly stop: Effect.Effect<ProbeResult>
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

/**
 * Start a probe on `url` (the server must allow 10 msg/s per session: rate ≥ 10 or 0).
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = (
  url: string,
  options: { readonly name?: string; readonly intervalMs?: number } = {}
): Effect.Effect<Probe, Kit.WireError, Scope.Scope> =>
  Effect.gen(function*() {
    const name = options.name ?? `probe${Math.floor(Math.random() * 1e9)}`
    const channel = `${name}-ch`
    const pub = yield* Kit.register(url, `${name}-pub`)
    const sub = yield* Kit.register(url, `${name}-sub`)
    yield* pub.request(Kit.op({ kind: "create_channel", name: channel, visibility: "public" }))
    Kit.expectType(yield* pub.request({ type: "join", channel, token: null }), "joined")
    Kit.expectType(yield* sub.request({ type: "join", channel, token: null }), "joined")
    yield* Kit.keepAlive(sub)
    const sentAt = new Map<number, number>()
    const got = new Map<number, number>()
    const latencies: Array<number> = []
    let duplicates = 0
    let refused = 0
    const sendTimes = new Map<string, number>()
    sub.onFrame = (frame) => {
      if (frame.type !== "channel_msg" || frame.channel !== channel || frame.seq === null) return
      if (got.has(frame.seq)) duplicates++
      got.set(frame.seq, (got.get(frame.seq) ?? 0) + 1)
      const t0 = frame.payload.kind === "plain" ? sendTimes.get(frame.payload.text) : undefined
      if (t0 !== undefined) latencies.push(performance.now() - t0)
    }
    let i = 0
    const publisher = yield* Effect.gen(function*() {
      for (;;) {
        const text = `${name}#${i++}`
        sendTimes.set(text, performance.now())
        const reply = yield* pub.request({ type: "channel_msg", channel, payload: Kit.plain(text) }).pipe(
          Effect.option
        )
        if (Option.isSome(reply) && reply.value.type === "ack" && reply.value.seq !== null) {
          sentAt.set(reply.value.seq, yield* Clock.currentTimeMillis)
        } else refused++
        yield* Effect.sleep(options.intervalMs ?? 100)
      }
    }).pipe(Effect.forkScoped)
    return {
      stop: Effect.gen(function*() {
        yield* Fiber.interrupt(publisher)
        yield* Kit.eventually(
          "probe tail",
          Effect.sync(() => [...sentAt.keys()].every((s) => got.has(s)) ? Option.some(true) : Option.none()),
          "3 seconds"
        ).pipe(Effect.ignore)
        const lost = [...sentAt.keys()].filter((s) => !got.has(s)).length
        const sorted = [...latencies].sort((a, b) => a - b)
        return {
          acked: sentAt.size,
          received: got.size,
          lost,
          duplicates,
          refused,
          p50Ms: Math.round(percentile(sorted, 50) * 10) / 10,
          p99Ms: Math.round(percentile(sorted, 99) * 10) / 10
        }
      })
    }
  })

/** One-line rendering for reports. @since 0.1.0 @category rendering */
export const describe = (r: ProbeResult): string =>
  `probe: ${r.acked} acked, ${r.lost} lost, ${r.duplicates} dup, p99 ${r.p99Ms} ms`

/**
 * Crashes counted at the end of a test: 0 when the server at `port` still answers `GET /health`
 * with `200 ok` within 2 s, else 1.
 *
 * @since 0.1.0
 * @category checks
 */
export const crashes = (port: number): Effect.Effect<number> =>
  Effect.async<number>((resume) => {
    const req = Http.get({ host: "127.0.0.1", port, path: "/health", timeout: 2000 }, (res) => {
      let body = ""
      res.on("data", (b: Buffer) => void (body += b.toString("utf8")))
      res.on("end", () => resume(Effect.succeed(res.statusCode === 200 && body.trim() === "ok" ? 0 : 1)))
    })
    req.on("timeout", () => req.destroy(new Error("timeout")))
    req.on("error", () => resume(Effect.succeed(1)))
    return Effect.sync(() => req.destroy())
  })
