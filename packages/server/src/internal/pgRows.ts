/**
 * PostgreSQL specifics of the store's rows: integers as the driver returns them, the channel-list
 * row, the fixed statement texts of the hot reads, and how a failure maps onto a `StoreConflict`
 * (never the SQL text, never a parameter: only SQLSTATE, constraint and pg's own message).
 *
 * @internal
 */
import { Frames } from "@conclave/protocol"
import type { SqlError } from "@effect/sql/SqlError"
import * as Schema from "effect/Schema"
import { StoreConflict, StoreError } from "../Store.js"
import type { MessageColumns } from "./storeRows.js"

// ---------------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------------

/** `member` is PostgreSQL's boolean of `EXISTS`. */
export const ChannelInfoRowSchema = Schema.Struct({
  name: Schema.String,
  visibility: Frames.Visibility,
  member: Schema.Boolean
})

/** A row of `READ_SINCE` as the driver returns it (BIGINT columns may be strings). */
export type RawMessageRow = MessageColumns

/**
 * BIGINT columns arrive as decimal strings unless the client was told to parse them: a safe integer
 * either way (anything else is left as it is, for the decoder to refuse).
 */
export const integer = (u: unknown): unknown => {
  if (typeof u === "string" && /^-?\d{1,16}$/.test(u)) {
    const n = Number(u)
    return Number.isSafeInteger(n) ? n : u
  }
  return typeof u === "bigint" && u >= BigInt(Number.MIN_SAFE_INTEGER) && u <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(u)
    : u
}

/** The columns of a row with its integers as numbers where they are safe ones. */
export const messageColumns = (row: RawMessageRow): MessageColumns => ({
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

/** Issue 22: the payloads' sizes only (`octet_length` reads the stored length, not the value). */
export const READ_SINCE_SIZES = "SELECT octet_length(payload) AS n FROM messages " +
  "WHERE channel = $1 AND seq > $2 AND ts_ms >= $3 ORDER BY seq LIMIT $4"
export const READ_SINCE = "SELECT seq, sender, payload, ts_ms, origin, reply_to FROM messages " +
  "WHERE channel = $1 AND seq > $2 AND ts_ms >= $3 ORDER BY seq LIMIT $4"
// Scroll-back: the same rows below a seq, newest first (the (channel, seq) key read backwards).
export const READ_BEFORE_SIZES = "SELECT octet_length(payload) AS n FROM messages " +
  "WHERE channel = $1 AND seq < $2 AND ts_ms >= $3 ORDER BY seq DESC LIMIT $4"
export const READ_BEFORE = "SELECT seq, sender, payload, ts_ms, origin, reply_to FROM messages " +
  "WHERE channel = $1 AND seq < $2 AND ts_ms >= $3 ORDER BY seq DESC LIMIT $4"
export const MESSAGE_EXISTS = "SELECT 1 AS found FROM messages WHERE channel = $1 AND seq = $2"
export const FIND_MACHINE_BY_KEY = "SELECT username AS user, name, pubkey, added_at FROM machines WHERE pubkey = $1"
export const GET_CHANNEL = "SELECT name, visibility, created_by, created_at FROM channels WHERE name = $1"
export const IS_MEMBER = "SELECT 1 AS found FROM memberships WHERE channel = $1 AND username = $2"
export const USER_EXISTS = "SELECT 1 AS found FROM users WHERE username = $1"

// ---------------------------------------------------------------------------------------------
// Errors
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
export const toConflict =
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

/**
 * Whether a batch failed on its data (integrity, data exception, deadlock or serialization
 * failure): then it is retried one append at a time, so only the offending append is refused.
 * Anything else (the server unreachable, a connection lost) refuses the whole batch at once.
 */
export const isRowFailure = (error: unknown): boolean => {
  const code = pgField(error, "code")
  return code !== undefined && /^(22|23|40)[0-9A-Z]{3}$/.test(code)
}
