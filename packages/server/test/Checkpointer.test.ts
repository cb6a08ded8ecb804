import * as Kit from "@conclave/testkit"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import Sqlite from "better-sqlite3"
import { Chunk, Context, Effect, Exit, Layer, Logger, LogLevel, Scope, TestClock } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Checkpointer from "../src/internal/checkpointer.js"
import * as SqliteStore from "../src/SqliteStore.js"
import { type NewMessage, Store } from "../src/Store.js"
import { capturing } from "./support/Observe.js"

const NOW = "2026-11-24T00:00:00Z"

/** A WAL database with rows that only the WAL holds (the writer never checkpoints by itself). */
const walDatabase = (file: string, rows: number) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const db = new Sqlite(file)
      db.pragma("journal_mode = WAL")
      db.pragma("wal_autocheckpoint = 0")
      db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
      const insert = db.prepare("INSERT INTO t (v) VALUES (?)")
      for (let i = 0; i < rows; i++) insert.run(`row ${i}`)
      return db
    }),
    (db) => Effect.sync(() => db.close())
  )

/** The rows of table `table` in the database file alone: a copy of it without its WAL. */
const rowsInMainFile = (file: string, table: string): number => {
  const copy = `${file}.copy`
  fs.copyFileSync(file, copy)
  const db = new Sqlite(copy, { readonly: true })
  try {
    const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE name = ?").get(table)
    return exists === undefined ? 0 : (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n
  } catch {
    // a copy taken while a checkpoint is writing pages may be torn: not yet
    return -1
  } finally {
    db.close()
    fs.rmSync(copy, { force: true })
  }
}

// until the fiber under test waits on the TestClock (so that an adjustment wakes it)
const sleeping: Effect.Effect<void> = Effect.suspend(function loop(left = 1000): Effect.Effect<void> {
  return Effect.flatMap(TestClock.sleeps(), (sleeps) =>
    Chunk.isNonEmpty(sleeps) ? Effect.void : left === 0
      ? Effect.dieMessage("timed out waiting for a sleep on the TestClock")
      : Effect.zipRight(Effect.yieldNow(), loop(left - 1)))
})

const msg = (text: string): NewMessage => ({
  channel: "ops",
  from: "aaron/workstation/razel",
  payload: { kind: "plain", text },
  ts_ms: Date.parse(NOW),
  origin: "agent",
  reply_to: null
})

/** Every log line, debug included. */
const capturingAll = () => {
  const { capture, lines } = capturing()
  return {
    layer: Layer.merge(Logger.replace(Logger.defaultLogger, capture), Logger.minimumLogLevel(LogLevel.Debug)),
    lines
  }
}

describe("Checkpointer (worker thread)", () => {
  it.scopedLive("copies the WAL's pages into the database file while the writer stays open", () =>
    Effect.gen(function*() {
      const file = path.join(yield* Kit.tempDir(), "wal.db")
      const writer = yield* walDatabase(file, 200)
      assert.strictEqual(rowsInMainFile(file, "t"), 0, "before the checkpoint the rows are only in the WAL")
      const checkpointer = yield* Checkpointer.make(file)
      const first = yield* checkpointer.checkpoint
      assert.isFalse(first.busy)
      assert.isAbove(first.log, 0)
      assert.strictEqual(first.checkpointed, first.log, "every frame copied")
      assert.strictEqual(rowsInMainFile(file, "t"), 200)
      // the writer keeps writing; the next checkpoint copies the new rows too
      writer.prepare("INSERT INTO t (v) VALUES (?)").run("later")
      const second = yield* checkpointer.checkpoint
      assert.strictEqual(second.checkpointed, second.log)
      assert.strictEqual(rowsInMainFile(file, "t"), 201)
    }))

  it.scopedLive("concurrent checkpoints run one at a time and each gets its own answer", () =>
    Effect.gen(function*() {
      const file = path.join(yield* Kit.tempDir(), "wal.db")
      yield* walDatabase(file, 50)
      const checkpointer = yield* Checkpointer.make(file)
      const results = yield* Effect.all(Array.from({ length: 8 }, () => checkpointer.checkpoint), {
        concurrency: "unbounded"
      })
      assert.strictEqual(results.length, 8)
      for (const result of results) assert.strictEqual(result.checkpointed, result.log)
    }))

  it.scopedLive("a file that does not exist is a clear failure, not a hang", () =>
    Effect.gen(function*() {
      const file = path.join(yield* Kit.tempDir(), "missing", "none.db")
      const exit = yield* Effect.exit(Checkpointer.make(file))
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        const error = exit.cause._tag === "Fail" ? exit.cause.error : undefined
        assert.instanceOf(error, Checkpointer.CheckpointerError)
        assert.match(error?.reason ?? "", /directory does not exist|unable to open|no such/i)
      }
    }))

  it.scopedLive("after its scope closes, the thread is gone and a checkpoint fails at once", () =>
    Effect.gen(function*() {
      const file = path.join(yield* Kit.tempDir(), "wal.db")
      yield* walDatabase(file, 10)
      const scope = yield* Scope.make()
      const checkpointer = yield* Scope.extend(Checkpointer.make(file), scope)
      yield* checkpointer.checkpoint
      yield* Scope.close(scope, Exit.void)
      const exit = yield* checkpointer.checkpoint.pipe(Effect.timeout("5 seconds"), Effect.exit)
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit) && exit.cause._tag === "Fail") {
        assert.instanceOf(exit.cause.error, Checkpointer.CheckpointerError)
      } else {
        assert.fail("expected a CheckpointerError")
      }
    }))
})

