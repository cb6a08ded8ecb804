/**
 * `PRAGMA integrity_check` on a database file the server is not running on (after a SIGKILL).
 *
 * @since 0.1.0
 */
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

/** "ok" when the file is sound, else SQLite's report. @since 0.1.0 @category checks */
export const integrityCheck = (filename: string): Effect.Effect<string> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql.unsafe<{ readonly integrity_check: string }>("PRAGMA integrity_check")
    return rows.map((r) => r.integrity_check).join("; ")
  }).pipe(
    Effect.provide(SqliteClient.layer({ filename })),
    Effect.catchAll((e) => Effect.succeed(`check failed: ${String(e)}`))
  )
