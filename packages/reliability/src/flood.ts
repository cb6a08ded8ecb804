/**
 * The pre-auth flood's attacker as its own process (`node packages/reliability/dist/flood.js`): raw
 * TCP upgrade requests offered at a fixed rate (open loop: an attempt starts on schedule whether or
 * not the earlier ones have finished), so the figure is what the server sustains, not how fast one
 * event loop shared with the server can dial. Each upgraded socket either sends a non-`hello` first
 * frame (every 4th attempt; it must be closed with 1008) or stays silent for `--hold-ms` (past the
 * per-address pending cap the server displaces the oldest silent socket), then goes.
 *
 * Options: `--port P` (required), `--seconds 30`, `--rate 2000` (attempts/s), `--hold-ms 100`,
 * `--max-in-flight 4000` (attempts not started because this many are still open are counted as
 * `skipped`: the driver, not the server, was the limit). Prints one JSON line of counts on stdout.
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Net from "node:net"
import * as RawWs from "./RawWs.js"

/** What one driver process counted. @since 0.1.0 @category models */
export const FloodCounts = Schema.Struct({
  attempts: Schema.Number,
  skipped: Schema.Number,
  upgraded: Schema.Number,
  refused429: Schema.Number,
  /** Answered 503: shed because too many strangers waited for the server's turn. */
  refused503: Schema.Number,
  failed: Schema.Number,
  displaced: Schema.Number,
  wrongFirst: Schema.Number,
  closedWrongFirst: Schema.Number,
  /** Non-`hello` first frames whose socket was closed without a close frame (displaced past the cap first). */
  cutWrongFirst: Schema.Number,
  elapsedMs: Schema.Number,
  upgradeP50Ms: Schema.Number,
  upgradeP99Ms: Schema.Number,
  /** CPU time this driver process used (user + system), microseconds. */
  cpuUs: Schema.Number
})

/** @since 0.1.0 @category models */
export type FloodCounts = typeof FloodCounts.Type

/** @since 0.1.0 @category options */
export interface FloodOptions {
  readonly port: number
  readonly seconds: number
  readonly rate: number
  readonly holdMs: number
  readonly maxInFlight: number
}

/** Parse the command line; a string says what is wrong. @since 0.1.0 @category options */
export const parseOptions = (argv: ReadonlyArray<string>): FloodOptions | string => {
  const known = ["--port", "--seconds", "--rate", "--hold-ms", "--max-in-flight"]
  const unknown = argv.filter((a) => a.startsWith("--") && !known.includes(a))
  if (unknown.length > 0) return `unknown option ${unknown[0]}`
  const num = (name: string, def: number | undefined, min: number, max: number): number | string => {
    const i = argv.indexOf(name)
    const raw = i >= 0 ? argv[i + 1] : undefined
    if (raw === undefined) return def ?? `${name} is required`
    const n = Number(raw)
    return Number.isInteger(n) && n >= min && n <= max
      ? n
      : `${name} must be an integer in ${min}..${max}, got \`${raw}\``
  }
  const port = num("--port", undefined, 1, 65535)
  const seconds = num("--seconds", 30, 1, 3600)
  const rate = num("--rate", 2000, 1, 100_000)
  const holdMs = num("--hold-ms", 100, 0, 60_000)
  const maxInFlight = num("--max-in-flight", 4000, 1, 15_000)
  for (const v of [port, seconds, rate, holdMs, maxInFlight]) if (typeof v === "string") return v
  return {
    port: port as number,
    seconds: seconds as number,
    rate: rate as number,
    holdMs: holdMs as number,
    maxInFlight: maxInFlight as number
  }
}

const TICK_MS = 5
const UPGRADE_TIMEOUT_MS = 5_000
const WRONG_FIRST_WAIT_MS = 2_000

const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

/**
 * Offer `rate` upgrade attempts per second for `seconds`, then wait for the open ones to finish.
 *
 * @since 0.1.0
 * @category running
 */
