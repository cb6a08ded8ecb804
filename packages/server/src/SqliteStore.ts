/**
 * The embedded SQLite implementation of the `Store` port (SPEC §3.17, DECISIONS D-4, D-5, D-14).
 *
 * `layer({ filename })` opens (or creates) the database file, applies the PRAGMAs and pending schema
 * migrations, and provides `Store`; `layerMemory` is the same over `:memory:` (`--ephemeral`).
 * `layerClient` builds the store over an `SqlClient` supplied by the caller.
 *
 * @since 0.1.0
 */
import { Auth, Frames, Limits, Names } from "@conclave/protocol"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import Sqlite from "better-sqlite3"
import * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Checkpointer from "./internal/checkpointer.js"
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

// The stored JSON of a payload: exactly the fields of its variant, as the Schema encoding yields.
const payloadJson = (payload: Frames.Payload): string =>
  JSON.stringify(
    payload.kind === "plain"
      ? { kind: payload.kind, text: payload.text }
      : { kind: payload.kind, ciphertext: payload.ciphertext, key_id: payload.key_id }
  )

interface RawMessageRow {
  readonly id: number
  readonly sender: unknown
  readonly payload: unknown
  readonly ts_ms: unknown
  readonly origin: unknown
  readonly reply_to: unknown
}

const isInt = (u: unknown, min: number, max: number): u is number =>
  typeof u === "number" && Number.isInteger(u) && u >= min && u <= max

// The common row in one pass without Schema: a plain-text payload and well-formed columns. The
// result equals what `StoredMessage` decodes; anything else goes through `StoredMessage` (which
// also decides which rows are skipped).
const fastDecode = (row: RawMessageRow): Frames.HistoryMessage | undefined => {
  const { id, origin, payload, reply_to, sender, ts_ms } = row
  if (!isInt(id, 0, Number.MAX_SAFE_INTEGER) || !isInt(ts_ms, -Limits.MAX_DATE_MS, Limits.MAX_DATE_MS)) return undefined
  if (origin !== "agent" && origin !== "human") return undefined
  if (reply_to !== null && !isInt(reply_to, 0, Number.MAX_SAFE_INTEGER)) return undefined
  if (typeof sender !== "string" || typeof payload !== "string") return undefined
  const path = Names.parsePath(sender)
  if (path === undefined) return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(payload)
  } catch {
    return undefined
  }
  if (typeof parsed !== "object" || parsed === null) return undefined
  const p = parsed as { readonly kind?: unknown; readonly text?: unknown }
  if (p.kind !== "plain" || typeof p.text !== "string") return undefined
  return { seq: id, from: path, ts_ms, payload: { kind: "plain", text: p.text }, origin, reply_to }
}

const decodeRow = (row: RawMessageRow): Frames.HistoryMessage | undefined => {
  const fast = fastDecode(row)
  if (fast !== undefined) return fast
  const decoded = decodeStoredMessage(row)
  if (Either.isLeft(decoded)) return undefined
  const m = decoded.right
  return { seq: m.id, from: m.sender, ts_ms: m.ts_ms, payload: m.payload, origin: m.origin, reply_to: m.reply_to }
}

// Multi-row inserts of these sizes only (descending; the last is 1), so a batch of any length
// needs at most this many distinct statement texts in the prepared-statement cache.
const INSERT_CHUNKS: ReadonlyArray<number> = [128, 32, 8, 4, 1]
const INSERT_CHUNK: Record<number, string> = Object.fromEntries(
  INSERT_CHUNKS.map((n) => [
    n,
    "INSERT INTO messages (channel, sender, payload, ts_ms, origin, reply_to) VALUES " +
    Array.from({ length: n }, () => "(?, ?, ?, ?, ?, ?)").join(", ") + " RETURNING id"
  ])
)
const READ_SINCE = "SELECT id, sender, payload, ts_ms, origin, reply_to FROM messages " +
  "WHERE channel = ? AND id > ? AND ts_ms >= ? ORDER BY id LIMIT ?"
