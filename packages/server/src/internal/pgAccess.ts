/**
 * How the PostgreSQL store's operations reach the database: the client, its transactions, the
 * hot-read query, and the guards that bound every operation in time and name its failures.
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { type StoreConflict, StoreError } from "../Store.js"
import { toConflict } from "./pgRows.js"
import { isSqlError } from "./storeRows.js"

/** How long one store operation (or one group commit) may take before it fails. */
export const OPERATION_TIMEOUT: Duration.Duration = Duration.seconds(15)

/** What the operations run on. */
export interface PgAccess {
  readonly sql: SqlClient.SqlClient
  /** A transaction whose failed COMMIT or ROLLBACK is a failure, not a defect. */
  readonly tx: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>
  /**
   * A fixed statement text with parameters only, on a pooled connection taken for that statement
   * alone (never `sql.reserve`, whose wait for a connection cannot be interrupted without losing
   * the connection to the pool). Arrays are bound as PostgreSQL arrays by pg.
   */
  readonly query: (
    statement: string,
    params: ReadonlyArray<unknown>
  ) => Effect.Effect<ReadonlyArray<Readonly<Record<string, unknown>>>, SqlError>
  /**
   * Every operation: its failures as StoreError named after it, and a bound on how long it may take
   * (a server that stops answering must not hold a caller forever).
   */
  readonly guard: (operation: string) => <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, StoreError>
  /** `guard`, with uniqueness violations as `StoreConflict` on the values the caller supplied. */
  readonly guardConflict: (
    operation: string,
    values: Partial<Record<StoreConflict["what"], string>>
  ) => <A>(effect: Effect.Effect<A, SqlError>) => Effect.Effect<A, StoreError | StoreConflict>
}

/** The access over `sql`. */
export const makeAccess = (sql: SqlClient.SqlClient): PgAccess => ({
  sql,
  // `withTransaction` turns a failed COMMIT or ROLLBACK into a defect (a connection lost at COMMIT):
  // a refusal, not a dead caller.
  tx: (effect) =>
    sql.withTransaction(effect).pipe(
      Effect.catchSomeDefect((defect) => isSqlError(defect) ? Option.some(Effect.fail(defect)) : Option.none())
    ),
  query: (statement, params) => sql.unsafe<Readonly<Record<string, unknown>>>(statement, params),
  guard: (operation) => (effect) =>
    effect.pipe(
      Effect.timeoutFail({ duration: OPERATION_TIMEOUT, onTimeout: () => "timed out" }),
      Effect.mapError((e) => e instanceof StoreError ? e : new StoreError({ operation, cause: e }))
    ),
  guardConflict: (operation, values) => (effect) =>
    effect.pipe(
      Effect.timeoutFail({
        duration: OPERATION_TIMEOUT,
        onTimeout: () => new StoreError({ operation, cause: "timed out" })
      }),
      Effect.mapError(toConflict(operation, values))
    )
})
