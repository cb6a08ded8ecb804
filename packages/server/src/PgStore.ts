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
import { Auth, Frames, Skeleton } from "@conclave/protocol"
import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import {
  latestVersion,
  migrations,
  MIGRATIONS_TABLE,
  PG_SKELETON_VERSION,
  skeletonBackfills
} from "./internal/pgMigrations.js"
import {
  ChannelRowSchema,
  decodeAll,
  decodeMessage,
  fastChannel,
  fastMachine,
  firstRow,
  InviteRowSchema,
  isSqlError,
  MachineRowSchema,
  type MessageColumns,
  openFailure,
  payloadJson,
  readBeforePages,
  readSincePages,
  redeemInvite as redeemIn,
  runWriter,
  UserRowSchema
} from "./internal/storeRows.js"
import {
  type InviteRow,
  type NewMessage,
  type Since,
  Store,
  StoreConflict,
  StoreError,
  type StoreShape,
  type StoreStatus
} from "./Store.js"

/** How long opening a connection may take before it fails. @since 0.1.0 @category constants */
export const CONNECT_TIMEOUT: Duration.Duration = Duration.seconds(5)

/** How long one store operation (or one group commit) may take before it fails. @since 0.1.0 @category constants */
export const OPERATION_TIMEOUT: Duration.Duration = Duration.seconds(15)

/** Most appends one group commit takes from the queue. @since 0.1.0 @category constants */
export const MAX_BATCH = 1_000

/** Connections in the pool `layer` opens. @since 0.1.0 @category constants */
export const MAX_CONNECTIONS = 10

// Any key of ours: held (per database) while migrations run, so nodes starting together take turns.
const MIGRATION_LOCK = 0x636f6e63

// ---------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------

const ChannelInfoRowSchema = Schema.Struct({
  name: Schema.String,
  visibility: Frames.Visibility,
  member: Schema.Boolean
})

type RawMessageRow = MessageColumns

// BIGINT columns arrive as decimal strings unless the client was told to parse them: a safe integer
// either way (anything else is left as it is, for the decoder to refuse).
const integer = (u: unknown): unknown => {
  if (typeof u === "string" && /^-?\d{1,16}$/.test(u)) {
    const n = Number(u)
    return Number.isSafeInteger(n) ? n : u
  }
  return typeof u === "bigint" && u >= BigInt(Number.MIN_SAFE_INTEGER) && u <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(u)
    : u
}

// The columns of a row with its integers as numbers where they are safe ones.
const messageColumns = (row: RawMessageRow): MessageColumns => ({
  seq: integer(row.seq),
  sender: row.sender,
  payload: row.payload,
  ts_ms: integer(row.ts_ms),
  origin: row.origin,
  reply_to: row.reply_to === null ? null : integer(row.reply_to)
})

// ---------------------------------------------------------------------------------------------
// Statements on the hot paths (fixed texts; parameters only)
// ---------------------------------------------------------------------------------------------

// One statement per group commit (one round trip, committed on its own): number the batch per
// channel in queue order from each channel's counter, insert the rows, return their keys. Rows of
// channels that do not exist are left out (their appends are refused). Counter rows are taken in
// channel order, so two nodes committing batches over the same channels cannot deadlock.
const APPEND_BATCH = `
WITH batch AS (
  SELECT b.channel, b.sender, b.payload, b.ts_ms, b.origin, b.reply_to, b.ord
  FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::int8[])
    WITH ORDINALITY AS b(channel, sender, payload, ts_ms, origin, reply_to, ord)
  WHERE EXISTS (SELECT 1 FROM channels c WHERE c.name = b.channel)
),
counts AS (
  SELECT channel, count(*) AS n FROM batch GROUP BY channel
),
bumped AS (
  INSERT INTO channel_seq (channel, last_seq)
  SELECT channel, n FROM counts ORDER BY channel
  ON CONFLICT (channel) DO UPDATE SET last_seq = channel_seq.last_seq + EXCLUDED.last_seq
  RETURNING channel, last_seq
)
INSERT INTO messages (channel, seq, sender, payload, ts_ms, origin, reply_to)
SELECT b.channel, k.last_seq - c.n + row_number() OVER (PARTITION BY b.channel ORDER BY b.ord),
  b.sender, b.payload, b.ts_ms, b.origin, b.reply_to
FROM batch b JOIN counts c ON c.channel = b.channel JOIN bumped k ON k.channel = b.channel
RETURNING channel, seq`

