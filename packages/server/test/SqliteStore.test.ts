/**
 * What only the SQLite store has: PRAGMAs, its schema version, the file, rows of the wrong type,
 * and its group commit on one connection. Everything every store must do is the conformance suite
 * (support/StoreConformance.ts), run on SQLite by SqliteStoreConformance.test.ts.
 */
import { tempDir } from "@conclave/testkit"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import Sqlite from "better-sqlite3"
import { Context, Deferred, Effect, Fiber, Layer } from "effect"
import * as path from "node:path"
import { migrations } from "../src/internal/migrations.js"
import * as SqliteStore from "../src/SqliteStore.js"
import { type NewMessage, Store, StoreConflict, StoreError, type StoreShape } from "../src/Store.js"
import { allSuspended, channel, failure, msg, NOW, plain, texts } from "./support/StoreConformance.js"

const openStore = (filename: string) =>
  Layer.build(SqliteStore.layer({ filename })).pipe(Effect.map((ctx) => Context.get(ctx, Store)))

const openWithSql = (filename: string) =>
  Layer.build(SqliteStore.layerClient.pipe(Layer.provideMerge(SqliteStore.layerSqlite({ filename })))).pipe(
    Effect.map((ctx) => ({ store: Context.get(ctx, Store), sql: Context.get(ctx, SqlClient.SqlClient) }))
  )

/** `openWithSql` over a client that does not say it is SQLite's: a store without synchronous reads. */
const openWithoutSyncReads = (filename: string) =>
  Layer.build(
    SqliteStore.layerClient.pipe(
      Layer.provideMerge(Layer.map(SqliteStore.layerSqlite({ filename }), Context.omit(SqliteClient.SqliteClient)))
    )
  ).pipe(
    Effect.map((ctx) => ({ store: Context.get(ctx, Store), sql: Context.get(ctx, SqlClient.SqlClient) }))
  )

const dbFile = Effect.map(tempDir("conclave-store-"), (dir) => path.join(dir, "conclave.db"))

/** A store in a fresh file plus raw SQL access to the same connection. */
const fresh = Effect.flatMap(dbFile, openWithSql)

