/**
 * The real server Layer embedded in the test process on 127.0.0.1:0 over a SQLite file in a temp
 * dir (or a caller-chosen dir), with logs silenced. Closing the scope drains it.
 *
 * @since 0.1.0
 */
import { ServerConfig, ServerLive, SqliteStore } from "@conclave/server"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

/** A temp dir removed when the scope closes. @since 0.1.0 @category resources */
export const tempDir = (prefix = "conclave-rel-"): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), prefix))),
    (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
  )

/** @since 0.1.0 @category models */
export interface Running {
  readonly url: string
  readonly port: number
  readonly dir: string
  readonly dbFile: string
}

/**
 * Start the server in the current scope. Defaults suited to load tests: no rate limit, no
 * per-address pending cap unless given.
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = (
  options: Partial<ServerConfig.ServerConfigShape> = {},
  dir?: string
): Effect.Effect<Running, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const base = dir ?? (yield* tempDir())
    const dbFile = Path.join(base, "conclave.db")
    const context = yield* Layer.build(
      ServerLive.ServerLive.pipe(
        Layer.provide(
          ServerConfig.layer({ host: "127.0.0.1", port: 0, ratePerSecond: 0, registerLimitPerMinute: 0, ...options })
        ),
        Layer.provide(SqliteStore.layer({ filename: dbFile }))
      )
    )
    const address = Context.get(context, ServerLive.ServerAddress)
    return { url: address.url, port: address.port, dir: base, dbFile }
  }).pipe(Logger.withMinimumLogLevel(process.env.CONCLAVE_RELIABILITY_LOG === "1" ? LogLevel.Debug : LogLevel.None))

/** Open file descriptors of this process. @since 0.1.0 @category metrics */
export const ownFds = (): number => Fs.readdirSync("/proc/self/fd").length

/**
 * `ownFds` once the count has rested (the same over 200 ms, within 5 s): a baseline that does not
 * count what a freshly started server is still opening (its store's checkpoint thread).
 *
 * @since 0.1.0
 * @category metrics
 */
export const restingFds: Effect.Effect<number> = Effect.gen(function*() {
  let last = ownFds()
  let since = yield* Clock.currentTimeMillis
  const deadline = since + 5000
  while (true) {
    yield* Effect.sleep(Duration.millis(20))
    const now = yield* Clock.currentTimeMillis
    const count = ownFds()
    if (count !== last) {
      last = count
      since = now
    } else if (now - since >= 200 || now >= deadline) {
      return count
    }
  }
})