describe("SqliteStore background checkpoints", () => {
  it.scopedLive("after a write, committed messages reach the database file without the writer checkpointing", () =>
    Effect.gen(function*() {
      const file = path.join(yield* Kit.tempDir(), "conclave.db")
      const ctx = yield* Layer.build(
        SqliteStore.layerClient.pipe(Layer.provideMerge(SqliteStore.layerSqlite({ filename: file })))
      )
      const store = Context.get(ctx, Store)
      const sql = Context.get(ctx, SqlClient.SqlClient)
      yield* store.createChannel({ name: "ops", visibility: "private", createdBy: "aaron", now: NOW })
      for (let i = 0; i < 20; i++) yield* store.appendMessage(msg(`m${i}`))
      // far fewer pages than any auto-checkpoint threshold: only the worker copies them
      yield* Kit.eventually("the rows to be checkpointed", () => rowsInMainFile(file, "messages") === 20)
      const [row] = yield* sql<{ wal_autocheckpoint: number }>`PRAGMA wal_autocheckpoint`
      assert.strictEqual(row?.wal_autocheckpoint, SqliteStore.WAL_CHECKPOINT_PAGES.background)
    }))

  const withSql = (file: string) =>
    Effect.map(Layer.build(SqliteStore.layerSqlite({ filename: file })), (ctx) => Context.get(ctx, SqlClient.SqlClient))
  const autoCheckpoint = (sql: SqlClient.SqlClient) =>
    Effect.map(sql<{ wal_autocheckpoint: number }>`PRAGMA wal_autocheckpoint`, (rows) => rows[0]?.wal_autocheckpoint)

  it.scoped("if the worker cannot start, a warning says why and the writer checkpoints alone", () =>
    Effect.gen(function*() {
      const sql = yield* withSql(path.join(yield* Kit.tempDir(), "conclave.db"))
      yield* sql`PRAGMA wal_autocheckpoint = 5`
      const { layer, lines } = capturingAll()
      yield* Checkpointer.runInBackground({
        sql,
        filename: "conclave.db",
        written: () => true,
        start: () => Effect.fail(new Checkpointer.CheckpointerError({ reason: "no threads here" }))
      }).pipe(Effect.provide(layer))
      yield* Kit.eventually("the warning", () => lines.some((l) => l.message === "background checkpoints stopped"))
      const line = lines.find((l) => l.message === "background checkpoints stopped")
      assert.strictEqual(line?.annotations.reason, "no threads here")
      assert.strictEqual(yield* autoCheckpoint(sql), SqliteStore.WAL_CHECKPOINT_PAGES.alone)
    }))

  it.scoped("checkpoints only after writes; a worker that stops later hands checkpoints back to the writer", () =>
    Effect.gen(function*() {
      const sql = yield* withSql(path.join(yield* Kit.tempDir(), "conclave.db"))
      const { layer, lines } = capturingAll()
      let wrote = false
      let calls = 0
      yield* Checkpointer.runInBackground({
        sql,
        filename: "conclave.db",
        written: () => {
          const w = wrote
          wrote = false
          return w
        },
        start: () =>
          Effect.succeed({
            checkpoint: Effect.suspend(() => {
              calls++
              return calls === 1
                ? Effect.succeed({ busy: false, log: 10, checkpointed: 10 })
                : Effect.fail(new Checkpointer.CheckpointerError({ reason: "the checkpoint worker exited (code 1)" }))
            })
          })
      }).pipe(Effect.provide(layer))
      yield* Kit.eventually("the start", () => lines.some((l) => l.message === "background checkpoints started"))
      assert.strictEqual(yield* autoCheckpoint(sql), SqliteStore.WAL_CHECKPOINT_PAGES.background)
      // nothing written: ticks pass without a checkpoint
      for (let i = 0; i < 4; i++) {
        yield* sleeping
        yield* TestClock.adjust(SqliteStore.CHECKPOINT_INTERVAL)
      }
      assert.strictEqual(calls, 0)
      wrote = true
      yield* sleeping
      yield* TestClock.adjust(SqliteStore.CHECKPOINT_INTERVAL)
      yield* Kit.eventually("the first checkpoint", () => calls === 1)
      wrote = true
      yield* sleeping
      yield* TestClock.adjust(SqliteStore.CHECKPOINT_INTERVAL)
      yield* Kit.eventually("the warning", () => lines.some((l) => l.message === "background checkpoints stopped"))
      assert.strictEqual(calls, 2)
      assert.strictEqual(yield* autoCheckpoint(sql), SqliteStore.WAL_CHECKPOINT_PAGES.alone)
    }))
})
