/**
 * The embedded SQLite implementation of the `Store` port (SPEC §3.17, DECISIONS D-4, D-5, D-14).
 *
 * `layer({ filename })` opens (or creates) the database file, applies the PRAGMAs and pending schema
 * migrations, and provides `Store`; `layerMemory` is the same over `:memory:` (`--ephemeral`).
 * `layerClient` builds the store over an `SqlClient` supplied by the caller.
 *
 * @since 0.1.0
 */
import { Auth, Frames, Names } from "@conclave/protocol"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { latestVersion, migrations } from "./internal/migrations.js"
import {
  type HistoryPage,
  type InviteRow,
  type NewMessage,
  type Redemption,
  type Since,
  Store,
  StoreConflict,
  StoreError,
  type StoreShape
} from "./Store.js"

/** Milliseconds a statement waits for another connection's lock before failing. @since 0.1.0 @category constants */
export const BUSY_TIMEOUT_MS = 5_000

// ---------------------------------------------------------------------------------------------
// Row schemas
// ---------------------------------------------------------------------------------------------

const UserRowSchema = Schema.Struct({ username: Schema.String, created_at: Schema.String })
const MachineRowSchema = Schema.Struct({
  user: Schema.String,
  name: Schema.String,
  pubkey: Schema.String,
  added_at: Schema.String
})
const ChannelRowSchema = Schema.Struct({
  name: Schema.String,
  visibility: Frames.Visibility,
  created_by: Schema.String,
  created_at: Schema.String
})
const InviteRowSchema = Schema.Struct({
  token: Schema.String,
  channel: Schema.String,
  uses_remaining: Schema.NullOr(Schema.Number),
  expires_at: Schema.NullOr(Schema.String),
  created_by: Schema.String
})
const ChannelInfoRowSchema = Schema.Struct({
  name: Schema.String,
  visibility: Frames.Visibility,
  member: Schema.Number
})

const StoredSender = Schema.transformOrFail(Schema.String, Names.SessionPath, {
  strict: true,
  decode: (s, _, ast) => {
    const path = Names.parsePath(s)
    return path === undefined
      ? ParseResult.fail(new ParseResult.Type(ast, s, "not a session path"))
      : ParseResult.succeed(path)
  },
  encode: (path) => ParseResult.succeed(Names.renderPath(path))
})

const StoredMessage = Schema.Struct({
  id: Frames.NonNegativeInt,
  sender: StoredSender,
  payload: Schema.parseJson(Frames.Payload),
  ts_ms: Frames.Int,
  origin: Frames.Origin,
  reply_to: Schema.NullOr(Frames.NonNegativeInt)
})
const decodeStoredMessage = Schema.decodeUnknownEither(StoredMessage)
const encodePayload = Schema.encode(Schema.parseJson(Frames.Payload))