describe("SqliteStore", () => {
  describe("opening", () => {
    it.scoped("applies the PRAGMAs and records the schema version", () =>
      Effect.gen(function*() {
        const { sql } = yield* fresh
        const [journal] = yield* sql<{ journal_mode: string }>`PRAGMA journal_mode`
        const [sync] = yield* sql<{ synchronous: number }>`PRAGMA synchronous`
        const [fk] = yield* sql<{ foreign_keys: number }>`PRAGMA foreign_keys`
        const [busy] = yield* sql<{ timeout: number }>`PRAGMA busy_timeout`
        const [version] = yield* sql<{ user_version: number }>`PRAGMA user_version`
        assert.strictEqual(journal?.journal_mode, "wal")
        assert.strictEqual(sync?.synchronous, 1) // NORMAL
        assert.strictEqual(fk?.foreign_keys, 1)
        assert.strictEqual(busy?.timeout, SqliteStore.BUSY_TIMEOUT_MS)
        assert.strictEqual(version?.user_version, 4)
      }))

    it.scoped("migrates a version-1 database to per-channel seqs: old rows keep theirs, each channel goes on from its highest (D-42)", () =>
      Effect.gen(function*() {
        const file = yield* dbFile
        const v1 = new Sqlite(file)
        try {
          for (const statement of migrations[0]!.statements) v1.exec(statement)
          v1.exec("PRAGMA user_version = 1")
          v1.exec(
            "INSERT INTO channels (name, visibility, created_by, created_at) VALUES " +
              "('ops', 'public', 'a', '2026-01-01T00:00:00Z'), ('dev', 'public', 'a', '2026-01-01T00:00:00Z')"
          )
          const insert = v1.prepare(
            "INSERT INTO messages (channel, sender, payload, ts_ms, origin, reply_to) VALUES (?, 'a/b/c', ?, 1, 'human', NULL)"
          )
          for (const [name, text] of [["ops", "o1"], ["dev", "d1"], ["ops", "o2"], ["dev", "d2"]]) {
            insert.run(name, JSON.stringify(plain(text!)))
          }
        } finally {
          v1.close()
        }
        const store = yield* openStore(file)
        assert.strictEqual(yield* store.appendMessage(msg("ops", 2, "o3")), 4)
        assert.strictEqual(yield* store.appendMessage(msg("dev", 2, "d3")), 5)
        assert.strictEqual(yield* store.appendMessage(msg("ops", 3, "o4")), 5)
        const ops = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 10 })
        assert.deepStrictEqual(ops.messages.map((m) => m.seq), [1, 3, 4, 5])
        assert.deepStrictEqual(texts(ops.messages), ["o1", "o2", "o3", "o4"])
        assert.isTrue(yield* store.messageExists("dev", 4))
        assert.isFalse(yield* store.messageExists("dev", 3))
      }))

    it.scoped("migrating a version-1 file fills the name skeletons; look-alikes already there both stay (issue 22)", () =>
      Effect.gen(function*() {
        const file = yield* dbFile
        yield* Effect.scoped(Effect.gen(function*() {
          const ctx = yield* Layer.build(SqliteStore.layerSqlite({ filename: file }))
          const sql = Context.get(ctx, SqlClient.SqlClient)
          for (const statement of migrations[0]!.statements) yield* sql.unsafe(statement)
          yield* sql.unsafe("PRAGMA user_version = 1")
          yield* sql`INSERT INTO users (username, created_at) VALUES ('alice', ${NOW}), ('Alice', ${NOW})`
          yield* sql`INSERT INTO machines (user, name, pubkey, added_at) VALUES ('alice', 'ws', 'k1', ${NOW})`
          yield* sql`INSERT INTO channels (name, visibility, created_by, created_at) VALUES ('ops', 'public', 'alice', ${NOW})`
        }))
        const { sql, store } = yield* openWithSql(file)
        const users = yield* sql<{ username: string; skeleton: string | null }>`
          SELECT username, skeleton FROM users ORDER BY username`
        assert.strictEqual(users.filter((u) => u.skeleton === "alice").length, 1, JSON.stringify(users))
        assert.strictEqual(users.filter((u) => u.skeleton === null).length, 1, JSON.stringify(users))
        assert.isTrue(yield* store.userExists("alice"))
        assert.isTrue(yield* store.userExists("Alice"))
        const dup = yield* failure(store.registerUser({ username: "ALICE", machine: "m", pubkey: "k2", now: NOW }))
        assert.deepStrictEqual(dup, new StoreConflict({ what: "username", value: "ALICE" }))
        const ch = yield* failure(
          store.createChannel({ name: "оps", visibility: "public", createdBy: "alice", now: NOW })
        )
        assert.deepStrictEqual(ch, new StoreConflict({ what: "channel", value: "оps" }))
        const m = yield* failure(store.addMachine({ user: "alice", name: "WS", pubkey: "k3", now: NOW }))
        assert.deepStrictEqual(m, new StoreConflict({ what: "machine", value: "WS" }))
      }))

    it.scoped("refuses a database written by a newer schema", () =>
      Effect.gen(function*() {
        const file = yield* dbFile
        yield* Effect.scoped(Effect.gen(function*() {
          const { sql } = yield* openWithSql(file)
          yield* sql.unsafe("PRAGMA user_version = 99")
        }))
        const error = yield* failure(Effect.scoped(openStore(file)))
        assert.instanceOf(error, StoreError)
        assert.strictEqual(error.operation, "open")
      }))

    it.scoped("fails with StoreError when the file cannot be opened", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir()
        const error = yield* failure(Effect.scoped(openStore(path.join(dir, "missing", "conclave.db"))))
        assert.instanceOf(error, StoreError)
        assert.strictEqual(error.operation, "open")
        assert.strictEqual(error.message, "storage failure during open")
      }))

    it.scoped("in-memory stores get a fresh instance id per build", () =>
      Effect.gen(function*() {
        const a = yield* Effect.flatMap(
          Layer.build(SqliteStore.layerMemory),
          (ctx) => Context.get(ctx, Store).instanceId
        )
        const b = yield* Effect.flatMap(
          Layer.build(SqliteStore.layerMemory),
          (ctx) => Context.get(ctx, Store).instanceId
        )
        assert.notStrictEqual(a, b)
      }))
  })

  describe("rows only SQLite can hold", () => {
    it.scoped("undecodable machine and channel rows (a BLOB where text belongs) are a StoreError of the read", () =>
      Effect.gen(function*() {
        const { sql, store } = yield* fresh
        yield* store.registerUser({ username: "aaron", machine: "ws", pubkey: "k1", now: NOW })
        yield* sql`INSERT INTO machines (user, name, pubkey, added_at) VALUES ('aaron', 'blob', 'k3', X'00')`
        yield* sql`INSERT INTO channels (name, visibility, created_by, created_at) VALUES ('bin', 'public', X'01', '')`
        const badMachine = yield* failure(store.findMachineByKey("k3"))
        assert.instanceOf(badMachine, StoreError)
        assert.strictEqual(badMachine.operation, "findMachineByKey")
        const badChannel = yield* failure(store.getChannel("bin"))
        assert.instanceOf(badChannel, StoreError)
        assert.strictEqual(badChannel.operation, "getChannel")
      }))

    it.scoped("a message row with a fractional ts_ms is skipped", () =>
      Effect.gen(function*() {
        const { sql, store } = yield* fresh
        yield* channel(store, "ops")
        yield* sql`INSERT INTO messages (channel, seq, sender, payload, ts_ms, origin, reply_to)
                   VALUES ('ops', 1, 'a/b/c', ${JSON.stringify(plain("fractional ts"))}, 10.5, 'human', NULL)`
        yield* sql`INSERT INTO channel_seq (channel, last_seq) VALUES ('ops', 1)`
        yield* store.appendMessage(msg("ops", 11, "whole"))
        const page = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 10 })
        assert.deepStrictEqual(texts(page.messages), ["whole"])
      }))
  })

  describe("group commit (D-5)", () => {
    /** A second connection to the same file: it sees committed rows only. */
    const observer = (filename: string) =>
      Layer.build(SqliteClient.layer({ filename, disableWAL: true })).pipe(
        Effect.map((ctx) => Context.get(ctx, SqlClient.SqlClient))
      )

    it.scoped("a failing COMMIT refuses every post of the batch and publishes none of them", () =>
      Effect.gen(function*() {
        const file = yield* dbFile
        // Leaving WAL needs the file to itself: no second (read) connection.
        const { sql, store } = yield* openWithoutSyncReads(file)
        yield* channel(store, "ops")
        // Rollback journal + a reader holding its shared lock: COMMIT cannot take the exclusive lock.
        yield* sql.unsafe("PRAGMA journal_mode = DELETE")
        yield* sql.unsafe("PRAGMA busy_timeout = 20")
        const other = yield* observer(file)
        const reading = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const reader = yield* other.withTransaction(
          Effect.zipRight(
            other`SELECT count(*) AS n FROM messages`,
            Effect.zipRight(Deferred.succeed(reading, undefined), Deferred.await(release))
          )
        ).pipe(Effect.fork)
        yield* Deferred.await(reading)
        const results = yield* Effect.forEach(
          [0, 1, 2, 3],
          (i) => Effect.either(store.appendMessage(msg("ops", 10 + i, `m${i}`))),
          { concurrency: "unbounded" }
        )
        for (const r of results) {
          assert.strictEqual(r._tag, "Left", "no post is acknowledged when its COMMIT fails")
          if (r._tag === "Left") assert.instanceOf(r.left, StoreError)
        }
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(reader)
        const after = yield* store.appendMessage(msg("ops", 20, "after"))
        const page = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 10 })
        assert.deepStrictEqual(texts(page.messages), ["after"], "nothing of the refused batch was kept")
        assert.strictEqual(page.messages[0]?.seq, after)
      }))

    /** Hold the connection in a transaction until `release` runs (the writer waits meanwhile). */
    const holdConnection = (sql: SqlClient.SqlClient) =>
      Effect.gen(function*() {
        const holding = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const holder = yield* sql.withTransaction(
          Effect.zipRight(Deferred.succeed(holding, undefined), Deferred.await(release))
        ).pipe(Effect.fork)
        yield* Deferred.await(holding)
        return Effect.zipRight(Deferred.succeed(release, undefined), Fiber.join(holder))
      })

    /**
     * Queue `messages` (in order) while another transaction holds the connection, so the writer
     * finds them all waiting at once (one group commit spanning several multi-row chunks), then let
     * it go. The results in queue order.
     */
    const appendHeld = (
      sql: SqlClient.SqlClient,
      store: StoreShape,
      messages: ReadonlyArray<NewMessage>
    ) =>
      Effect.gen(function*() {
        const release = yield* holdConnection(sql)
        const fibers: Array<Fiber.RuntimeFiber<number, StoreError>> = []
        for (const m of messages) fibers.push(yield* Effect.fork(store.appendMessage(m)))
        yield* allSuspended(fibers) // every append is queued (and waits for the writer)
        yield* release
        return yield* Effect.forEach(fibers, (fiber) => Effect.either(Fiber.join(fiber))).pipe(
          Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => "appends never resolved" })
        )
      })

    it.scoped("a batch spanning several multi-row chunks commits every row in queue order", () =>
      Effect.gen(function*() {
        const { sql, store } = yield* fresh
        yield* channel(store, "ops")
        yield* store.appendMessage(msg("ops", 1, "first")) // seqs of the batch do not start at 1
        // 128 + 128 + 32 + 8 + 4 + 1 + 1 rows: every chunk size is used
        const n = 302
        const results = yield* appendHeld(
          sql,
          store,
          Array.from({ length: n }, (_, i) => msg("ops", 10 + i, `m${i}`, i % 3 === 0 ? { reply_to: 1 } : {}))
        )
        const seqs = results.map((r) => {
          assert.strictEqual(r._tag, "Right", "every post commits")
          return r._tag === "Right" ? r.right : -1
        })
        for (let i = 1; i < n; i++) assert.isTrue(seqs[i]! > seqs[i - 1]!, "seqs increase in queue order")
        const page = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 1 }, cutoffMs: 0, limit: 500 })
        assert.deepStrictEqual(page.messages.map((m) => m.seq), seqs)
        // each seq carries its own row (the ids of a multi-row insert map onto its rows in order)
        page.messages.forEach((m, i) => {
          assert.deepStrictEqual(
            { text: m.payload.kind === "plain" ? m.payload.text : "", ts_ms: m.ts_ms, reply_to: m.reply_to },
            { text: `m${i}`, ts_ms: 10 + i, reply_to: i % 3 === 0 ? 1 : null }
          )
        })
      }))

    it.scoped("a failing row inside a multi-row chunk refuses only that post; its chunk commits row by row", () =>
      Effect.gen(function*() {
        const { sql, store } = yield* fresh
        yield* channel(store, "ops")
        const n = 300
        const bad = new Set([0, 5, 140, 141, 299]) // the channel "gone" does not exist: FOREIGN KEY fails
        const results = yield* appendHeld(
          sql,
          store,
          Array.from({ length: n }, (_, i) => msg(bad.has(i) ? "gone" : "ops", 10 + i, `m${i}`))
        )
        const committed: Array<number> = []
        const expected: Array<string> = []
        results.forEach((r, i) => {
          if (bad.has(i)) {
            assert.strictEqual(r._tag, "Left", `post ${i} is refused`)
            if (r._tag === "Left") {
              assert.instanceOf(r.left, StoreError)
              assert.strictEqual(r.left.operation, "appendMessage")
            }
          } else {
            assert.strictEqual(r._tag, "Right", `post ${i} commits`)
            if (r._tag === "Right") committed.push(r.right)
            expected.push(`m${i}`)
          }
        })
        for (let i = 1; i < committed.length; i++) assert.isTrue(committed[i]! > committed[i - 1]!)
        const page = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 500 })
        assert.deepStrictEqual(texts(page.messages), expected)
        assert.deepStrictEqual(page.messages.map((m) => m.seq), committed)
      }))

    it.scoped("a full database (SQLITE_FULL) refuses the posts with StoreError, not a defect; the store recovers", () =>
      Effect.gen(function*() {
        const { sql, store } = yield* fresh
        yield* channel(store, "ops")
        const [{ page_count }] = yield* sql<{ page_count: number }>`PRAGMA page_count`
        yield* sql.unsafe(`PRAGMA max_page_count = ${page_count + 2}`)
        const big = "x".repeat(64 * 1024)
        const results = yield* appendHeld(
          sql,
          store,
          Array.from({ length: 12 }, (_, i) => msg("ops", 10 + i, `${big}${i}`))
        )
        for (const r of results) {
          assert.strictEqual(r._tag, "Left", "nothing fits")
          if (r._tag === "Left") {
            assert.instanceOf(r.left, StoreError)
            const sqlError: unknown = r.left.cause
            const code = typeof sqlError === "object" && sqlError !== null && "cause" in sqlError
              ? (sqlError.cause as { readonly code?: unknown }).code
              : undefined
            assert.strictEqual(code, "SQLITE_FULL")
          }
        }
        yield* sql.unsafe("PRAGMA max_page_count = 1073741823")
        const seq = yield* store.appendMessage(msg("ops", 30, "after"))
        const page = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 10 })
        assert.deepStrictEqual(page.messages.map((m) => [m.seq, texts([m])[0]]), [[seq, "after"]])
      }))
  })
})
