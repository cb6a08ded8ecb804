/**
 * WAL checkpoints on a worker thread. better-sqlite3 runs every statement on the calling thread, and
 * a checkpoint waits for two `fsync`s (the WAL before the copy, the database file after it): a few
 * milliseconds during which the event loop would deliver nothing. A second connection on a worker
 * thread copies committed pages back into the database file (`PRAGMA wal_checkpoint(PASSIVE)`, which
 * never waits for the writer nor blocks it), so the writer's own auto-checkpoint only has the few
 * pages committed since then left to copy when the WAL reaches its size limit.
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { createRequire } from "node:module"
import { Worker } from "node:worker_threads"

/** WAL pages at which the writer's connection checkpoints itself: with the worker running, and alone. */
export const WAL_CHECKPOINT_PAGES = { background: 2048, alone: 1000 } as const

/** How often the worker checkpoints a WAL written to since (frequent checkpoints stay short). */
export const CHECKPOINT_INTERVAL: Duration.Duration = Duration.millis(250)

/** What a checkpoint found: frames in the WAL and frames now copied into the database file. */
export interface WalCheckpoint {
  readonly busy: boolean
  readonly log: number
  readonly checkpointed: number
}

/** The worker could not be started, or stopped, or its checkpoint failed. */
export class CheckpointerError extends Data.TaggedError("CheckpointerError")<{ readonly reason: string }> {}

/** A worker thread with its own connection to one database file. */
export interface Checkpointer {
  /** One passive checkpoint; one at a time (a second call waits for the first). */
  readonly checkpoint: Effect.Effect<WalCheckpoint, CheckpointerError>
}

// The worker's whole program (CommonJS, evaluated): open the file, say ready, then answer each
// numbered request with the checkpoint's counts or its error; `close` closes the connection and lets
// the thread end.
const WORKER_SOURCE = `"use strict"
const { parentPort, workerData } = require("node:worker_threads")
const describe = (error) => String((error && error.message) || error)
let db
try {
  const Database = require(workerData.modulePath)
  db = new Database(workerData.filename, { fileMustExist: true, timeout: 0 })
  parentPort.postMessage({ id: 0, ready: true })
} catch (error) {
  parentPort.postMessage({ id: 0, error: describe(error) })
  parentPort.close()
}
if (db !== undefined) {
  parentPort.on("message", (request) => {
    if (request === "close") {
      try { db.close() } catch {}
      parentPort.close()
      return
    }
    try {
      const row = db.pragma("wal_checkpoint(PASSIVE)")[0]
      parentPort.postMessage({ id: request, busy: row.busy !== 0, log: row.log, checkpointed: row.checkpointed })
    } catch (error) {
      parentPort.postMessage({ id: request, error: describe(error) })
    }
  })
}
`

const Reply = Schema.Union(
  Schema.Struct({ id: Schema.Number, ready: Schema.Literal(true) }),
  Schema.Struct({ id: Schema.Number, busy: Schema.Boolean, log: Schema.Number, checkpointed: Schema.Number }),
  Schema.Struct({ id: Schema.Number, error: Schema.String })
)
type Reply = typeof Reply.Type
const decodeReply = Schema.decodeUnknownEither(Reply)

/** How long closing waits for the worker to close its connection before stopping the thread. */
const CLOSE_TIMEOUT = Duration.seconds(2)

const betterSqlite3 = (): string => createRequire(import.meta.url).resolve("better-sqlite3")

/**
 * Start the worker for `filename` (an existing database file) and wait until its connection is
 * open. The scope closes the connection and ends the thread. The thread never keeps the process
 * alive by itself.
 */
