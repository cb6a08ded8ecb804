/**
 * The embedded SQLite implementation of the `Store` port (SPEC §3.17, DECISIONS D-4, D-5, D-14).
 *
 * `layer({ filename })` opens (or creates) the database file, applies the PRAGMAs and pending schema
 * migrations, and provides `Store`; `layerMemory` is the same over `:memory:` (`--ephemeral`).
 * `layerClient` builds the store over an `SqlClient` supplied by the caller.
 *
 * @since 0.1.0
 */
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Checkpointer from "./internal/checkpointer.js"
import { makeEnrollCodes } from "./internal/enrollCodes.js"
import { makeAppender } from "./internal/sqliteAppender.js"
import { makeChannels, type SqliteAccess } from "./internal/sqliteChannels.js"
import { makeHistory } from "./internal/sqliteHistory.js"
import { makeIdentity } from "./internal/sqliteIdentity.js"
import { initialize } from "./internal/sqliteOpen.js"
import { isSharedFile, openPointReads } from "./internal/sqlitePointReads.js"
import { isSqlError, openFailure } from "./internal/storeRows.js"
import { Store, StoreError, type StoreShape, type StoreStatus } from "./Store.js"

/** Milliseconds a statement waits for another connection's lock before failing. @since 0.1.0 @category constants */
export const BUSY_TIMEOUT_MS = 5_000

/**
 * WAL size, in pages, at which the writer's connection checkpoints itself (SQLite's
 * auto-checkpoint): while checkpoints run on a worker thread, and when the writer checkpoints alone.
 *
 * @since 0.1.0
 * @category constants
 */
export const WAL_CHECKPOINT_PAGES: { readonly background: number; readonly alone: number } =
  Checkpointer.WAL_CHECKPOINT_PAGES

/** How often the worker thread checkpoints a WAL written to since. @since 0.1.0 @category constants */
export const CHECKPOINT_INTERVAL: Duration.Duration = Checkpointer.CHECKPOINT_INTERVAL

/** Most appends one group commit takes from the queue. @since 0.1.0 @category constants */
export const MAX_BATCH = 512

/**
 * Build the store over the `SqlClient` in context: PRAGMAs, schema migrations (tracked in
 * `PRAGMA user_version`), the instance id. Fails with `StoreError` when the file cannot be
 * prepared or carries a newer schema than this build knows. The scope owns the writer fiber that
 * group-commits appends; closing it refuses appends still queued.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<StoreShape, StoreError, SqlClient.SqlClient | Scope.Scope> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const instanceId = yield* initialize(sql, BUSY_TIMEOUT_MS)
  const client = yield* Effect.serviceOption(SqliteClient.SqliteClient)
  const pointReads = yield* openPointReads(client)
  // Whether anything was committed since the checkpoint fiber last asked.
  let wroteSinceAsked = false
  const markCommitted = () => {
    wroteSinceAsked = true
  }
  if (Option.isSome(client) && isSharedFile(client.value.config.filename)) {
    yield* Checkpointer.runInBackground({
      sql,
      filename: client.value.config.filename,
      written: () => {
        const wrote = wroteSinceAsked
        wroteSinceAsked = false
        return wrote
      }
    })
  }
  // Writes always run in a transaction: it holds the connection for its whole duration, so no other
  // fiber's statement can interleave with it and commit or roll back with it.
  // `withTransaction` turns a failed COMMIT or ROLLBACK into a defect (SQLITE_FULL at commit, or a
  // rollback after SQLite already rolled back on its own). A full disk must be a refusal, not a dead
  // session: fail with the SqlError instead, and make sure no transaction is left open.
  const tx = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
    sql.withTransaction(effect).pipe(
      Effect.tap(() => Effect.sync(markCommitted)),
      Effect.catchSomeDefect((defect) =>
        isSqlError(defect)
          ? Option.some(Effect.zipRight(Effect.ignore(sql.unsafe("ROLLBACK")), Effect.fail(defect)))
          : Option.none()
      )
    )

  // Hot reads: a fixed statement text (prepared once, cached by the client), no statement
  // compilation or span. Outside any transaction: the reserved connection waits for an open one
  // (or a batch) to end.
  const query = (statement: string, params: ReadonlyArray<unknown>) =>
    Effect.scoped(Effect.flatMap(sql.reserve, (conn) => conn.execute(statement, params, undefined)))
  const access: SqliteAccess = { sql, tx, query, pointReads }

  return {
    instanceId: Effect.succeed(instanceId),
    status: query("SELECT 1 AS ok", []).pipe(
      Effect.as(true),
      Effect.orElseSucceed(() => false),
      Effect.map((ok): StoreStatus => ({
        kind: Option.isSome(client) && isSharedFile(client.value.config.filename) ? "sqlite" : "memory",
        ok
      }))
    ),
    ...makeIdentity(access),
    ...makeChannels(access),
    // SQLite has one writer: a transaction alone already keeps two creates for one user apart
    ...makeEnrollCodes({
      sql,
      tx,
      lockUser: (user) => Effect.map(sql`SELECT 1 AS found FROM users WHERE username = ${user}`, (r) => r.length > 0),
      guard: (operation) => (effect) =>
        Effect.mapError(effect, (e) => e instanceof StoreError ? e : new StoreError({ operation, cause: e }))
    }),
    appendMessage: yield* makeAppender({ sql, maxBatch: MAX_BATCH, markCommitted }),
    ...makeHistory(access)
  } satisfies StoreShape
})

/**
 * `Store` over the `SqlClient` in context (for callers that build the client themselves).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClient: Layer.Layer<Store, StoreError, SqlClient.SqlClient> = Layer.scoped(Store, make)

/**
 * The SQLite client for `filename` (`:memory:` for an ephemeral database); failures to open the
 * file become `StoreError` with operation `open`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSqlite = (options: {
  readonly filename: string
}): Layer.Layer<SqliteClient.SqliteClient | SqlClient.SqlClient, StoreError> =>
  SqliteClient.layer({ filename: options.filename }).pipe(
    Layer.catchAllCause((cause) => Layer.failCause(openFailure(cause)))
  )

/**
 * The embedded store in the SQLite file `filename` (created if absent; its directory must exist),
 * or in memory for `:memory:`. Needs nothing from its context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: { readonly filename: string }): Layer.Layer<Store, StoreError> =>
  layerClient.pipe(Layer.provide(layerSqlite(options)))

/**
 * An ephemeral in-memory store (`--ephemeral`): a fresh instance id per build.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<Store, StoreError> = layer({ filename: ":memory:" })