const MESSAGE_EXISTS = "SELECT 1 AS found FROM messages WHERE id = ? AND channel = ?"
const FIND_MACHINE_BY_KEY = "SELECT user, name, pubkey, added_at FROM machines WHERE pubkey = ?"
const GET_CHANNEL = "SELECT name, visibility, created_by, created_at FROM channels WHERE name = ?"
const IS_MEMBER = "SELECT 1 AS found FROM memberships WHERE channel = ? AND user = ?"
const USER_EXISTS = "SELECT 1 AS found FROM users WHERE username = ?"

// Hand-written checks for the common row of a hot read: the value the row schema decodes, or
// undefined to let the schema decide (and fail with its ParseError).
const fastMachine = (row: unknown): typeof MachineRowSchema.Type | undefined => {
  if (typeof row !== "object" || row === null) return undefined
  const { added_at, name, pubkey, user } = row as Readonly<Record<string, unknown>>
  return typeof user === "string" && typeof name === "string" && typeof pubkey === "string" &&
      typeof added_at === "string"
    ? { user, name, pubkey, added_at }
    : undefined
}

const fastChannel = (row: unknown): typeof ChannelRowSchema.Type | undefined => {
  if (typeof row !== "object" || row === null) return undefined
  const { created_at, created_by, name, visibility } = row as Readonly<Record<string, unknown>>
  return typeof name === "string" &&
      (visibility === "public" || visibility === "unlisted" || visibility === "private") &&
      typeof created_by === "string" && typeof created_at === "string"
    ? { name, visibility, created_by, created_at }
    : undefined
}