export const make = (filename: string): Effect.Effect<Checkpointer, CheckpointerError, Scope.Scope> =>
  Effect.gen(function*() {
    // The reply awaited now (by request id), why the worker is gone once it is (it exited, failed or
    // answered nonsense), and whether its thread has ended.
    let waiting: { readonly id: number; readonly resume: (reply: Either.Either<Reply, string>) => void } | undefined
    let gone: string | undefined
    let exited = false
    // the worker's first message (its connection opened, or not), kept if it comes before it is awaited
    let opened: Reply | undefined
    const stop = (reason: string) => {
      gone ??= reason
      const w = waiting
      waiting = undefined
      w?.resume(Either.left(gone))
    }
    const worker = yield* Effect.acquireRelease(
      Effect.try({
        try: () =>
          new Worker(WORKER_SOURCE, {
            eval: true,
            workerData: { filename, modulePath: betterSqlite3() },
            stdout: false,
            stderr: false
          }),
        catch: (error) => new CheckpointerError({ reason: `cannot start the checkpoint worker: ${String(error)}` })
      }),
      (worker) =>
        Effect.async<void>((resume) => {
          if (exited) return resume(Effect.void)
          worker.once("exit", () => resume(Effect.void))
          worker.postMessage("close")
        }).pipe(
          Effect.timeout(CLOSE_TIMEOUT),
          Effect.catchAll(() => Effect.promise(() => worker.terminate())),
          Effect.asVoid
        )
    )
    worker.unref()
    worker.on("message", (message: unknown) => {
      const decoded = decodeReply(message)
      if (Either.isLeft(decoded)) return stop("the checkpoint worker sent an unexpected reply")
      if (decoded.right.id === 0) opened = decoded.right
      if (waiting === undefined || waiting.id !== decoded.right.id) return
      const w = waiting
      waiting = undefined
      w.resume(Either.right(decoded.right))
    })
    worker.on("error", (error) => stop(`the checkpoint worker failed: ${error.message}`))
    worker.on("exit", (code) => {
      exited = true
      stop(`the checkpoint worker exited (code ${code})`)
    })

    let nextId = 0
    const request = (id: number): Effect.Effect<Reply, CheckpointerError> =>
      Effect.async<Reply, CheckpointerError>((resume) => {
        const settle = (reply: Either.Either<Reply, string>) =>
          resume(
            Either.isRight(reply)
              ? Effect.succeed(reply.right)
              : Effect.fail(new CheckpointerError({ reason: reply.left }))
          )
        if (id === 0 && opened !== undefined) return settle(Either.right(opened))
        if (gone !== undefined) return settle(Either.left(gone))
        waiting = { id, resume: settle }
        if (id > 0) worker.postMessage(id)
        return Effect.sync(() => {
          if (waiting?.id === id) waiting = undefined
        })
      })
    const failed = (reply: Reply) =>
      new CheckpointerError({
        reason: "error" in reply ? reply.error : "an unexpected reply from the checkpoint worker"
      })

    // the first reply says whether the connection opened
    yield* Effect.flatMap(request(0), (reply) => "ready" in reply ? Effect.void : Effect.fail(failed(reply)))

    const lock = yield* Effect.makeSemaphore(1)
    const checkpoint = lock.withPermits(1)(
      Effect.suspend(() => request(++nextId)).pipe(
        Effect.flatMap((reply): Effect.Effect<WalCheckpoint, CheckpointerError> =>
          "log" in reply
            ? Effect.succeed({ busy: reply.busy, log: reply.log, checkpointed: reply.checkpointed })
            : Effect.fail(failed(reply))
        )
      )
    )
    return { checkpoint } satisfies Checkpointer
  })

/**
 * Checkpoints off the event loop for the database file `filename`, whose writer is `sql`'s
 * connection: a worker started at once (its thread and connection belong to the server's resting
 * footprint from the start, not to its load; startup does not wait for it) checkpoints every
 * `CHECKPOINT_INTERVAL` while `written` says something was committed since it was last asked, and
 * the writer's auto-checkpoint moves to `WAL_CHECKPOINT_PAGES.background`, so it rarely runs and
 * finds little to copy when it does. If the worker cannot start or stops, a warning is logged and
 * the writer checkpoints alone again at `WAL_CHECKPOINT_PAGES.alone` (SQLite's default). `start`
 * is `make` but in tests.
 */
export const runInBackground = (options: {
  readonly sql: SqlClient.SqlClient
  readonly filename: string
  readonly written: () => boolean
  readonly start?: (filename: string) => Effect.Effect<Checkpointer, CheckpointerError, Scope.Scope>
}): Effect.Effect<void, never, Scope.Scope> => {
  const { filename, sql, written } = options
  const start = options.start ?? make
  const autoCheckpoint = (pages: number) => sql.unsafe(`PRAGMA wal_autocheckpoint = ${pages}`)
  const nextWrite = Effect.repeat(Effect.sleep(CHECKPOINT_INTERVAL), { until: written })
  return Effect.scoped(Effect.gen(function*() {
    const checkpointer = yield* start(filename)
    yield* autoCheckpoint(WAL_CHECKPOINT_PAGES.background)
    yield* Effect.logDebug("background checkpoints started")
    yield* nextWrite.pipe(
      Effect.zipRight(checkpointer.checkpoint),
      Effect.forever
    )
  })).pipe(
    Effect.catchAll((error) =>
      Effect.ignore(autoCheckpoint(WAL_CHECKPOINT_PAGES.alone)).pipe(
        Effect.zipRight(Effect.logWarning("background checkpoints stopped")),
        Effect.annotateLogs({ reason: error._tag === "CheckpointerError" ? error.reason : error.message })
      )
    ),
    Effect.interruptible,
    Effect.forkScoped,
    Effect.asVoid
  )
}
