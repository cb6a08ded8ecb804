/**
 * The PostgreSQL implementation of the `Store` port (SPEC §3.17, DECISIONS D-5, D-14, D-18, D-41,
 * D-42): one database shared by every node of a deployment.
 *
 * `layer({ url })` connects to `postgres://user@host:port/db`, applies pending schema migrations
 * and provides `Store`; `layerClient` builds the store over a `PgClient` supplied by the caller.
 *
 * Seqs are per channel and gap-free (D-42): each append takes the next value of its channel's
 * `channel_seq` row inside the transaction that inserts the message. A database sequence (or
 * identity column) would not do: its values are handed out when a transaction asks, not when it
 * commits, so two nodes appending to one channel can commit 8 before 7. A reader that catches up
 * in between sees 8, moves its watermark to 8, and never sees 7; and a rolled-back append burns its
 * value (a gap). The counter row is locked from the update to the COMMIT, so appends to one channel
 * commit one after another in seq order, and a watermark never skips a row committed later.
 *
 * @since 0.1.0
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { makeEnrollCodes } from "./internal/enrollCodes.js"
import * as Access from "./internal/pgAccess.js"
import { makeAppender } from "./internal/pgAppender.js"
import { makeChannels } from "./internal/pgChannels.js"
import { makeHistory } from "./internal/pgHistory.js"
import { makeIdentity } from "./internal/pgIdentity.js"
import { initialize } from "./internal/pgOpen.js"
import { openFailure } from "./internal/storeRows.js"
import { Store, type StoreError, type StoreShape, type StoreStatus } from "./Store.js"

/** How long opening a connection may take before it fails. @since 0.1.0 @category constants */
export const CONNECT_TIMEOUT: Duration.Duration = Duration.seconds(5)

/** How long one store operation (or one group commit) may take before it fails. @since 0.1.0 @category constants */
export const OPERATION_TIMEOUT: Duration.Duration = Access.OPERATION_TIMEOUT

/** Most appends one group commit takes from the queue. @since 0.1.0 @category constants */
export const MAX_BATCH = 1_000

/** Connections in the pool `layer` opens. @since 0.1.0 @category constants */
export const MAX_CONNECTIONS = 10

const build: Effect.Effect<StoreShape, StoreError, PgClient.PgClient | Scope.Scope> = Effect.gen(function*() {
  const sql: SqlClient.SqlClient = yield* PgClient.PgClient
  const instanceId = yield* initialize(sql)
  const access = Access.makeAccess(sql)
  const port: StoreShape = {
    instanceId: Effect.succeed(instanceId),
    status: access.query("SELECT 1 AS ok", []).pipe(
      access.guard("status"),
      Effect.as(true),
      Effect.orElseSucceed(() => false),
      Effect.map((ok): StoreStatus => ({ kind: "postgres", ok }))
    ),
    ...makeIdentity(access),
    ...makeChannels(access),
    ...makeEnrollCodes({
      sql,
      tx: access.tx,
      // the user's row locked until the commit: two creates for one user (on any node) take turns
      lockUser: (user) =>
        Effect.map(
          sql`SELECT 1 AS found FROM users WHERE username = ${user} FOR NO KEY UPDATE`,
          (rows) => rows.length > 0
        ),
      guard: access.guard
    }),
    appendMessage: yield* makeAppender(access, MAX_BATCH),
    ...makeHistory(access)
  }
  return port
})

/**
 * The store over the `PgClient` in context: pending schema migrations (tracked in
 * `conclave_schema_migrations`, run under an advisory lock), the instance id. Fails with
 * `StoreError` (operation `open`) when the database cannot be reached or carries a newer schema
 * than this build knows. The scope owns the writer fiber that group-commits appends; closing it
 * refuses appends still queued.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<StoreShape, StoreError, PgClient.PgClient | Scope.Scope> = build

/**
 * `Store` over the `PgClient` in context (for callers that build the client themselves).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClient: Layer.Layer<Store, StoreError, PgClient.PgClient> = Layer.scoped(
  Store,
  build
)

/**
 * The PostgreSQL client for `url` (`postgres://user@host:port/db`), with bounded connects; failing
 * to connect is a `StoreError` with operation `open` (the URL is never part of it).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPg = (options: {
  readonly url: string
}): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, StoreError> =>
  PgClient.layer({
    url: Redacted.make(options.url),
    connectTimeout: CONNECT_TIMEOUT,
    maxConnections: MAX_CONNECTIONS,
    idleTimeout: Duration.minutes(1),
    applicationName: "conclave"
  }).pipe(
    Layer.catchAllCause((cause) => Layer.failCause(openFailure(cause)))
  )

/**
 * The store in the PostgreSQL database at `url` (`postgres://user@host:port/db`; the database must
 * exist, its tables are created on first start). Needs nothing from its context.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: { readonly url: string }): Layer.Layer<Store, StoreError> =>
  layerClient.pipe(Layer.provide(layerPg(options)))