// The first row of a point lookup: the fast check, else the row schema.
const firstRow = <A, E>(
  rows: ReadonlyArray<unknown>,
  fast: (row: unknown) => A | undefined,
  decode: (rows: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<A>, E>
): Effect.Effect<Option.Option<A>, E> => {
  if (rows.length === 0) return Effect.succeed(Option.none())
  const row = fast(rows[0])
  return row !== undefined
    ? Effect.succeed(Option.some(row))
    : Effect.map(decode(rows), (decoded) => Option.fromNullable(decoded[0]))
}

/** Most appends one group commit takes from the queue. @since 0.1.0 @category constants */
export const MAX_BATCH = 512

// Resume after the current turn of the event loop: I/O callbacks already due run first.
const nextTurn: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

// A queued append and its outcome. A one-shot cell instead of a `Deferred` (whose construction
// copies a prototype per call, a measurable share of an append): the first `settle` wins, later ones
// are ignored; the waiter, if it still waits, is resumed with the outcome.
interface PendingAppend {
  readonly params: ReadonlyArray<unknown>
  outcome: Exit.Exit<number, StoreError> | undefined
  waiter: ((outcome: Exit.Exit<number, StoreError>) => void) | undefined
}

const pendingAppend = (message: NewMessage): PendingAppend => ({
  params: [
    message.channel,
    message.from,
    payloadJson(message.payload),
    message.ts_ms,
    message.origin,
    message.reply_to
  ],
  outcome: undefined,
  waiter: undefined
})

const settle = (item: PendingAppend, outcome: Exit.Exit<number, StoreError>): void => {
  if (item.outcome !== undefined) return
  item.outcome = outcome
  const waiter = item.waiter
  item.waiter = undefined
  waiter?.(outcome)
}

const refuse = (item: PendingAppend, cause: unknown): void =>
  settle(item, Exit.fail(new StoreError({ operation: "appendMessage", cause })))

const noneCommitted: { readonly items: ReadonlyArray<PendingAppend>; readonly seqs: ReadonlyArray<number> } = {
  items: [],
  seqs: []
}

// Rows to insert with one statement at `from`: 1 for a solo item, else the largest chunk size that
// fits the run of non-solo items starting there.
const chunkSize = (pending: ReadonlyArray<PendingAppend>, from: number, solo: ReadonlySet<PendingAppend>): number => {
  const max = INSERT_CHUNKS[0]!
  let run = Math.min(max, pending.length - from)
  if (solo.size > 0) {
    for (let k = 0; k < run; k++) {
      if (solo.has(pending[from + k]!)) {
        run = k
        break
      }
    }
  }
  for (const size of INSERT_CHUNKS) if (size <= run) return size
  return 1
}

// The ids of a chunk's rows in insertion (VALUES) order. AUTOINCREMENT hands out increasing ids in
// insertion order while the write lock is held, and SQLite does not promise RETURNING's row order,
// so the ids are sorted when they do not come back ascending. Undefined unless exactly `size`
// integer ids came back.
const chunkIds = (rows: ReadonlyArray<unknown>, size: number): ReadonlyArray<number> | undefined => {
  if (rows.length !== size) return undefined
  const ids: Array<number> = new Array(size)
  let ascending = true
  for (let k = 0; k < size; k++) {
    const row = rows[k]
    const id: unknown = typeof row === "object" && row !== null ? (row as { readonly id?: unknown }).id : undefined
    if (typeof id !== "number" || !Number.isSafeInteger(id)) return undefined
    if (k > 0 && id <= ids[k - 1]!) ascending = false
    ids[k] = id
  }
  return ascending ? ids : ids.sort((a, b) => a - b)
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

/** A database file path (not `:memory:`, a temporary database or a URI): another connection can open it. */
const isSharedFile = (filename: string) => filename !== "" && filename !== ":memory:" && !filename.startsWith("file:")

/**
 * Point reads of committed rows, each `undefined` when it could not read (never throws).
 */
interface PointReads {
  readonly findMachineByKey: (pubkey: string) => Option.Option<typeof MachineRowSchema.Type> | undefined
  readonly getChannel: (name: string) => Option.Option<typeof ChannelRowSchema.Type> | undefined
}

/**
 * Point reads on a second, read-only connection to the same file, for the reads every handshake and
 * join make. In WAL mode it reads the last committed state without waiting for the writer (whose
 * group commits hold the client's connection), and never blocks: a busy database (`timeout: 0`) or
 * any other failure answers `undefined`, and the read goes through the client. None for a database
 * only the client's own connection can see (`:memory:`).
 */
const openPointReads = (
  client: Option.Option<SqliteClient.SqliteClient>
): Effect.Effect<PointReads | undefined, never, Scope.Scope> => {
  if (Option.isNone(client) || !isSharedFile(client.value.config.filename)) return Effect.succeed(undefined)
  const filename = client.value.config.filename
  return Effect.acquireRelease(
    Effect.try(() => new Sqlite(filename, { readonly: true, fileMustExist: true, timeout: 0 })),
    (db) => Effect.sync(() => db.close())
  ).pipe(
    Effect.map((db): PointReads => {
      const pointRead = <A>(statement: string, fast: (row: unknown) => A | undefined) => {
        const prepared = db.prepare<[string], unknown>(statement)
        return (key: string): Option.Option<A> | undefined => {
          try {
            const row = prepared.get(key)
            if (row === undefined) return Option.none()
            const value = fast(row)
            return value === undefined ? undefined : Option.some(value)
          } catch {
            return undefined
          }
        }
      }
      return {
        findMachineByKey: pointRead(FIND_MACHINE_BY_KEY, fastMachine),
        getChannel: pointRead(GET_CHANNEL, fastChannel)
      }
    }),
    Effect.tapError((cause) =>
      Effect.logDebug("no read-only connection").pipe(Effect.annotateLogs({ cause: String(cause.error) }))
    ),
    Effect.orElseSucceed(() => undefined)
  )
}

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
  const instanceId = yield* initialize(sql)
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

  const decodeAll = <A, I>(schema: Schema.Schema<A, I>) => {
    const decode = Schema.decodeUnknown(Schema.Array(schema))
    return (rows: ReadonlyArray<unknown>) => decode(rows)
  }
  const decodeUsers = decodeAll(UserRowSchema)
  const decodeMachines = decodeAll(MachineRowSchema)
  const decodeChannels = decodeAll(ChannelRowSchema)
  const decodeInvites = decodeAll(InviteRowSchema)
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
    return yield* sql`SELECT user, name, pubkey, added_at FROM machines WHERE user = ${user} ORDER BY name`.pipe(
      Effect.flatMap(decodeMachines)
    )
  }, Effect.mapError(toStoreError("listMachines")))

  const addMachine = Effect.fnUntraced(function*(input: {
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

  const removeMachine = Effect.fnUntraced(function*(user: string, name: string) {
    yield* tx(sql`DELETE FROM machines WHERE user = ${user} AND name = ${name}`)
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
        sql`INSERT INTO channels (name, visibility, created_by, created_at)
            VALUES (${input.name}, ${input.visibility}, ${input.createdBy}, ${input.now})`,
        sql`INSERT OR IGNORE INTO memberships (channel, user) VALUES (${input.name}, ${input.createdBy})`
      )
    ).pipe(Effect.mapError(toConflict("createChannel", { channel: input.name })))
  })

  const deleteChannel = Effect.fnUntraced(function*(name: string) {
    // memberships, invites, bans and messages go with it (ON DELETE CASCADE)
    yield* tx(sql`DELETE FROM channels WHERE name = ${name}`)
  }, Effect.mapError(toStoreError("deleteChannel")))

  const renameChannel = Effect.fnUntraced(function*(name: string, newName: string) {
    // memberships, invites, bans and messages follow (ON UPDATE CASCADE)
    yield* tx(sql`UPDATE channels SET name = ${newName} WHERE name = ${name}`).pipe(
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

  // ACL and bans -------------------------------------------------------------------------------------

  // Inserts are no-ops when the channel no longer exists (a concurrent delete wins).
  const insertMember = (channel: string, user: string) =>
    sql`INSERT OR IGNORE INTO memberships (channel, user)
        SELECT name, ${user} FROM channels WHERE name = ${channel}`

  const isMember = (channel: string, user: string) =>
    query(IS_MEMBER, [channel, user]).pipe(
      Effect.map((rows) => rows.length > 0),
      Effect.mapError(toStoreError("isMember"))
    )

  const addMember = Effect.fnUntraced(function*(channel: string, user: string) {
    yield* tx(insertMember(channel, user))
  }, Effect.mapError(toStoreError("addMember")))

  const aclAdd = Effect.fnUntraced(function*(channel: string, user: string) {
    yield* tx(
      Effect.zipRight(insertMember(channel, user), sql`DELETE FROM bans WHERE channel = ${channel} AND user = ${user}`)
    )
  }, Effect.mapError(toStoreError("aclAdd")))

  const removeMember = Effect.fnUntraced(function*(channel: string, user: string) {
    yield* tx(sql`DELETE FROM memberships WHERE channel = ${channel} AND user = ${user}`)
  }, Effect.mapError(toStoreError("removeMember")))

  const listMembers = Effect.fnUntraced(function*(channel: string) {
    const rows = yield* sql<{ readonly user: string }>`
      SELECT user FROM memberships WHERE channel = ${channel} ORDER BY user`
    return rows.map((row) => row.user)
  }, Effect.mapError(toStoreError("listMembers")))

  const ban = Effect.fnUntraced(function*(channel: string, user: string) {
    yield* tx(
      Effect.zipRight(
        sql`DELETE FROM memberships WHERE channel = ${channel} AND user = ${user}`,
        sql`INSERT OR IGNORE INTO bans (channel, user) SELECT name, ${user} FROM channels WHERE name = ${channel}`
      )
    )
  }, Effect.mapError(toStoreError("ban")))

  const unban = Effect.fnUntraced(function*(channel: string, user: string) {
    yield* tx(sql`DELETE FROM bans WHERE channel = ${channel} AND user = ${user}`)
  }, Effect.mapError(toStoreError("unban")))

  const listBans = Effect.fnUntraced(function*(channel: string) {
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

  const createInvite = Effect.fnUntraced(function*(row: InviteRow) {
    yield* tx(
      sql`INSERT INTO invites (token, channel, uses_remaining, expires_at, created_by)
          VALUES (${row.token}, ${row.channel}, ${row.uses_remaining}, ${row.expires_at}, ${row.created_by})`
    )
  }, Effect.mapError(toStoreError("createInvite")))

  const inviteColumns = sql.literal("token, channel, uses_remaining, expires_at, created_by")

  const getInvite = Effect.fnUntraced(function*(token: string) {
    const rows = yield* sql`SELECT ${inviteColumns} FROM invites WHERE token = ${token}`.pipe(
      Effect.flatMap(decodeInvites)
    )
    return Option.fromNullable(rows[0])
  }, Effect.mapError(toStoreError("getInvite")))

  const deleteInvite = Effect.fnUntraced(function*(token: string) {
    yield* tx(sql`DELETE FROM invites WHERE token = ${token}`)
  }, Effect.mapError(toStoreError("deleteInvite")))

  const listInvites = Effect.fnUntraced(function*(channel: string) {
    return yield* sql`SELECT ${inviteColumns} FROM invites WHERE channel = ${channel} ORDER BY token`.pipe(
      Effect.flatMap(decodeInvites)
    )
  }, Effect.mapError(toStoreError("listInvites")))

  const redeemInvite = Effect.fnUntraced(function*(input: {
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

  // Appends go through one writer fiber that owns the connection for a whole batch: everything
  // queued while it worked is inserted in one transaction (group commit), then the appends are
  // resolved in seq order, each only once COMMIT returned (D-5). An insert that fails
  // refuses that post alone (the batch is retried without it, see `commitBatch`); a failed BEGIN or
  // COMMIT refuses every post of the batch. No Schema, no span, no statement compilation on this path.
  const queue = yield* Queue.unbounded<PendingAppend>()
  const refuseAll = (batch: ReadonlyArray<PendingAppend>, cause: unknown) =>
    Effect.sync(() => {
      for (const item of batch) refuse(item, cause)
    })

  // Insert and commit under one reserved connection; the committed items and their seqs, in seq
  // order. Rows go in as multi-row INSERTs of a few fixed sizes (largest first), so at most
  // `INSERT_CHUNKS.length` statement texts reach the prepared-statement cache. A chunk that fails
  // rolls the transaction back and is retried row by row (`solo`); a single row that fails is
  // refused and the rest retried without it. Every retry makes progress: a failing chunk turns at
  // least two items solo, a failing solo row leaves the batch.
  const commitBatch = (batch: ReadonlyArray<PendingAppend>) =>
    Effect.scoped(Effect.gen(function*() {
      const conn = yield* sql.reserve
      const exec = (statement: string, params: ReadonlyArray<unknown>) => conn.execute(statement, params, undefined)
      const solo = new Set<PendingAppend>()
      let pending = batch
      while (pending.length > 0) {
        const begun = yield* Effect.either(exec("BEGIN IMMEDIATE", []))
        if (Either.isLeft(begun)) {
          yield* refuseAll(pending, begun.left)
          return noneCommitted
        }
        const seqs: Array<number> = []
        let failed: { readonly from: number; readonly size: number; readonly cause: unknown } | undefined
        let i = 0
        while (i < pending.length) {
          const size = chunkSize(pending, i, solo)
          const params: Array<unknown> = []
          for (let k = i; k < i + size; k++) {
            const p = pending[k]!.params
            params.push(p[0], p[1], p[2], p[3], p[4], p[5])
          }
          const result = yield* Effect.either(exec(INSERT_CHUNK[size]!, params))
          const ids = Either.isRight(result) ? chunkIds(result.right, size) : undefined
          if (ids === undefined) {
            failed = { from: i, size, cause: Either.isLeft(result) ? result.left : "no row ids returned" }
            break
          }
          for (const id of ids) seqs.push(id)
          i += size
        }
        if (failed !== undefined) {
          const { cause, from, size } = failed
          yield* Effect.ignore(exec("ROLLBACK", []))
          if (size > 1) {
            for (let k = from; k < from + size; k++) solo.add(pending[k]!)
          } else {
            const item = pending[from]!
            refuse(item, cause)
            pending = pending.filter((p) => p !== item)
          }
          continue
        }
        const committed = yield* Effect.either(exec("COMMIT", []))
        if (Either.isLeft(committed)) {
          yield* Effect.ignore(exec("ROLLBACK", []))
          yield* refuseAll(pending, committed.left)
          return noneCommitted
        }
        markCommitted()
        return { items: pending, seqs }
      }
      return noneCommitted
    }))

  const writeBatch = (batch: ReadonlyArray<PendingAppend>) =>
    Effect.gen(function*() {
      const { items, seqs } = yield* commitBatch(batch)
      for (let k = 0; k < items.length; k++) settle(items[k]!, Exit.succeed(seqs[k]!))
    }).pipe(
      // never leave a post hanging: anything unexpected refuses whatever is still unresolved
      Effect.catchAllCause((cause) => refuseAll(batch, Cause.squash(cause)))
    )

  // On close the writer is interrupted first (only while it waits for work), then whatever is still
  // queued is refused; appends offered after that are interrupted by the shut-down queue.
  yield* Effect.addFinalizer(() =>
    Effect.flatMap(Queue.takeAll(queue), (rest) => refuseAll(Array.from(rest), "store closed")).pipe(
      Effect.zipRight(Queue.shutdown(queue))
    )
  )
  // Wait for the first append, then let the event loop finish its turn (socket reads already due
  // queue their posts meanwhile) and commit everything queued by then: the group-commit window is
  // one loop turn, no timer. Once taken, an append is always resolved: the rest of the round is
  // uninterruptible.
  yield* Effect.uninterruptibleMask((restore) =>
    restore(Queue.take(queue)).pipe(
      Effect.zipLeft(nextTurn),
      Effect.flatMap((first) =>
        Effect.flatMap(Queue.takeUpTo(queue, MAX_BATCH - 1), (rest) => writeBatch([first, ...rest]))
      )
    )
  ).pipe(
    Effect.forever,
    // interruptible even when the layer is built inside an uninterruptible region (e.g. an acquire)
    Effect.interruptible,
    Effect.forkScoped
  )

  // The append is queued when the effect starts (so earlier starts get lower seqs) and resolved by
  // the writer. Interrupting the wait only stops the wait: the append still commits or is refused.
  const appendMessage = (message: NewMessage) =>
    Effect.async<number, StoreError>((resume) => {
      const item = pendingAppend(message)
      item.waiter = resume
      if (!Queue.unsafeOffer(queue, item)) refuse(item, "store closed")
      return Effect.sync(() => {
        item.waiter = undefined
      })
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
  }) =>
    Effect.gen(function*() {
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
        const rows = (yield* query(READ_SINCE, [input.channel, after, minTs, want])) as unknown as ReadonlyArray<
          RawMessageRow
        >
        for (const row of rows) {
          const message = decodeRow(row)
          if (message !== undefined) messages.push(message)
        }
        const last = rows[rows.length - 1]
        if (rows.length < want || messages.length > limit || last === undefined) break
        after = last.id
      }
      const more = messages.length > limit
      const page: HistoryPage = { messages: more ? messages.slice(0, limit) : messages, more }
      return page
    }).pipe(Effect.mapError(toStoreError("readSince")))

  const purgeOlderThan = Effect.fnUntraced(function*(cutoffMs: number) {
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