// Issue 22: the payloads' sizes only (`octet_length` reads the stored length, not the value).
const READ_SINCE_SIZES = "SELECT octet_length(payload) AS n FROM messages " +
  "WHERE channel = $1 AND seq > $2 AND ts_ms >= $3 ORDER BY seq LIMIT $4"
const READ_SINCE = "SELECT seq, sender, payload, ts_ms, origin, reply_to FROM messages " +
  "WHERE channel = $1 AND seq > $2 AND ts_ms >= $3 ORDER BY seq LIMIT $4"
// Scroll-back: the same rows below a seq, newest first (the (channel, seq) key read backwards).
const READ_BEFORE_SIZES = "SELECT octet_length(payload) AS n FROM messages " +
  "WHERE channel = $1 AND seq < $2 AND ts_ms >= $3 ORDER BY seq DESC LIMIT $4"
const READ_BEFORE = "SELECT seq, sender, payload, ts_ms, origin, reply_to FROM messages " +
  "WHERE channel = $1 AND seq < $2 AND ts_ms >= $3 ORDER BY seq DESC LIMIT $4"
const MESSAGE_EXISTS = "SELECT 1 AS found FROM messages WHERE channel = $1 AND seq = $2"
const FIND_MACHINE_BY_KEY = "SELECT username AS user, name, pubkey, added_at FROM machines WHERE pubkey = $1"
const GET_CHANNEL = "SELECT name, visibility, created_by, created_at FROM channels WHERE name = $1"
const IS_MEMBER = "SELECT 1 AS found FROM memberships WHERE channel = $1 AND username = $2"
const USER_EXISTS = "SELECT 1 AS found FROM users WHERE username = $1"

// ---------------------------------------------------------------------------------------------
// Errors (never the SQL text, never a parameter: only SQLSTATE, constraint and pg's own message)
// ---------------------------------------------------------------------------------------------

const pgField = (error: unknown, field: "code" | "constraint"): string | undefined => {
  const cause: unknown = typeof error === "object" && error !== null && "cause" in error ? error.cause : error
  if (typeof cause !== "object" || cause === null) return undefined
  const value: unknown = (cause as Readonly<Record<string, unknown>>)[field]
  return typeof value === "string" ? value : undefined
}

const conflictKinds: Record<string, StoreConflict["what"]> = {
  users_pkey: "username",
  machines_pubkey_key: "pubkey",
  machines_pkey: "machine",
  channels_pkey: "channel",
  users_skeleton_key: "username",
  machines_skeleton_key: "machine",
  machine_offers_pkey: "machine",
  machine_offers_skeleton_key: "machine",
  channels_skeleton_key: "channel"
}

/** A uniqueness violation onto the conflicting value the caller supplied; anything else is a StoreError. */
const toConflict =
  (operation: string, values: Partial<Record<StoreConflict["what"], string>>) =>
  (error: SqlError | StoreError): StoreError | StoreConflict => {
    if (error._tag === "StoreError") return error
    const constraint = pgField(error, "code") === "23505" ? pgField(error, "constraint") : undefined
    const what = constraint === undefined ? undefined : conflictKinds[constraint]
    const value = what === undefined ? undefined : values[what]
    return what !== undefined && value !== undefined
      ? new StoreConflict({ what, value })
      : new StoreError({ operation, cause: error })
  }

// A batch that failed on its data (integrity, data exception, deadlock or serialization failure) is
// retried one append at a time, so only the offending append is refused. Anything else (the server
// unreachable, a connection lost) refuses the whole batch at once.
const isRowFailure = (error: unknown): boolean => {
  const code = pgField(error, "code")
  return code !== undefined && /^(22|23|40)[0-9A-Z]{3}$/.test(code)
}

// ---------------------------------------------------------------------------------------------
// Group commit
// ---------------------------------------------------------------------------------------------