interface RawMessageRow {
  readonly id: number
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

const constraintTarget = (error: SqlError): string | undefined => {
  const cause: unknown = error.cause
  if (typeof cause !== "object" || cause === null) return undefined
  const { code, message } = cause as { readonly code?: unknown; readonly message?: unknown }
  if (code !== "SQLITE_CONSTRAINT_UNIQUE" && code !== "SQLITE_CONSTRAINT_PRIMARYKEY") return undefined
  return typeof message === "string" ? /constraint failed: (.+)$/.exec(message)?.[1] : undefined
}

const conflictKinds: Record<string, StoreConflict["what"]> = {
  "users.username": "username",
  "machines.pubkey": "pubkey",
  "machines.user, machines.name": "machine",
  "channels.name": "channel"
}

const isSqlError = (u: unknown): u is SqlError =>
  typeof u === "object" && u !== null && (u as { readonly _tag?: unknown })._tag === "SqlError"

const toStoreError = (operation: string) => (cause: unknown): StoreError => new StoreError({ operation, cause })

/** Map a uniqueness violation onto the conflicting value the caller supplied; anything else is a StoreError. */
const toConflict =
  (operation: string, values: Partial<Record<StoreConflict["what"], string>>) =>
  (error: SqlError): StoreError | StoreConflict => {
    const target = constraintTarget(error)
    const what = target === undefined ? undefined : conflictKinds[target]
    const value = what === undefined ? undefined : values[what]
    return what !== undefined && value !== undefined
      ? new StoreConflict({ what, value })
      : new StoreError({ operation, cause: error })
  }

// ---------------------------------------------------------------------------------------------
// Expiry (SPEC §3.13): RFC 3339, expired iff expires_at <= now; unparseable counts as expired
// ---------------------------------------------------------------------------------------------

const RFC3339 = /^(?:\d{4}|[+-]\d{6})-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/

const expiryMs = (value: string): number | undefined => {
  if (!RFC3339.test(value)) return undefined
  const ms = Date.parse(value.replace(/[t ]/, "T").replace(/z$/, "Z"))
  return Number.isFinite(ms) ? ms : undefined
}

const isExpired = (expiresAt: string, nowMs: number): boolean => {
  const ms = expiryMs(expiresAt)
  return ms === undefined || ms <= nowMs
}

// ---------------------------------------------------------------------------------------------
// Construction
// ---------------------------------------------------------------------------------------------

// PRAGMAs, then under one write lock (BEGIN IMMEDIATE, so a second process opening the same file
// waits instead of racing): pending migrations and the instance id (fixed key; first writer wins).
const initialize = (sql: SqlClient.SqlClient): Effect.Effect<string, StoreError> =>
  Effect.scoped(Effect.gen(function*() {
    const conn = yield* sql.reserve
    const run = (statement: string) => conn.executeUnprepared(statement, [], undefined)
    const first = (statement: string) =>
      Effect.map(run(statement), (rows): Readonly<Record<string, unknown>> | undefined => rows[0])
    yield* run("PRAGMA journal_mode = WAL")
    yield* run("PRAGMA synchronous = NORMAL")
    yield* run("PRAGMA foreign_keys = ON")
    yield* run(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`)
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

/**
 * Build the store over the `SqlClient` in context: PRAGMAs, schema migrations (tracked in
 * `PRAGMA user_version`), the instance id. Fails with `StoreError` when the file cannot be
 * prepared or carries a newer schema than this build knows.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<StoreShape, StoreError, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const instanceId = yield* initialize(sql)
  // Writes always run in a transaction: it holds the connection for its whole duration, so no other
  // fiber's statement can interleave with it and commit or roll back with it.
  // `withTransaction` turns a failed COMMIT or ROLLBACK into a defect (SQLITE_FULL at commit, or a
  // rollback after SQLite already rolled back on its own). A full disk must be a refusal, not a dead
  // session: fail with the SqlError instead, and make sure no transaction is left open.
  const tx = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
    sql.withTransaction(effect).pipe(
      Effect.catchSomeDefect((defect) =>
        isSqlError(defect)
          ? Option.some(Effect.zipRight(Effect.ignore(sql.unsafe("ROLLBACK")), Effect.fail(defect)))
          : Option.none()
      )
    )

  const decodeAll = <A, I>(schema: Schema.Schema<A, I>) => {
    const decode = Schema.decodeUnknown(Schema.Array(schema))
    return (rows: ReadonlyArray<unknown>) => decode(rows)
  }
  const decodeUsers = decodeAll(UserRowSchema)
  const decodeMachines = decodeAll(MachineRowSchema)
  const decodeChannels = decodeAll(ChannelRowSchema)
  const decodeInvites = decodeAll(InviteRowSchema)
  const decodeChannelInfos = decodeAll(ChannelInfoRowSchema)

  // users and machines ---------------------------------------------------------------------------

  const registerUser = Effect.fn("Store.registerUser")(function*(input: {
    readonly username: string
    readonly machine: string
    readonly pubkey: string
    readonly now: string
  }) {
    yield* tx(
      Effect.zipRight(
        sql`INSERT INTO users (username, created_at) VALUES (${input.username}, ${input.now})`,
        sql`INSERT INTO machines (user, name, pubkey, added_at)
            VALUES (${input.username}, ${input.machine}, ${input.pubkey}, ${input.now})`
      )
    ).pipe(
      Effect.mapError(toConflict("registerUser", {
        username: input.username,
        pubkey: input.pubkey,
        machine: input.machine
      }))
    )
  })

  const userExists = Effect.fn("Store.userExists")(function*(username: string) {
    const rows = yield* sql`SELECT 1 AS found FROM users WHERE username = ${username}`
    return rows.length > 0
  }, Effect.mapError(toStoreError("userExists")))

  const listUsers = sql`SELECT username, created_at FROM users ORDER BY username`.pipe(
    Effect.flatMap(decodeUsers),
    Effect.map((rows) => rows.map((row) => row.username)),
    Effect.mapError(toStoreError("listUsers")),
    Effect.withSpan("Store.listUsers")
  )

  const removeUser = Effect.fn("Store.removeUser")(function*(username: string) {
    const deleted = yield* tx(Effect.gen(function*() {
      const channels = yield* sql<{ readonly name: string }>`
        DELETE FROM channels WHERE created_by = ${username} RETURNING name`
      yield* sql`DELETE FROM memberships WHERE user = ${username}`
      yield* sql`DELETE FROM machines WHERE user = ${username}`
      yield* sql`DELETE FROM users WHERE username = ${username}`
      return channels.map((row) => row.name)
    }))
    return { deletedChannels: deleted }
  }, Effect.mapError(toStoreError("removeUser")))

  const findMachineByKey = Effect.fn("Store.findMachineByKey")(function*(pubkey: string) {
    const rows = yield* sql`SELECT user, name, pubkey, added_at FROM machines WHERE pubkey = ${pubkey}`.pipe(
      Effect.flatMap(decodeMachines)
    )
    return Option.fromNullable(rows[0])
  }, Effect.mapError(toStoreError("findMachineByKey")))

  const listMachines = Effect.fn("Store.listMachines")(function*(user: string) {
    return yield* sql`SELECT user, name, pubkey, added_at FROM machines WHERE user = ${user} ORDER BY name`.pipe(
      Effect.flatMap(decodeMachines)
    )
  }, Effect.mapError(toStoreError("listMachines")))

  const addMachine = Effect.fn("Store.addMachine")(function*(input: {
    readonly user: string
    readonly name: string
    readonly pubkey: string
    readonly now: string
  }) {
    yield* tx(
      sql`INSERT INTO machines (user, name, pubkey, added_at)
          VALUES (${input.user}, ${input.name}, ${input.pubkey}, ${input.now})`
    ).pipe(Effect.mapError(toConflict("addMachine", { machine: input.name, pubkey: input.pubkey })))
  })

  const removeMachine = Effect.fn("Store.removeMachine")(function*(user: string, name: string) {
    yield* tx(sql`DELETE FROM machines WHERE user = ${user} AND name = ${name}`)
  }, Effect.mapError(toStoreError("removeMachine")))

  // channels ---------------------------------------------------------------------------------------

  const getChannel = Effect.fn("Store.getChannel")(function*(name: string) {
    const rows = yield* sql`SELECT name, visibility, created_by, created_at FROM channels WHERE name = ${name}`.pipe(
      Effect.flatMap(decodeChannels)
    )
    return Option.fromNullable(rows[0])
  }, Effect.mapError(toStoreError("getChannel")))

  const createChannel = Effect.fn("Store.createChannel")(function*(input: {
    readonly name: string
    readonly visibility: Frames.Visibility
    readonly createdBy: string
    readonly now: string
  }) {
    yield* tx(
      Effect.zipRight(
        sql`INSERT INTO channels (name, visibility, created_by, created_at)
            VALUES (${input.name}, ${input.visibility}, ${input.createdBy}, ${input.now})`,
        sql`INSERT OR IGNORE INTO memberships (channel, user) VALUES (${input.name}, ${input.createdBy})`
      )
    ).pipe(Effect.mapError(toConflict("createChannel", { channel: input.name })))
  })

  const deleteChannel = Effect.fn("Store.deleteChannel")(function*(name: string) {
    // memberships, invites, bans and messages go with it (ON DELETE CASCADE)
    yield* tx(sql`DELETE FROM channels WHERE name = ${name}`)
  }, Effect.mapError(toStoreError("deleteChannel")))

  const renameChannel = Effect.fn("Store.renameChannel")(function*(name: string, newName: string) {
    // memberships, invites, bans and messages follow (ON UPDATE CASCADE)
    yield* tx(sql`UPDATE channels SET name = ${newName} WHERE name = ${name}`).pipe(
      Effect.mapError(toConflict("renameChannel", { channel: newName }))
    )
  })

  const setVisibility = Effect.fn("Store.setVisibility")(function*(name: string, visibility: Frames.Visibility) {
    yield* tx(sql`UPDATE channels SET visibility = ${visibility} WHERE name = ${name}`)
  }, Effect.mapError(toStoreError("setVisibility")))

  const listVisibleChannels = Effect.fn("Store.listVisibleChannels")(function*(user: string, isServerAdmin: boolean) {
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

  // ACL and bans -------------------------------------------------------------------------------------

  // Inserts are no-ops when the channel no longer exists (a concurrent delete wins).
  const insertMember = (channel: string, user: string) =>
    sql`INSERT OR IGNORE INTO memberships (channel, user)
        SELECT name, ${user} FROM channels WHERE name = ${channel}`

  const isMember = Effect.fn("Store.isMember")(function*(channel: string, user: string) {
    const rows = yield* sql`SELECT 1 AS found FROM memberships WHERE channel = ${channel} AND user = ${user}`
    return rows.length > 0
  }, Effect.mapError(toStoreError("isMember")))

  const addMember = Effect.fn("Store.addMember")(function*(channel: string, user: string) {
    yield* tx(insertMember(channel, user))
  }, Effect.mapError(toStoreError("addMember")))

  const aclAdd = Effect.fn("Store.aclAdd")(function*(channel: string, user: string) {
    yield* tx(
      Effect.zipRight(insertMember(channel, user), sql`DELETE FROM bans WHERE channel = ${channel} AND user = ${user}`)
    )
  }, Effect.mapError(toStoreError("aclAdd")))

  const removeMember = Effect.fn("Store.removeMember")(function*(channel: string, user: string) {
    yield* tx(sql`DELETE FROM memberships WHERE channel = ${channel} AND user = ${user}`)
  }, Effect.mapError(toStoreError("removeMember")))

  const listMembers = Effect.fn("Store.listMembers")(function*(channel: string) {
    const rows = yield* sql<{ readonly user: string }>`
      SELECT user FROM memberships WHERE channel = ${channel} ORDER BY user`
    return rows.map((row) => row.user)
  }, Effect.mapError(toStoreError("listMembers")))

  const ban = Effect.fn("Store.ban")(function*(channel: string, user: string) {
    yield* tx(
      Effect.zipRight(
        sql`DELETE FROM memberships WHERE channel = ${channel} AND user = ${user}`,
        sql`INSERT OR IGNORE INTO bans (channel, user) SELECT name, ${user} FROM channels WHERE name = ${channel}`
      )
    )
  }, Effect.mapError(toStoreError("ban")))

  const unban = Effect.fn("Store.unban")(function*(channel: string, user: string) {
    yield* tx(sql`DELETE FROM bans WHERE channel = ${channel} AND user = ${user}`)
  }, Effect.mapError(toStoreError("unban")))

  const listBans = Effect.fn("Store.listBans")(function*(channel: string) {
    const rows = yield* sql<{ readonly user: string }>`SELECT user FROM bans WHERE channel = ${channel} ORDER BY user`
    return rows.map((row) => row.user)
  }, Effect.mapError(toStoreError("listBans")))

  const allBans = sql<{ readonly channel: string; readonly user: string }>`
    SELECT channel, user FROM bans ORDER BY channel, user`.pipe(
    Effect.map((rows) => rows.map((row) => ({ channel: row.channel, user: row.user }))),
    Effect.mapError(toStoreError("allBans")),
    Effect.withSpan("Store.allBans")
  )

  // invites ----------------------------------------------------------------------------------------

  const createInvite = Effect.fn("Store.createInvite")(function*(row: InviteRow) {
    yield* tx(
      sql`INSERT INTO invites (token, channel, uses_remaining, expires_at, created_by)
          VALUES (${row.token}, ${row.channel}, ${row.uses_remaining}, ${row.expires_at}, ${row.created_by})`
    )
  }, Effect.mapError(toStoreError("createInvite")))

  const inviteColumns = sql.literal("token, channel, uses_remaining, expires_at, created_by")

  const getInvite = Effect.fn("Store.getInvite")(function*(token: string) {
    const rows = yield* sql`SELECT ${inviteColumns} FROM invites WHERE token = ${token}`.pipe(
      Effect.flatMap(decodeInvites)
    )
    return Option.fromNullable(rows[0])
  }, Effect.mapError(toStoreError("getInvite")))

  const deleteInvite = Effect.fn("Store.deleteInvite")(function*(token: string) {
    yield* tx(sql`DELETE FROM invites WHERE token = ${token}`)
  }, Effect.mapError(toStoreError("deleteInvite")))

  const listInvites = Effect.fn("Store.listInvites")(function*(channel: string) {
    return yield* sql`SELECT ${inviteColumns} FROM invites WHERE channel = ${channel} ORDER BY token`.pipe(
      Effect.flatMap(decodeInvites)
    )
  }, Effect.mapError(toStoreError("listInvites")))

  const redeemInvite = Effect.fn("Store.redeemInvite")(function*(input: {
    readonly token: string
    readonly channel: string
    readonly user: string
    readonly nowMs: number
  }) {
    return yield* tx(Effect.gen(function*() {
      const [invite] = yield* sql<{
        readonly channel: string
        readonly uses_remaining: number | null
        readonly expires_at: string | null
      }>`SELECT channel, uses_remaining, expires_at FROM invites WHERE token = ${input.token}`
      if (invite === undefined || invite.channel !== input.channel) return "invalid" satisfies Redemption
      if (invite.expires_at !== null && isExpired(invite.expires_at, input.nowMs)) {
        yield* sql`DELETE FROM invites WHERE token = ${input.token}`
        return "invalid" satisfies Redemption
      }
      if (invite.uses_remaining !== null) {
        const [left] = yield* sql<{ readonly uses_remaining: number }>`
          UPDATE invites SET uses_remaining = uses_remaining - 1
          WHERE token = ${input.token} AND uses_remaining > 0
          RETURNING uses_remaining`
        if (left === undefined) return "invalid" satisfies Redemption
        if (left.uses_remaining <= 0) yield* sql`DELETE FROM invites WHERE token = ${input.token}`
      }
      yield* insertMember(input.channel, input.user)
      return "redeemed" satisfies Redemption
    }))
  }, Effect.mapError(toStoreError("redeemInvite")))

  // messages -----------------------------------------------------------------------------------------

  const appendMessage = Effect.fn("Store.appendMessage")(function*(message: NewMessage) {
    const payload = yield* encodePayload(message.payload)
    const [row] = yield* tx(
      sql<{ readonly id: number }>`
        INSERT INTO messages (channel, sender, payload, ts_ms, origin, reply_to)
        VALUES (${message.channel}, ${message.from}, ${payload}, ${message.ts_ms}, ${message.origin}, ${message.reply_to})
        RETURNING id`
    )
    if (row === undefined) return yield* new StoreError({ operation: "appendMessage", cause: "no row id returned" })
    return row.id
  }, Effect.mapError(toStoreError("appendMessage")))

  const messageExists = Effect.fn("Store.messageExists")(function*(channel: string, seq: number) {
    const rows = yield* sql`SELECT 1 AS found FROM messages WHERE id = ${seq} AND channel = ${channel}`
    return rows.length > 0
  }, Effect.mapError(toStoreError("messageExists")))

  const readSince = Effect.fn("Store.readSince")(function*(input: {
    readonly channel: string
    readonly since: Since
    readonly cutoffMs: number
    readonly limit: number
  }) {
    const limit = Math.max(0, Math.floor(input.limit))
    // one lower bound on ts_ms: the retention cutoff, and for `Ms` the smallest integer after `ms`
    const minTs = input.since._tag === "Ms"
      ? Math.max(input.cutoffMs, Math.floor(input.since.ms) + 1)
      : input.cutoffMs
    let after = input.since._tag === "Seq" ? input.since.seq : -1
    const messages: Array<Frames.HistoryMessage> = []
    // Collect limit + 1 decodable rows (the extra one only proves `more`); undecodable rows are
    // skipped, so keep reading until enough decode or the channel runs out.
    while (true) {
      const want = limit + 1 - messages.length
      const rows = yield* sql<RawMessageRow>`
        SELECT id, sender, payload, ts_ms, origin, reply_to FROM messages
        WHERE channel = ${input.channel} AND id > ${after} AND ts_ms >= ${minTs}
        ORDER BY id LIMIT ${want}`
      for (const row of rows) {
        const decoded = decodeStoredMessage(row)
        if (Either.isRight(decoded)) {
          const m = decoded.right
          messages.push({
            seq: m.id,
            from: m.sender,
            ts_ms: m.ts_ms,
            payload: m.payload,
            origin: m.origin,
            reply_to: m.reply_to
          })
        }
      }
      const last = rows[rows.length - 1]
      if (rows.length < want || messages.length > limit || last === undefined) break
      after = last.id
    }
    const more = messages.length > limit
    const page: HistoryPage = { messages: more ? messages.slice(0, limit) : messages, more }
    return page
  }, Effect.mapError(toStoreError("readSince")))

  const purgeOlderThan = Effect.fn("Store.purgeOlderThan")(function*(cutoffMs: number) {
    const result = yield* tx(sql`DELETE FROM messages WHERE ts_ms < ${cutoffMs}`.raw)
    const changes = (result as { readonly changes?: unknown }).changes
    return typeof changes === "number" ? changes : 0
  }, Effect.mapError(toStoreError("purgeOlderThan")))

  return {
    instanceId: Effect.succeed(instanceId),
    registerUser,
    userExists,
    listUsers,
    removeUser,
    findMachineByKey,
    listMachines,
    addMachine,
    removeMachine,
    getChannel,
    createChannel,
    deleteChannel,
    renameChannel,
    setVisibility,
    listVisibleChannels,
    isMember,
    addMember,
    aclAdd,
    removeMember,
    listMembers,
    ban,
    unban,
    listBans,
    allBans,
    createInvite,
    getInvite,
    deleteInvite,
    listInvites,
    redeemInvite,
    appendMessage,
    messageExists,
    readSince,
    purgeOlderThan
  } satisfies StoreShape
})

/**
 * `Store` over the `SqlClient` in context (for callers that build the client themselves).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClient: Layer.Layer<Store, StoreError, SqlClient.SqlClient> = Layer.effect(Store, make)

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
    Layer.catchAllCause((cause) =>
      Layer.failCause(
        Cause.isInterruptedOnly(cause)
          ? Cause.map(cause, toStoreError("open"))
          : Cause.fail(new StoreError({ operation: "open", cause: Cause.squash(cause) }))
      )
    )
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
