/**
 * What the SQLite and PostgreSQL stores share: the row schemas and their fast checks, the decoder
 * of a stored message row, the stored payload JSON, `readSince`'s paging loop (and `readBefore`'s), the group-commit
 * writer loop, invite expiry and the error helpers.
 *
 * @internal
 */
import { Frames, Limits, Names } from "@conclave/protocol"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { type HistoryPage, type Redemption, type Since, StoreError } from "../Store.js"

// ---------------------------------------------------------------------------------------------
// Row schemas
// ---------------------------------------------------------------------------------------------

export const UserRowSchema = Schema.Struct({ username: Schema.String, created_at: Schema.String })
export const MachineRowSchema = Schema.Struct({
  user: Schema.String,
  name: Schema.String,
  pubkey: Schema.String,
  added_at: Schema.String
})
export const ChannelRowSchema = Schema.Struct({
  name: Schema.String,
  visibility: Frames.Visibility,
  created_by: Schema.String,
  created_at: Schema.String
})
export const InviteRowSchema = Schema.Struct({
  token: Schema.String,
  channel: Schema.String,
  uses_remaining: Schema.NullOr(Schema.Number),
  expires_at: Schema.NullOr(Schema.String),
  created_by: Schema.String
})

/** Decode every row with `schema` (failing with its ParseError). */
export const decodeAll = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknown(Schema.Array(schema))
  return (rows: ReadonlyArray<unknown>) => decode(rows)
}

// Hand-written checks for the common row of a hot read: the value the row schema decodes, or
// undefined to let the schema decide (and fail with its ParseError).
export const fastMachine = (row: unknown): typeof MachineRowSchema.Type | undefined => {
  if (typeof row !== "object" || row === null) return undefined
  const { added_at, name, pubkey, user } = row as Readonly<Record<string, unknown>>
  return typeof user === "string" && typeof name === "string" && typeof pubkey === "string" &&
      typeof added_at === "string"
    ? { user, name, pubkey, added_at }
    : undefined
}

export const fastChannel = (row: unknown): typeof ChannelRowSchema.Type | undefined => {
  if (typeof row !== "object" || row === null) return undefined
  const { created_at, created_by, name, visibility } = row as Readonly<Record<string, unknown>>
  return typeof name === "string" &&
      (visibility === "public" || visibility === "unlisted" || visibility === "private") &&
      typeof created_by === "string" && typeof created_at === "string"
    ? { name, visibility, created_by, created_at }
    : undefined
}

/** The first row of a point lookup: the fast check, else the row schema. */
export const firstRow = <A, E>(
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

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/** The stored JSON of a payload: exactly the fields of its variant, as the Schema encoding yields. */
export const payloadJson = (payload: Frames.Payload): string =>
  JSON.stringify(
    payload.kind === "plain"
      ? { kind: payload.kind, text: payload.text }
      : { kind: payload.kind, ciphertext: payload.ciphertext, key_id: payload.key_id }
  )

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
  seq: Frames.NonNegativeInt,
  sender: StoredSender,
  payload: Schema.parseJson(Frames.Payload),
  ts_ms: Frames.Int,
  origin: Frames.Origin,
  reply_to: Schema.NullOr(Frames.NonNegativeInt)
})
const decodeStoredMessage = Schema.decodeUnknownEither(StoredMessage)

/** The columns of a stored message, its integers already numbers where the driver allows. */
export interface MessageColumns {
  readonly seq: unknown
  readonly sender: unknown
  readonly payload: unknown
  readonly ts_ms: unknown
  readonly origin: unknown
  readonly reply_to: unknown
}

export const isInt = (u: unknown, min: number, max: number): u is number =>
  typeof u === "number" && Number.isInteger(u) && u >= min && u <= max

// The common row in one pass without Schema: a plain-text payload and well-formed columns. The
// result equals what `StoredMessage` decodes; anything else goes through `StoredMessage` (which
// also decides which rows are skipped).
const fastDecode = (row: MessageColumns): Frames.HistoryMessage | undefined => {
  const { origin, payload, reply_to, sender, seq, ts_ms } = row
  if (!isInt(seq, 0, Number.MAX_SAFE_INTEGER) || !isInt(ts_ms, -Limits.MAX_DATE_MS, Limits.MAX_DATE_MS)) {
    return undefined
  }
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
  return { seq, from: path, ts_ms, payload: { kind: "plain", text: p.text }, origin, reply_to }
}