// A queued append and its outcome: the first `settle` wins; `awaitAppend` resumes at once when
// settled, else when it is.
interface PendingAppend {
  readonly message: NewMessage
  readonly payload: string
  outcome: Exit.Exit<number, StoreError> | undefined
  waiters: Array<(outcome: Exit.Exit<number, StoreError>) => void> | undefined
}

const pendingAppend = (
  message: NewMessage,
  waiters: PendingAppend["waiters"]
): PendingAppend => ({ message, payload: payloadJson(message.payload), outcome: undefined, waiters })

const settle = (item: PendingAppend, outcome: Exit.Exit<number, StoreError>): void => {
  if (item.outcome !== undefined) return
  item.outcome = outcome
  const waiters = item.waiters
  item.waiters = undefined
  if (waiters !== undefined) { for (const waiter of waiters) waiter(outcome) }
}

const refuse = (item: PendingAppend, cause: unknown): void =>
  settle(item, Exit.fail(new StoreError({ operation: "appendMessage", cause })))

// Interrupting the waiter only stops the wait: the append itself still commits or is refused.
const awaitAppend = (item: PendingAppend): Effect.Effect<number, StoreError> =>
  Effect.async<number, StoreError>((resume) => {
    if (item.outcome !== undefined) return resume(item.outcome)
    if (item.waiters === undefined) item.waiters = [resume]
    else item.waiters.push(resume)
    return Effect.sync(() => {
      const at = item.waiters?.indexOf(resume) ?? -1
      if (at >= 0) item.waiters!.splice(at, 1)
    })
  })

const batchParams = (batch: ReadonlyArray<PendingAppend>): ReadonlyArray<unknown> => {
  const n = batch.length
  const channels: Array<string> = new Array(n)
  const senders: Array<string> = new Array(n)
  const payloads: Array<string> = new Array(n)
  const ts: Array<number> = new Array(n)
  const origins: Array<string> = new Array(n)
  const replies: Array<number | null> = new Array(n)
  for (let i = 0; i < n; i++) {
    const { message, payload } = batch[i]!
    channels[i] = message.channel
    senders[i] = message.from
    payloads[i] = payload
    ts[i] = message.ts_ms
    origins[i] = message.origin
    replies[i] = message.reply_to
  }
  return [channels, senders, payloads, ts, origins, replies]
}

// The seq of each item of `batch` (undefined: its channel does not exist), from the (channel, seq)
// rows the batch statement returned: per channel, ascending seqs go to its items in queue order.
const assignSeqs = (
  batch: ReadonlyArray<PendingAppend>,
  rows: ReadonlyArray<unknown>
): ReadonlyArray<number | undefined> | undefined => {
  const byChannel = new Map<string, Array<number>>()
  for (const row of rows) {
    const { channel, seq } = (typeof row === "object" && row !== null ? row : {}) as {
      readonly channel?: unknown
      readonly seq?: unknown
    }
    const n = integer(seq)
    if (typeof channel !== "string" || typeof n !== "number") return undefined
    const list = byChannel.get(channel)
    if (list === undefined) byChannel.set(channel, [n])
    else list.push(n)
  }
  for (const list of byChannel.values()) list.sort((a, b) => a - b)
  const next = new Map<string, number>()
  const seqs = batch.map((item) => {
    const list = byChannel.get(item.message.channel)
    if (list === undefined) return undefined
    const at = next.get(item.message.channel) ?? 0
    next.set(item.message.channel, at + 1)
    return list[at]
  })
  let assigned = 0
  for (const seq of seqs) if (seq !== undefined) assigned++
  return assigned === rows.length ? seqs : undefined
}

// ---------------------------------------------------------------------------------------------
// Construction
// ---------------------------------------------------------------------------------------------

// Under a transaction-scoped advisory lock (nodes starting together take turns): the migrations
// table, pending migrations, the instance id (fixed key; the first writer wins).
const initialize = (sql: SqlClient.SqlClient): Effect.Effect<string, StoreError> =>
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

