/**
 * Opening the SQLite store's database: PRAGMAs, schema migrations (tracked in `PRAGMA
 * user_version`), the instance id.
 *
 * @internal
 */
import { Auth, Skeleton } from "@conclave/protocol"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { StoreError } from "../Store.js"
import { latestVersion, migrations, SKELETON_VERSION, skeletonBackfills } from "./migrations.js"

// PRAGMAs (statements wait `busyTimeoutMs` for another connection's lock), then under one write lock
// (BEGIN IMMEDIATE, so a second process opening the same file waits instead of racing): pending
// migrations and the instance id (fixed key; first writer wins).
export const initialize = (sql: SqlClient.SqlClient, busyTimeoutMs: number): Effect.Effect<string, StoreError> =>
  Effect.scoped(Effect.gen(function*() {
    const conn = yield* sql.reserve
    const run = (statement: string) => conn.executeUnprepared(statement, [], undefined)
    const first = (statement: string) =>
      Effect.map(run(statement), (rows): Readonly<Record<string, unknown>> | undefined => rows[0])
    yield* run("PRAGMA journal_mode = WAL")
    yield* run("PRAGMA synchronous = NORMAL")
    yield* run("PRAGMA foreign_keys = ON")
    yield* run(`PRAGMA busy_timeout = ${busyTimeoutMs}`)
    if ((yield* first("PRAGMA foreign_keys"))?.foreign_keys !== 1) {
      return yield* new StoreError({ operation: "open", cause: "foreign keys cannot be enabled" })
    }
    const body = Effect.gen(function*() {
      const version = (yield* first("PRAGMA user_version"))?.user_version
      const current = typeof version === "number" ? version : 0
      if (current > latestVersion) {
        return yield* new StoreError({
          operation: "open",
          cause: `database schema version ${current} is newer than this build supports (${latestVersion})`
        })
      }
      for (const migration of migrations) {
        if (migration.version <= current) continue
        yield* Effect.forEach(migration.statements, (statement) => run(statement), { discard: true })
        yield* run(`PRAGMA user_version = ${migration.version}`)
        yield* Effect.logDebug("store schema migrated").pipe(Effect.annotateLogs({ version: migration.version }))
      }
      if (current < SKELETON_VERSION) {
        for (const backfill of skeletonBackfills) {
          const rows = yield* run(backfill.select)
          for (const row of rows) {
            const skeleton = Skeleton.skeleton(String(row.name))
            yield* conn.executeUnprepared(backfill.update, [
              skeleton,
              skeleton,
              ...backfill.scope.map((k) => row[k]),
              ...backfill.keys.map((k) => row[k])
            ], undefined)
          }
        }
      }
      const fresh = yield* Effect.sync(() => Auth.randomToken())
      yield* conn.executeUnprepared(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('instance_id', ?)",
        [fresh],
        undefined
      )
      const id = (yield* first("SELECT value FROM meta WHERE key = 'instance_id'"))?.value
      if (typeof id !== "string" || id.length === 0) {
        return yield* new StoreError({ operation: "open", cause: "instance id missing" })
      }
      return id
    })
    yield* run("BEGIN IMMEDIATE")
    return yield* body.pipe(
      Effect.tap(() => run("COMMIT")),
      Effect.onError(() => Effect.ignore(run("ROLLBACK")))
    )
  })).pipe(
    Effect.catchTag("SqlError", (e) => Effect.fail(new StoreError({ operation: "open", cause: e })))
  )