/** A stored message row as a history message, or undefined when it does not decode (skipped). */
export const decodeMessage = (row: MessageColumns): Frames.HistoryMessage | undefined => {
  const fast = fastDecode(row)
  if (fast !== undefined) return fast
  const decoded = decodeStoredMessage(row)
  if (Either.isLeft(decoded)) return undefined
  const m = decoded.right
  return { seq: m.seq, from: m.sender, ts_ms: m.ts_ms, payload: m.payload, origin: m.origin, reply_to: m.reply_to }
}

/**
 * One page of `readSince`: rows after `after` (exclusive) with `ts_ms >= minTs`, at most `limit`
 * decodable ones, and whether there are more. `fetch` reads up to `want` rows in key order;
 * `decode` turns a row into a message (undefined: skipped); `key` is a row's key (undefined: stop).
 */
export const readSincePages = <Row, E>(
  input: { readonly since: Since; readonly cutoffMs: number; readonly limit: number; readonly maxBytes?: number },
  fetch: (after: number, minTs: number, want: number) => Effect.Effect<ReadonlyArray<Row>, E>,
  decode: (row: Row) => Frames.HistoryMessage | undefined,
  key: (row: Row) => number | undefined,
  sizes?: (after: number, minTs: number, want: number) => Effect.Effect<ReadonlyArray<number>, E>
): Effect.Effect<HistoryPage, E> =>
  Effect.gen(function*() {
    const limit = Math.max(0, Math.floor(input.limit))
    // one lower bound on ts_ms: the retention cutoff, and for `Ms` the smallest integer after `ms`
    const minTs = input.since._tag === "Ms"
      ? Math.max(input.cutoffMs, Math.floor(input.since.ms) + 1)
      : input.cutoffMs
    let after = input.since._tag === "Seq" ? input.since.seq : -1
    let budget = input.maxBytes
    const messages: Array<Frames.HistoryMessage> = []
    // Collect limit + 1 decodable rows (the extra one only proves `more`); undecodable rows are
    // skipped, so keep reading until enough decode or the channel runs out.
    while (true) {
      let want = limit + 1 - messages.length
      // Issue 22: with a byte budget, the payloads' sizes are read first (cheap: no payload is
      // loaded) and only the rows that fit are read — at least one per page — so one request
      // never makes the store read more than a page's worth of bytes.
      let cut = false
      if (budget !== undefined && sizes !== undefined) {
        const sized = yield* sizes(after, minTs, want)
        let fit = 0
        let total = 0
        for (const size of sized) {
          if ((fit > 0 || messages.length > 0) && total + size > budget) break
          total += size
          fit++
        }
        if (fit < sized.length) {
          want = fit
          cut = true
        }
        budget -= total
        if (want === 0) return { messages, more: true }
      }
      const rows = yield* fetch(after, minTs, want)
      for (const row of rows) {
        const message = decode(row)
        if (message !== undefined) messages.push(message)
      }
      if (cut) return { messages: messages.slice(0, limit), more: true }
      const last = rows[rows.length - 1]
      if (rows.length < want || messages.length > limit || last === undefined) break
      const lastKey = key(last)
      if (lastKey === undefined) break
      after = lastKey
    }
    const more = messages.length > limit
    const page: HistoryPage = { messages: more ? messages.slice(0, limit) : messages, more }
    return page
  })

/**
 * One page of `readBefore`: `readSincePages` walking the other way. `fetch` and `sizes` read rows
 * with a key below the cursor in descending key order, so the loop collects the newest rows first
 * (a byte cut keeps the newest) and moves its cursor down; the page is then put oldest first.
 */
export const readBeforePages = <Row, E>(
  input: { readonly beforeSeq: number; readonly cutoffMs: number; readonly limit: number; readonly maxBytes?: number },
  fetch: (before: number, minTs: number, want: number) => Effect.Effect<ReadonlyArray<Row>, E>,
  decode: (row: Row) => Frames.HistoryMessage | undefined,
  key: (row: Row) => number | undefined,
  sizes?: (before: number, minTs: number, want: number) => Effect.Effect<ReadonlyArray<number>, E>
): Effect.Effect<HistoryPage, E> =>
  Effect.map(
    readSincePages(
      {
        since: { _tag: "Seq", seq: input.beforeSeq },
        cutoffMs: input.cutoffMs,
        limit: input.limit,
        ...(input.maxBytes === undefined ? {} : { maxBytes: input.maxBytes })
      },
      fetch,
      decode,
      key,
      sizes
    ),
    (page): HistoryPage => ({ messages: page.messages.slice().reverse(), more: page.more })
  )