const build: Effect.Effect<StoreShape, StoreError, PgClient.PgClient | Scope.Scope> = Effect.gen(function*() {
  const sql: SqlClient.SqlClient = yield* PgClient.PgClient
  const instanceId = yield* initialize(sql)

  // Every operation: its failures as StoreError named after it, and a bound on how long it may take
  // (a server that stops answering must not hold a caller forever).
  const guard = (operation: string) => <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, StoreError> =>
    effect.pipe(
      Effect.timeoutFail({ duration: OPERATION_TIMEOUT, onTimeout: () => "timed out" }),
      Effect.mapError((e) => e instanceof StoreError ? e : new StoreError({ operation, cause: e }))
    )
  const guardConflict = (operation: string, values: Partial<Record<StoreConflict["what"], string>>) =>
  <A>(
    effect: Effect.Effect<A, SqlError>
  ): Effect.Effect<A, StoreError | StoreConflict> =>
    effect.pipe(
      Effect.timeoutFail({
        duration: OPERATION_TIMEOUT,
        onTimeout: () => new StoreError({ operation, cause: "timed out" })
      }),
      Effect.mapError(toConflict(operation, values))
    )

  // `withTransaction` turns a failed COMMIT or ROLLBACK into a defect (a connection lost at COMMIT):
  // a refusal, not a dead caller.
  const tx = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
    sql.withTransaction(effect).pipe(
      Effect.catchSomeDefect((defect) => isSqlError(defect) ? Option.some(Effect.fail(defect)) : Option.none())
    )

  const decodeUsers = decodeAll(UserRowSchema)
  const decodeMachines = decodeAll(MachineRowSchema)
  const decodeChannels = decodeAll(ChannelRowSchema)
  const decodeInvites = decodeAll(InviteRowSchema)
  const decodeChannelInfos = decodeAll(ChannelInfoRowSchema)

  // Hot reads and the group commit: a fixed statement text with parameters only, on a pooled
  // connection taken for that statement alone (never `sql.reserve`, whose wait for a connection
  // cannot be interrupted without losing the connection to the pool). Arrays are bound as
  // PostgreSQL arrays by pg.
  const query = (statement: string, params: ReadonlyArray<unknown>) =>
    sql.unsafe<Readonly<Record<string, unknown>>>(statement, params)

  // users and machines ---------------------------------------------------------------------------

  const registerUser = (input: {
    readonly username: string
    readonly machine: string
    readonly pubkey: string
    readonly now: string
  }) =>
    tx(
      Effect.all([
        sql`INSERT INTO users (username, created_at, skeleton)
            VALUES (${input.username}, ${input.now}, ${Skeleton.skeleton(input.username)})`,
        sql`INSERT INTO machines (username, name, pubkey, added_at, skeleton)
            VALUES (${input.username}, ${input.machine}, ${input.pubkey}, ${input.now}, ${
          Skeleton.skeleton(input.machine)
        })`,
        // the key is bound now: offers of it to other users lapse
        sql`DELETE FROM machine_offers WHERE pubkey = ${input.pubkey}`
      ], { discard: true })
    ).pipe(
      Effect.asVoid,
      guardConflict("registerUser", { username: input.username, pubkey: input.pubkey, machine: input.machine })
    )

  const userExists = (username: string) =>
    query(USER_EXISTS, [username]).pipe(Effect.map((rows) => rows.length > 0), guard("userExists"))

  const listUsers = sql`SELECT username, created_at FROM users ORDER BY username`.pipe(
    Effect.flatMap(decodeUsers),
    Effect.map((rows) => rows.map((row) => row.username)),
    guard("listUsers")
  )

  const removeUser = (username: string) =>
    tx(Effect.gen(function*() {
      const channels = yield* sql<{ readonly name: string }>`
        DELETE FROM channels WHERE created_by = ${username} RETURNING name`
      yield* sql`DELETE FROM memberships WHERE username = ${username}`
      yield* sql`DELETE FROM machines WHERE username = ${username}`
      yield* sql`DELETE FROM machine_offers WHERE username = ${username}`
      // The rows kept elsewhere must not look written by whoever registers the name next (issue 22):
      // their author becomes `<user> (removed)`, which no name can be (names hold no whitespace).
      const prefix = `${username}/`
      yield* sql`UPDATE messages SET sender = ${`${username} (removed)/`} || substr(sender, ${[...prefix].length + 1})
        WHERE substr(sender, 1, ${[...prefix].length}) = ${prefix}`
      yield* sql`DELETE FROM users WHERE username = ${username}`
      return { deletedChannels: channels.map((row) => row.name) }
    })).pipe(guard("removeUser"))

  const findMachineByKey = (pubkey: string) =>
    Effect.flatMap(query(FIND_MACHINE_BY_KEY, [pubkey]), (rows) => firstRow(rows, fastMachine, decodeMachines)).pipe(
      guard("findMachineByKey")
    )

  const listMachines = (user: string) =>
    // open offers too (issue 22): what `machine add` added, removable with `machine remove`
    sql`SELECT username AS user, name, pubkey, added_at FROM machines WHERE username = ${user}
      UNION ALL SELECT username AS user, name, pubkey, offered_at AS added_at FROM machine_offers WHERE username = ${user}
      ORDER BY name`.pipe(
      Effect.flatMap(decodeMachines),
      guard("listMachines")
    )

  const addMachine = (input: {
    readonly user: string
    readonly name: string
    readonly pubkey: string
    readonly now: string
  }) =>
    tx(Effect.zipRight(
      sql`INSERT INTO machines (username, name, pubkey, added_at, skeleton)
          VALUES (${input.user}, ${input.name}, ${input.pubkey}, ${input.now}, ${Skeleton.skeleton(input.name)})`,
      sql`DELETE FROM machine_offers WHERE pubkey = ${input.pubkey}`
    )).pipe(
      Effect.asVoid,
      guardConflict("addMachine", { machine: input.name, pubkey: input.pubkey })
    )

  const offerMachine = (input: {
    readonly user: string
    readonly name: string
    readonly pubkey: string
    readonly now: string
  }) => {
    const skeleton = Skeleton.skeleton(input.name)
    return tx(Effect.gen(function*() {
      const bound = yield* sql`SELECT 1 AS found FROM machines WHERE pubkey = ${input.pubkey}`
      const offered = yield* sql`SELECT 1 AS found FROM machine_offers
        WHERE username = ${input.user} AND pubkey = ${input.pubkey}`
      // one key, one user: bound anywhere, or already offered by this user (SPEC: pubkey anywhere)
      if (bound.length > 0 || offered.length > 0) {
        return yield* new StoreConflict({ what: "pubkey", value: input.pubkey })
      }
      const named = yield* sql`SELECT 1 AS found FROM machines
        WHERE username = ${input.user} AND (name = ${input.name} OR skeleton = ${skeleton})`
      if (named.length > 0) return yield* new StoreConflict({ what: "machine", value: input.name })
      yield* sql`INSERT INTO machine_offers (username, name, skeleton, pubkey, offered_at)
        VALUES (${input.user}, ${input.name}, ${skeleton}, ${input.pubkey}, ${input.now})`
    })).pipe(
      Effect.catchTag("SqlError", (e) => Effect.fail(toConflict("offerMachine", { machine: input.name })(e))),
      Effect.timeoutFail({
        duration: OPERATION_TIMEOUT,
        onTimeout: () => new StoreError({ operation: "offerMachine", cause: "timed out" })
      })
    )
  }

  const claimMachine = (input: {
    readonly user: string
    readonly name: string
    readonly pubkey: string
    readonly now: string
  }) =>
    tx(Effect.gen(function*() {
      const offered = yield* sql`SELECT 1 AS found FROM machine_offers
        WHERE username = ${input.user} AND name = ${input.name} AND pubkey = ${input.pubkey}`
      if (offered.length === 0) return false
      yield* sql`INSERT INTO machines (username, name, pubkey, added_at, skeleton)
        VALUES (${input.user}, ${input.name}, ${input.pubkey}, ${input.now}, ${Skeleton.skeleton(input.name)})`
      yield* sql`DELETE FROM machine_offers WHERE pubkey = ${input.pubkey}`
      return true
    })).pipe(guardConflict("claimMachine", { machine: input.name, pubkey: input.pubkey }))

  const findOfferByKey = (pubkey: string) =>
    sql<{ readonly username: unknown; readonly name: unknown }>`
      SELECT username, name FROM machine_offers WHERE pubkey = ${pubkey} ORDER BY offered_at, username LIMIT 1`.pipe(
      Effect.map((rows) =>
        Option.fromNullable(rows[0]).pipe(Option.map((row) => ({ user: String(row.username), name: String(row.name) })))
      ),
      guard("findOfferByKey")
    )

  const removeMachine = (user: string, name: string) =>
    tx(Effect.zipRight(
      sql`DELETE FROM machines WHERE username = ${user} AND name = ${name}`,
      sql`DELETE FROM machine_offers WHERE username = ${user} AND name = ${name}`
    )).pipe(Effect.asVoid, guard("removeMachine"))

  // channels ---------------------------------------------------------------------------------------

  const getChannel = (name: string) =>
    Effect.flatMap(query(GET_CHANNEL, [name]), (rows) => firstRow(rows, fastChannel, decodeChannels)).pipe(
      guard("getChannel")
    )

  const createChannel = (input: {
    readonly name: string
    readonly visibility: Frames.Visibility
    readonly createdBy: string
    readonly now: string
  }) =>
    tx(
      Effect.zipRight(
        sql`INSERT INTO channels (name, visibility, created_by, created_at, skeleton)
            VALUES (${input.name}, ${input.visibility}, ${input.createdBy}, ${input.now}, ${
          Skeleton.skeleton(input.name)
        })`,
        sql`INSERT INTO memberships (channel, username) VALUES (${input.name}, ${input.createdBy})
            ON CONFLICT DO NOTHING`
      )
    ).pipe(Effect.asVoid, guardConflict("createChannel", { channel: input.name }))

  // memberships, invites, bans and messages go with it (ON DELETE CASCADE); its seq counter stays
  const deleteChannel = (name: string) =>
    sql`DELETE FROM channels WHERE name = ${name}`.pipe(Effect.asVoid, guard("deleteChannel"))

  // Memberships, invites, bans and messages follow (ON UPDATE CASCADE), messages with their seqs;
  // the new name's counter goes on from the higher of both names' counters (both stay, so neither
  // name hands out a seq twice).
  const renameChannel = (name: string, newName: string) =>
    tx(
      Effect.zipRight(
        sql`UPDATE channels SET name = ${newName}, skeleton = ${Skeleton.skeleton(newName)} WHERE name = ${name}`,
        sql`INSERT INTO channel_seq (channel, last_seq)
            SELECT ${newName}, last_seq FROM channel_seq WHERE channel = ${name}
            ON CONFLICT (channel) DO UPDATE SET last_seq = GREATEST(channel_seq.last_seq, EXCLUDED.last_seq)`
      )
    ).pipe(Effect.asVoid, guardConflict("renameChannel", { channel: newName }))

  const setVisibility = (name: string, visibility: Frames.Visibility) =>
    sql`UPDATE channels SET visibility = ${visibility} WHERE name = ${name}`.pipe(
      Effect.asVoid,
      guard("setVisibility")
    )

  const listVisibleChannels = (user: string, isServerAdmin: boolean) => {
    const member = sql`EXISTS (SELECT 1 FROM memberships m WHERE m.channel = c.name AND m.username = ${user})`
    return (isServerAdmin
      ? sql`SELECT c.name, c.visibility, ${member} AS member FROM channels c ORDER BY c.name`
      : sql`SELECT c.name, c.visibility, ${member} AS member FROM channels c
            WHERE c.visibility = 'public' OR ${member} ORDER BY c.name`).pipe(
        Effect.flatMap(decodeChannelInfos),
        Effect.map((rows) =>
          rows.map((row): Frames.ChannelInfo => ({ name: row.name, visibility: row.visibility, member: row.member }))
        ),
        guard("listVisibleChannels")
      )
  }

  // ACL and bans -------------------------------------------------------------------------------------

  // Inserts are no-ops when the channel no longer exists (a concurrent delete wins).
  const insertMember = (channel: string, user: string) =>
    sql`INSERT INTO memberships (channel, username)
        SELECT name, ${user} FROM channels WHERE name = ${channel} ON CONFLICT DO NOTHING`

  const isMember = (channel: string, user: string) =>
    query(IS_MEMBER, [channel, user]).pipe(Effect.map((rows) => rows.length > 0), guard("isMember"))

  const addMember = (channel: string, user: string) =>
    insertMember(channel, user).pipe(Effect.asVoid, guard("addMember"))

  const aclAdd = (channel: string, user: string) =>
    tx(
      Effect.zipRight(
        insertMember(channel, user),
        sql`DELETE FROM bans WHERE channel = ${channel} AND username = ${user}`
      )
    ).pipe(Effect.asVoid, guard("aclAdd"))

  const removeMember = (channel: string, user: string) =>
    sql`DELETE FROM memberships WHERE channel = ${channel} AND username = ${user}`.pipe(
      Effect.asVoid,
      guard("removeMember")
    )

  const listMembers = (channel: string) =>
    sql<{ readonly username: string }>`
      SELECT username FROM memberships WHERE channel = ${channel} ORDER BY username`.pipe(
      Effect.map((rows) => rows.map((row) => row.username)),
      guard("listMembers")
    )

  const ban = (channel: string, user: string) =>
    tx(
      Effect.zipRight(
        sql`DELETE FROM memberships WHERE channel = ${channel} AND username = ${user}`,
        sql`INSERT INTO bans (channel, username) SELECT name, ${user} FROM channels WHERE name = ${channel}
            ON CONFLICT DO NOTHING`
      )
    ).pipe(Effect.asVoid, guard("ban"))

  const unban = (channel: string, user: string) =>
    sql`DELETE FROM bans WHERE channel = ${channel} AND username = ${user}`.pipe(Effect.asVoid, guard("unban"))

  const listBans = (channel: string) =>
    sql<{ readonly username: string }>`SELECT username FROM bans WHERE channel = ${channel} ORDER BY username`.pipe(
      Effect.map((rows) => rows.map((row) => row.username)),
      guard("listBans")
    )

  const allBans = sql<{ readonly channel: string; readonly username: string }>`
    SELECT channel, username FROM bans ORDER BY channel, username`.pipe(
    Effect.map((rows) => rows.map((row) => ({ channel: row.channel, user: row.username }))),
    guard("allBans")
  )

  // invites ----------------------------------------------------------------------------------------

  const createInvite = (row: InviteRow) =>
    sql`INSERT INTO invites (token, channel, uses_remaining, expires_at, created_by)
        VALUES (${row.token}, ${row.channel}, ${row.uses_remaining}, ${row.expires_at}, ${row.created_by})`.pipe(
      Effect.asVoid,
      guard("createInvite")
    )

  const inviteColumns = sql.literal("token, channel, uses_remaining, expires_at, created_by")

  const getInvite = (token: string) =>
    sql`SELECT ${inviteColumns} FROM invites WHERE token = ${token}`.pipe(
      Effect.flatMap(decodeInvites),
      Effect.map((rows) => Option.fromNullable(rows[0])),
      guard("getInvite")
    )

  const deleteInvite = (token: string) =>
    sql`DELETE FROM invites WHERE token = ${token}`.pipe(Effect.asVoid, guard("deleteInvite"))

  const listInvites = (channel: string) =>
    sql`SELECT ${inviteColumns} FROM invites WHERE channel = ${channel} ORDER BY token`.pipe(
      Effect.flatMap(decodeInvites),
      guard("listInvites")
    )

  // Single use under concurrency: the decrement is a conditional UPDATE, and concurrent redeemers
  // queue on the invite's row lock; once the holder commits, the next re-checks the row as
  // committed (spent, or deleted) and gets no row back.
  const redeemInvite = (input: {
    readonly token: string
    readonly channel: string
    readonly user: string
    readonly nowMs: number
  }) => tx(redeemIn(sql, insertMember, input)).pipe(guard("redeemInvite"))

  // messages -----------------------------------------------------------------------------------------

  // Appends go through one writer fiber: everything queued while it waited for the last commit (and
  // during one more turn of the event loop) is committed with one statement (group commit), then
  // each append is resolved in queue order, so appends to one channel resolve in seq order (D-5:
  // only after the COMMIT returned). A batch that fails on its data is retried one append at a time
  // (only the offending append is refused); any other failure refuses the whole batch.
  const queue = yield* Queue.unbounded<PendingAppend>()

  const commit = (batch: ReadonlyArray<PendingAppend>) =>
    query(APPEND_BATCH, batchParams(batch)).pipe(
      Effect.timeoutFail({ duration: OPERATION_TIMEOUT, onTimeout: () => "timed out" }),
      Effect.map((rows) => assignSeqs(batch, rows)),
      Effect.either
    )

  const resolve = (item: PendingAppend, seq: number | undefined) =>
    Effect.suspend(() => {
      if (seq === undefined) {
        refuse(item, "channel does not exist")
        return Effect.void
      }
      settle(item, Exit.succeed(seq))
      return Effect.void
    })

  const writeBatch = (batch: ReadonlyArray<PendingAppend>): Effect.Effect<void> =>
    Effect.gen(function*() {
      const result = yield* commit(batch)
      if (Either.isRight(result) && result.right !== undefined) {
        const seqs = result.right
        for (let i = 0; i < batch.length; i++) yield* resolve(batch[i]!, seqs[i])
        return
      }
      const cause = Either.isLeft(result) ? result.left : "unexpected rows returned"
      if (batch.length === 1 || !isRowFailure(cause)) {
        for (const item of batch) refuse(item, cause)
        return
      }
      for (const item of batch) {
        const solo = yield* commit([item])
        if (Either.isRight(solo) && solo.right !== undefined) yield* resolve(item, solo.right[0])
        else refuse(item, Either.isLeft(solo) ? solo.left : "unexpected rows returned")
      }
    }).pipe(
      // never leave an append hanging: anything unexpected refuses whatever is still unresolved
      Effect.catchAllCause((cause) =>
        Effect.sync(() => {
          for (const item of batch) refuse(item, Cause.squash(cause))
        })
      )
    )

  // appends offered after close are refused at once
  yield* runWriter(queue, MAX_BATCH, writeBatch, (rest) => {
    for (const item of rest) refuse(item, "store closed")
  })

  // The append is queued when the effect starts (earlier starts get lower seqs) and resolved by the
  // writer; interrupting the wait does not withdraw it.
  const appendMessage = (message: NewMessage) =>
    Effect.flatMap(
      Effect.sync(() => {
        const item = pendingAppend(message, undefined)
        if (!Queue.unsafeOffer(queue, item)) refuse(item, "store closed")
        return item
      }),
      awaitAppend
    )

  const messageExists = (channel: string, seq: number) =>
    query(MESSAGE_EXISTS, [channel, seq]).pipe(Effect.map((rows) => rows.length > 0), guard("messageExists"))

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
      (row) => {
        const seq = integer(row.seq)
        return typeof seq === "number" ? seq : undefined
      },
      (after, minTs, want) =>
        Effect.map(query(READ_SINCE_SIZES, [input.channel, after, minTs, want]), (rows) => rows.map((r) => Number(r.n)))
    ).pipe(guard("readSince"))

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
      (row) => {
        const seq = integer(row.seq)
        return typeof seq === "number" ? seq : undefined
      },
      (before, minTs, want) =>
        Effect.map(
          query(READ_BEFORE_SIZES, [input.channel, before, minTs, want]),
          (rows) => rows.map((r) => Number(r.n))
        )
    ).pipe(guard("readBefore"))

  const purgeOlderThan = (cutoffMs: number) =>
    sql`DELETE FROM messages WHERE ts_ms < ${cutoffMs}`.raw.pipe(
      Effect.map((result) => {
        const count = (result as { readonly rowCount?: unknown }).rowCount
        return typeof count === "number" ? count : 0
      }),
      guard("purgeOlderThan")
    )

  const port: StoreShape = {
    instanceId: Effect.succeed(instanceId),
    status: query("SELECT 1 AS ok", []).pipe(
      guard("status"),
      Effect.as(true),
      Effect.orElseSucceed(() => false),
      Effect.map((ok): StoreStatus => ({ kind: "postgres", ok }))
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
    readBefore,
    purgeOlderThan
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
