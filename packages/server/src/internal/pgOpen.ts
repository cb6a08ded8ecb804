/**
 * Opening the PostgreSQL store's database: schema migrations (tracked in
 * `conclave_schema_migrations`, run under an advisory lock), the instance id.
 *
 * @internal
 */
import { Auth, Skeleton } from "@conclave/protocol"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { StoreError } from "../Store.js"
import { OPERATION_TIMEOUT } from "./pgAccess.js"
import { latestVersion, migrations, MIGRATIONS_TABLE, PG_SKELETON_VERSION, skeletonBackfills } from "./pgMigrations.js"
import { integer } from "./pgRows.js"
import { isSqlError } from "./storeRows.js"

// Any key of ours: held (per database) while migrations run, so nodes starting together take turns.
const MIGRATION_LOCK = 0x636f6e63

// Under a transaction-scoped advisory lock (nodes starting together take turns): the migrations
// table, pending migrations, the instance id (fixed key; the first writer wins).
export const initialize = (sql: SqlClient.SqlClient): Effect.Effect<string, StoreError> =>
  sql.withTransaction(Effect.gen(function*() {
    yield* sql`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`
    yield* sql.unsafe(
      `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`
    )
    const [row] = yield* sql.unsafe<{ readonly version: unknown }>(
      `SELECT coalesce(max(version), 0) AS version FROM ${MIGRATIONS_TABLE}`
    )
    const current = Number(integer(row?.version ?? 0))
    if (!Number.isSafeInteger(current) || current > latestVersion) {
      return yield* new StoreError({
        operation: "open",
        cause: `database schema version ${current} is newer than this build supports (${latestVersion})`
      })
    }
    for (const migration of migrations) {
      if (migration.version <= current) continue
      yield* Effect.forEach(migration.statements, (statement) => sql.unsafe(statement), { discard: true })
      yield* sql.unsafe(`INSERT INTO ${MIGRATIONS_TABLE} (version) VALUES ($1)`, [migration.version])
      yield* Effect.logDebug("store schema migrated").pipe(Effect.annotateLogs({ version: migration.version }))
    }
    if (current < PG_SKELETON_VERSION) {
      for (const backfill of skeletonBackfills) {
        const rows = yield* sql.unsafe<Readonly<Record<string, unknown>>>(backfill.select)
        for (const row of rows) {
          const skeleton = Skeleton.skeleton(String(row.name))
          yield* sql.unsafe(backfill.update, [
            skeleton,
            skeleton,
            ...backfill.scope.map((k) => row[k]),
            ...backfill.keys.map((k) => row[k])
          ])
        }
      }
    }
    // D-5: an acknowledged append must survive a crash of the database too
    const [commitMode] = yield* sql<{ readonly synchronous_commit: unknown }>`SHOW synchronous_commit`
    if (commitMode?.synchronous_commit === "off") {
      yield* Effect.logWarning("PostgreSQL has synchronous_commit off: a database crash can lose acknowledged messages")
    }
    const fresh = yield* Effect.sync(() => Auth.randomToken())
    yield* sql`INSERT INTO meta (key, value) VALUES ('instance_id', ${fresh}) ON CONFLICT (key) DO NOTHING`
    const [meta] = yield* sql<{ readonly value: unknown }>`SELECT value FROM meta WHERE key = 'instance_id'`
    if (typeof meta?.value !== "string" || meta.value.length === 0) {
      return yield* new StoreError({ operation: "open", cause: "instance id missing" })
    }
    return meta.value
  })).pipe(
    Effect.catchSomeDefect((defect) => isSqlError(defect) ? Option.some(Effect.fail(defect)) : Option.none()),
    Effect.timeoutFail({ duration: OPERATION_TIMEOUT, onTimeout: () => "timed out" }),
    Effect.mapError((e) => e instanceof StoreError ? e : new StoreError({ operation: "open", cause: e }))
  )