export const run = (options: FloodOptions): Effect.Effect<FloodCounts> =>
  Effect.gen(function*() {
    const counts = {
      attempts: 0,
      skipped: 0,
      upgraded: 0,
      refused429: 0,
      refused503: 0,
      failed: 0,
      displaced: 0,
      wrongFirst: 0,
      closedWrongFirst: 0,
      cutWrongFirst: 0
    }
    const upgradeMs: Array<number> = []
    let inFlight = 0
    const request = Buffer.from(
      `GET / HTTP/1.1\r\nHost: 127.0.0.1:${options.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`
    )
    const wrongFirst = RawWs.frame({ opcode: 1, payload: Buffer.from("{\"type\":\"list_users\"}") })
    // The hot path is plain callbacks on purpose: an attempt costs the driver a socket and a few
    // closures, not fibers and error values, so that the driver is not the limit it measures.
    const attempt = (n: number, started: number) => {
      inFlight++
      const socket = Net.connect({ host: "127.0.0.1", port: options.port })
      socket.setNoDelay(true)
      let head = ""
      let upgraded = false
      let after: Buffer = Buffer.alloc(0)
      let timer: ReturnType<typeof setTimeout> | undefined
      let settled = false
      // an answer other than 101: refused (429, 503), or a failure
      const refusedOrFailed = () => {
        if (head.startsWith("HTTP/1.1 429")) counts.refused429++
        else if (head.startsWith("HTTP/1.1 503")) counts.refused503++
        else counts.failed++
      }
      const settle = () => {
        if (settled) return
        settled = true
        inFlight--
        if (timer !== undefined) clearTimeout(timer)
        socket.destroy()
      }
      timer = setTimeout(() => {
        if (!upgraded) counts.failed++
        settle()
      }, UPGRADE_TIMEOUT_MS)
      socket.on("error", () => {})
      socket.on("close", () => {
        if (!upgraded && !settled) refusedOrFailed()
        if (upgraded && !settled) {
          if (n % 4 !== 0) counts.displaced++ // past the cap a newcomer displaces the oldest silent socket (issue 22)
          else if (RawWs.closeCodeIn(after) === 1008) counts.closedWrongFirst++
          else if (RawWs.closeCodeIn(after) === undefined) counts.cutWrongFirst++
        }
        settle()
      })
      socket.on("data", (chunk: Buffer) => {
        if (upgraded) {
          after = after.length === 0 ? chunk : Buffer.concat([after, chunk])
          // the server's close frame is its answer: counted when it arrives (the server then waits
          // for a close frame this driver never sends, so the socket itself closes much later)
          if (n % 4 === 0 && RawWs.closeCodeIn(after) !== undefined) {
            if (RawWs.closeCodeIn(after) === 1008) counts.closedWrongFirst++
            settle()
          }
          return
        }
        head += chunk.toString("latin1")
        const end = head.indexOf("\r\n\r\n")
        if (end < 0) return
        if (!head.startsWith("HTTP/1.1 101")) {
          refusedOrFailed()
          return settle()
        }
        upgraded = true
        counts.upgraded++
        upgradeMs.push(performance.now() - started)
        after = Buffer.from(chunk.subarray(chunk.length - (head.length - end - 4)))
        if (timer !== undefined) clearTimeout(timer)
        if (n % 4 === 0) {
          counts.wrongFirst++
          socket.write(wrongFirst)
          // the server answers and closes (counted on close); bounded
          timer = setTimeout(settle, WRONG_FIRST_WAIT_MS)
        } else {
          timer = setTimeout(settle, options.holdMs)
        }
      })
      socket.write(request)
    }

    const t0 = performance.now()
    const endAt = t0 + options.seconds * 1000
    let offered = 0
    const offer = (n: number, now: number) => {
      for (let i = 0; i < n; i++) {
        offered++
        if (inFlight >= options.maxInFlight) {
          counts.skipped++
          continue
        }
        counts.attempts++
        attempt(offered, now)
      }
    }
    for (;;) {
      const now = performance.now()
      if (now >= endAt) break
      offer(Math.floor(((now - t0) / 1000) * options.rate) - offered, now)
      yield* Effect.sleep(TICK_MS)
    }
    // the last tick's share (a tick that came late must not shrink the offer): rate × seconds in all
    offer(options.rate * options.seconds - offered, performance.now())
    const elapsedMs = performance.now() - t0
    // the open ones finish within the upgrade timeout and the hold
    yield* Effect.sleep(Math.max(options.holdMs, WRONG_FIRST_WAIT_MS) + 100).pipe(
      Effect.repeat({ until: () => inFlight === 0, times: Math.ceil(UPGRADE_TIMEOUT_MS / 100) + 10 })
    )
    upgradeMs.sort((a, b) => a - b)
    const cpu = process.cpuUsage()
    return {
      ...counts,
      elapsedMs: Math.round(elapsedMs),
      upgradeP50Ms: percentile(upgradeMs, 50),
      upgradeP99Ms: percentile(upgradeMs, 99),
      cpuUs: cpu.user + cpu.system
    }
  })

const main = Effect.gen(function*() {
  const options = parseOptions(process.argv.slice(2))
  if (typeof options === "string") {
    yield* Console.error(`flood: ${options}`)
    return yield* Effect.sync(() => process.exit(2))
  }
  const counts = yield* run(options)
  yield* Console.log(JSON.stringify(counts))
})

if (process.argv[1] !== undefined && /flood\.[jt]s$/.test(process.argv[1])) NodeRuntime.runMain(main)