// ---------------------------------------------------------------------------------------------
// Group commit
// ---------------------------------------------------------------------------------------------

// Resume after the current turn of the event loop: appends queued by I/O callbacks already due join
// the batch. A resumption point, not a timer: cleared when the writer is interrupted.
export const nextTurn: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/**
 * The writer fiber of a group commit, in the scope: wait for the first append, let the event loop
 * finish its turn (socket reads already due queue their appends meanwhile), then hand everything
 * queued by then (at most `maxBatch`) to `writeBatch`: the group-commit window is one loop turn, no
 * timer. Once taken, a batch is always written (the rest of the round is uninterruptible). On close
 * the writer is interrupted first (only while it waits for work), then whatever is still queued
 * goes to `refuseRest`, and the queue is shut down.
 */
export const runWriter = <A>(
  queue: Queue.Queue<A>,
  maxBatch: number,
  writeBatch: (batch: ReadonlyArray<A>) => Effect.Effect<void>,
  refuseRest: (rest: ReadonlyArray<A>) => void
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.zipRight(
    Effect.addFinalizer(() =>
      Effect.flatMap(Queue.takeAll(queue), (rest) => Effect.sync(() => refuseRest(Array.from(rest)))).pipe(
        Effect.zipRight(Queue.shutdown(queue))
      )
    ),
    Effect.uninterruptibleMask((restore) =>
      restore(Queue.take(queue)).pipe(
        Effect.zipLeft(nextTurn),
        Effect.flatMap((first) =>
          Effect.flatMap(Queue.takeUpTo(queue, maxBatch - 1), (rest) => writeBatch([first, ...rest]))
        )
      )
    ).pipe(
      Effect.forever,
      // interruptible even when the layer is built inside an uninterruptible region (e.g. an acquire)
      Effect.interruptible,
      Effect.forkScoped,
      Effect.asVoid
    )
  )

// ---------------------------------------------------------------------------------------------
// Expiry (SPEC §3.13): RFC 3339, expired iff expires_at <= now; unparseable counts as expired
// ---------------------------------------------------------------------------------------------

const RFC3339 = /^(?:\d{4}|[+-]\d{6})-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/

const expiryMs = (value: string): number | undefined => {
  if (!RFC3339.test(value)) return undefined
  const ms = Date.parse(value.replace(/[t ]/, "T").replace(/z$/, "Z"))
  return Number.isFinite(ms) ? ms : undefined
}

export const isExpired = (expiresAt: string, nowMs: number): boolean => {
  const ms = expiryMs(expiresAt)
  return ms === undefined || ms <= nowMs
}

/**
 * Redeem an invite, to run inside the caller's transaction: an unknown token, another channel's, an
 * expired one (deleted) or a spent one is `invalid`; else one use is taken (the invite deleted with
 * its last) and `user` becomes a member by `insertMember`.
 */
export const redeemInvite = (
  sql: SqlClient.SqlClient,
  insertMember: (channel: string, user: string) => Effect.Effect<unknown, SqlError>,
  input: { readonly token: string; readonly channel: string; readonly user: string; readonly nowMs: number }
): Effect.Effect<Redemption, SqlError> =>
  Effect.gen(function*() {
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
  })

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

export const isSqlError = (u: unknown): u is SqlError =>
  typeof u === "object" && u !== null && (u as { readonly _tag?: unknown })._tag === "SqlError"

export const toStoreError = (operation: string) => (cause: unknown): StoreError => new StoreError({ operation, cause })

/** A client layer's failure to open as a `StoreError` with operation `open` (interruption stays). */
export const openFailure = <E>(cause: Cause.Cause<E>): Cause.Cause<StoreError> =>
  Cause.isInterruptedOnly(cause)
    ? Cause.map(cause, toStoreError("open"))
    : Cause.fail(new StoreError({ operation: "open", cause: Cause.squash(cause) }))
