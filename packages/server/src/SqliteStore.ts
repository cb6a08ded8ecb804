/**
 * The embedded SQLite implementation of the `Store` port (SPEC §3.17, DECISIONS D-4, D-5, D-14).
 *
 * `layer({ filename })` opens (or creates) the database file, applies the PRAGMAs and pending schema
 * migrations, and provides `Store`; `layerMemory` is the same over `:memory:` (`--ephemeral`).
 * `layerClient` builds the store over an `SqlClient` supplied by the caller.
 *
 * @since 0.1.0
 */
import { type Frames, Skeleton } from "@conclave/protocol"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Checkpointer from "./internal/checkpointer.js"
import { makeAppender } from "./internal/sqliteAppender.js"
import { makeMemberships } from "./internal/sqliteMemberships.js"
import { initialize } from "./internal/sqliteOpen.js"
import { isSharedFile, openPointReads } from "./internal/sqlitePointReads.js"
import {
  ChannelInfoRowSchema,
  FIND_MACHINE_BY_KEY,
  GET_CHANNEL,
  MESSAGE_EXISTS,
  messageColumns,
  type RawMessageRow,
  READ_BEFORE,
  READ_BEFORE_SIZES,
  READ_SINCE,
  READ_SINCE_SIZES,
  toConflict,
  USER_EXISTS
} from "./internal/sqliteRows.js"
import {
  ChannelRowSchema,
  decodeAll,
  decodeMessage,
  fastChannel,
  fastMachine,
  firstRow,
  isSqlError,
  MachineRowSchema,
  openFailure,
  readBeforePages,
  readSincePages,
  toStoreError,
  UserRowSchema
} from "./internal/storeRows.js"
import {
  type NewMessage,
  type Since,
  Store,
  StoreConflict,
  type StoreError,
  type StoreShape,
  type StoreStatus
} from "./Store.js"

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

  const decodeUsers = decodeAll(UserRowSchema)
  const decodeMachines = decodeAll(MachineRowSchema)
  const decodeChannels = decodeAll(ChannelRowSchema)
  const decodeChannelInfos = decodeAll(ChannelInfoRowSchema)

  // Hot reads: a fixed statement text (prepared once, cached by the client), no statement
  // compilation or span. Outside any transaction: the reserved connection waits for an open one
  // (or a batch) to end.
  const query = (statement: string, params: ReadonlyArray<unknown>) =>
    Effect.scoped(Effect.flatMap(sql.reserve, (conn) => conn.execute(statement, params, undefined)))

  // users and machines ---------------------------------------------------------------------------

  const registerUser = Effect.fnUntraced(function*(input: {
    readonly username: string
    readonly machine: string
    readonly pubkey: string
    readonly now: string
  }) {
    yield* tx(
      Effect.all([
        sql`INSERT INTO users (username, created_at, skeleton)
            VALUES (${input.username}, ${input.now}, ${Skeleton.skeleton(input.username)})`,
        sql`INSERT INTO machines (user, name, pubkey, added_at, skeleton)
            VALUES (${input.username}, ${input.machine}, ${input.pubkey}, ${input.now}, ${
          Skeleton.skeleton(input.machine)
        })`,
        // the key is bound now: offers of it to other users lapse
        sql`DELETE FROM machine_offers WHERE pubkey = ${input.pubkey}`
      ], { discard: true })
    ).pipe(
      Effect.mapError(toConflict("registerUser", {
        username: input.username,
        pubkey: input.pubkey,
        machine: input.machine
      }))
    )
  })

  const userExists = (username: string) =>
    query(USER_EXISTS, [username]).pipe(
      Effect.map((rows) => rows.length > 0),
      Effect.mapError(toStoreError("userExists"))
    )

  const listUsers = sql`SELECT username, created_at FROM users ORDER BY username`.pipe(
    Effect.flatMap(decodeUsers),
    Effect.map((rows) => rows.map((row) => row.username)),
    Effect.mapError(toStoreError("listUsers")),
    Effect.withSpan("Store.listUsers")
  )

  const removeUser = Effect.fnUntraced(function*(username: string) {
    const deleted = yield* tx(Effect.gen(function*() {
      const channels = yield* sql<{ readonly name: string }>`
        DELETE FROM channels WHERE created_by = ${username} RETURNING name`
      yield* sql`DELETE FROM memberships WHERE user = ${username}`
      yield* sql`DELETE FROM machines WHERE user = ${username}`
      yield* sql`DELETE FROM machine_offers WHERE user = ${username}`
      // The rows kept elsewhere must not look written by whoever registers the name next (issue 22):
      // their author becomes `<user> (removed)`, which no name can be (names hold no whitespace).
      const prefix = `${username}/`
      yield* sql`UPDATE messages SET sender = ${`${username} (removed)/`} || substr(sender, ${[...prefix].length + 1})
        WHERE substr(sender, 1, ${[...prefix].length}) = ${prefix}`
      yield* sql`DELETE FROM users WHERE username = ${username}`
      return channels.map((row) => row.name)
    }))
    return { deletedChannels: deleted }
  }, Effect.mapError(toStoreError("removeUser")))

  const findMachineByKey = (pubkey: string) =>
    Effect.suspend(() => {
      const read = pointReads?.findMachineByKey(pubkey)
      if (read !== undefined) return Effect.succeed(read)
      return Effect.flatMap(query(FIND_MACHINE_BY_KEY, [pubkey]), (rows) => firstRow(rows, fastMachine, decodeMachines))
        .pipe(Effect.mapError(toStoreError("findMachineByKey")))
    })

  const listMachines = Effect.fnUntraced(function*(user: string) {
    // open offers too (issue 22): what `machine add` added, removable with `machine remove`
    return yield* sql`SELECT user, name, pubkey, added_at FROM machines WHERE user = ${user}
      UNION ALL SELECT user, name, pubkey, offered_at AS added_at FROM machine_offers WHERE user = ${user}
      ORDER BY name`.pipe(
      Effect.flatMap(decodeMachines)
    )
  }, Effect.mapError(toStoreError("listMachines")))

  const addMachine = Effect.fnUntraced(function*(input: {
    readonly user: string
    readonly name: string
    readonly pubkey: string
    readonly now: string
  }) {
    yield* tx(Effect.zipRight(
      sql`INSERT INTO machines (user, name, pubkey, added_at, skeleton)
          VALUES (${input.user}, ${input.name}, ${input.pubkey}, ${input.now}, ${Skeleton.skeleton(input.name)})`,
      sql`DELETE FROM machine_offers WHERE pubkey = ${input.pubkey}`
    )).pipe(Effect.mapError(toConflict("addMachine", { machine: input.name, pubkey: input.pubkey })))
  })

  const offerMachine = Effect.fnUntraced(function*(input: {
    readonly user: string
    readonly name: string
    readonly pubkey: string
    readonly now: string
  }) {
    const skeleton = Skeleton.skeleton(input.name)
    yield* tx(Effect.gen(function*() {
      const bound = yield* sql`SELECT 1 AS found FROM machines WHERE pubkey = ${input.pubkey}`
      const offered = yield* sql`SELECT 1 AS found FROM machine_offers
        WHERE user = ${input.user} AND pubkey = ${input.pubkey}`
      // one key, one user: bound anywhere, or already offered by this user (SPEC: pubkey anywhere)
      if (bound.length > 0 || offered.length > 0) {
        return yield* new StoreConflict({ what: "pubkey", value: input.pubkey })
      }
      const named = yield* sql`SELECT 1 AS found FROM machines
        WHERE user = ${input.user} AND (name = ${input.name} OR skeleton = ${skeleton})`
      if (named.length > 0) return yield* new StoreConflict({ what: "machine", value: input.name })
      yield* sql`INSERT INTO machine_offers (user, name, skeleton, pubkey, offered_at)
        VALUES (${input.user}, ${input.name}, ${skeleton}, ${input.pubkey}, ${input.now})`
    })).pipe(
      Effect.catchTag("SqlError", (e) => Effect.fail(toConflict("offerMachine", { machine: input.name })(e)))
    )
  })

  const claimMachine = Effect.fnUntraced(function*(input: {
    readonly user: string
    readonly name: string
    readonly pubkey: string
    readonly now: string
  }) {
    return yield* tx(Effect.gen(function*() {
      const offered = yield* sql`SELECT 1 AS found FROM machine_offers
        WHERE user = ${input.user} AND name = ${input.name} AND pubkey = ${input.pubkey}`
      if (offered.length === 0) return false
      yield* sql`INSERT INTO machines (user, name, pubkey, added_at, skeleton)
        VALUES (${input.user}, ${input.name}, ${input.pubkey}, ${input.now}, ${Skeleton.skeleton(input.name)})`
      yield* sql`DELETE FROM machine_offers WHERE pubkey = ${input.pubkey}`
      return true
    })).pipe(Effect.mapError(toConflict("claimMachine", { machine: input.name, pubkey: input.pubkey })))
  })

  const findOfferByKey = Effect.fnUntraced(function*(pubkey: string) {
    const rows = yield* sql<{ readonly user: string; readonly name: string }>`
      SELECT user, name FROM machine_offers WHERE pubkey = ${pubkey} ORDER BY offered_at, user LIMIT 1`
    return Option.fromNullable(rows[0]).pipe(Option.map((row) => ({ user: String(row.user), name: String(row.name) })))
  }, Effect.mapError(toStoreError("findOfferByKey")))

  const removeMachine = Effect.fnUntraced(function*(user: string, name: string) {
    yield* tx(Effect.zipRight(
      sql`DELETE FROM machines WHERE user = ${user} AND name = ${name}`,
      sql`DELETE FROM machine_offers WHERE user = ${user} AND name = ${name}`
    ))
  }, Effect.mapError(toStoreError("removeMachine")))

  // channels ---------------------------------------------------------------------------------------

  const getChannel = (name: string) =>
    Effect.suspend(() => {
      const read = pointReads?.getChannel(name)
      if (read !== undefined) return Effect.succeed(read)
      return Effect.flatMap(query(GET_CHANNEL, [name]), (rows) => firstRow(rows, fastChannel, decodeChannels)).pipe(
        Effect.mapError(toStoreError("getChannel"))
      )
    })

  const createChannel = Effect.fnUntraced(function*(input: {
    readonly name: string
    readonly visibility: Frames.Visibility
    readonly createdBy: string
    readonly now: string
  }) {
    yield* tx(
      Effect.zipRight(
        sql`INSERT INTO channels (name, visibility, created_by, created_at, skeleton)
            VALUES (${input.name}, ${input.visibility}, ${input.createdBy}, ${input.now}, ${
          Skeleton.skeleton(input.name)
        })`,
        sql`INSERT OR IGNORE INTO memberships (channel, user) VALUES (${input.name}, ${input.createdBy})`
      )
    ).pipe(Effect.mapError(toConflict("createChannel", { channel: input.name })))
  })

  const deleteChannel = Effect.fnUntraced(function*(name: string) {
    // memberships, invites, bans and messages go with it (ON DELETE CASCADE); its seq counter stays,
    // so a channel created again under the name never hands out an old seq again
    yield* tx(sql`DELETE FROM channels WHERE name = ${name}`)
  }, Effect.mapError(toStoreError("deleteChannel")))

  const renameChannel = Effect.fnUntraced(function*(name: string, newName: string) {
    // Memberships, invites, bans and messages follow (ON UPDATE CASCADE), messages with their seqs;
    // the new name's counter goes on from the higher of both names' counters (both stay, so neither
    // name hands out a seq twice).
    yield* tx(
      Effect.zipRight(
        sql`UPDATE channels SET name = ${newName}, skeleton = ${Skeleton.skeleton(newName)} WHERE name = ${name}`,
        sql`INSERT INTO channel_seq (channel, last_seq)
            SELECT ${newName}, last_seq FROM channel_seq WHERE channel = ${name}
            ON CONFLICT (channel) DO UPDATE SET last_seq = MAX(channel_seq.last_seq, excluded.last_seq)`
      )
    ).pipe(
      Effect.mapError(toConflict("renameChannel", { channel: newName }))
    )
  })

  const setVisibility = Effect.fnUntraced(function*(name: string, visibility: Frames.Visibility) {
    yield* tx(sql`UPDATE channels SET visibility = ${visibility} WHERE name = ${name}`)
  }, Effect.mapError(toStoreError("setVisibility")))

  const listVisibleChannels = Effect.fnUntraced(function*(user: string, isServerAdmin: boolean) {
    const member = sql`EXISTS (SELECT 1 FROM memberships m WHERE m.channel = c.name AND m.user = ${user})`
    const rows = yield* (isServerAdmin
      ? sql`SELECT c.name, c.visibility, ${member} AS member FROM channels c ORDER BY c.name`
      : sql`SELECT c.name, c.visibility, ${member} AS member FROM channels c
            WHERE c.visibility = 'public' OR ${member} ORDER BY c.name`).pipe(Effect.flatMap(decodeChannelInfos))
    return rows.map((row): Frames.ChannelInfo => ({
      name: row.name,
      visibility: row.visibility,
      member: row.member !== 0
    }))
  }, Effect.mapError(toStoreError("listVisibleChannels")))

  const memberships = makeMemberships({ sql, tx, query })

  // messages -----------------------------------------------------------------------------------------

  const appendMessage: (message: NewMessage) => Effect.Effect<number, StoreError> = yield* makeAppender({
    sql,
    maxBatch: MAX_BATCH,
    markCommitted
  })

  const messageExists = (channel: string, seq: number) =>
    query(MESSAGE_EXISTS, [seq, channel]).pipe(
      Effect.map((rows) => rows.length > 0),
      Effect.mapError(toStoreError("messageExists"))
    )

  const readSince = (input: {
    readonly channel: string
    readonly since: Since
    readonly cutoffMs: number
    readonly limit: number
    readonly maxBytes?: number
  }) =>
    readSincePages(
      input,
      (after, minTs, want) =>
        query(READ_SINCE, [input.channel, after, minTs, want]) as unknown as Effect.Effect<
          ReadonlyArray<RawMessageRow>,
          SqlError
        >,
      (row) => decodeMessage(messageColumns(row)),
      (row) => row.id,
      (after, minTs, want) =>
        Effect.map(query(READ_SINCE_SIZES, [input.channel, after, minTs, want]), (rows) => rows.map((r) => Number(r.n)))
    ).pipe(Effect.mapError(toStoreError("readSince")))

  const readBefore = (input: {
    readonly channel: string
    readonly beforeSeq: number
    readonly cutoffMs: number
    readonly limit: number
    readonly maxBytes?: number
  }) =>
    readBeforePages(
      input,
      (before, minTs, want) =>
        query(READ_BEFORE, [input.channel, before, minTs, want]) as unknown as Effect.Effect<
          ReadonlyArray<RawMessageRow>,
          SqlError
        >,
      (row) => decodeMessage(messageColumns(row)),
      (row) => row.id,
      (before, minTs, want) =>
        Effect.map(
          query(READ_BEFORE_SIZES, [input.channel, before, minTs, want]),
          (rows) => rows.map((r) => Number(r.n))
        )
    ).pipe(Effect.mapError(toStoreError("readBefore")))

  const purgeOlderThan = Effect.fnUntraced(function*(cutoffMs: number) {
    const result = yield* tx(sql`DELETE FROM messages WHERE ts_ms < ${cutoffMs}`.raw)
    const changes = (result as { readonly changes?: unknown }).changes
    return typeof changes === "number" ? changes : 0
  }, Effect.mapError(toStoreError("purgeOlderThan")))

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
    registerUser,
    userExists,
    listUsers,
    removeUser,
    findMachineByKey,
    listMachines,
    addMachine,
    offerMachine,
    claimMachine,
    findOfferByKey,
    removeMachine,
    getChannel,
    createChannel,
    deleteChannel,
    renameChannel,
    setVisibility,
    listVisibleChannels,
    ...memberships,
    appendMessage,
    messageExists,
    readSince,
    readBefore,
    purgeOlderThan
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
