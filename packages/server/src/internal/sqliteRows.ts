/**
 * SQLite specifics of the store's rows: the channel-list row, the fixed statement texts of the hot
 * paths, and how a uniqueness violation maps onto a `StoreConflict`.
 *
 * @internal
 */
import { Frames } from "@conclave/protocol"
import type { SqlError } from "@effect/sql/SqlError"
import * as Schema from "effect/Schema"
import { StoreConflict, StoreError } from "../Store.js"
import type { MessageColumns } from "./storeRows.js"

/** `member` is SQLite's 0/1 of `EXISTS`. */
export const ChannelInfoRowSchema = Schema.Struct({
  name: Schema.String,
  visibility: Frames.Visibility,
  member: Schema.Number
})

/** A row of `READ_SINCE`: `id` is the message's seq (per channel). */
export interface RawMessageRow {
  readonly id: number
  readonly sender: unknown
  readonly payload: unknown
  readonly ts_ms: unknown
  readonly origin: unknown
  readonly reply_to: unknown
}

export const messageColumns = (row: RawMessageRow): MessageColumns => ({
  seq: row.id,
  sender: row.sender,
  payload: row.payload,
  ts_ms: row.ts_ms,
  origin: row.origin,
  reply_to: row.reply_to
})

// ---------------------------------------------------------------------------------------------
// Statements on the hot paths (fixed texts; parameters only)
// ---------------------------------------------------------------------------------------------

/**
 * Multi-row inserts of these sizes only (descending; the last is 1), so a batch of any length
 * needs at most this many distinct statement texts in the prepared-statement cache.
 */
export const INSERT_CHUNKS: ReadonlyArray<number> = [128, 32, 8, 4, 1]
export const INSERT_CHUNK: Record<number, string> = Object.fromEntries(
  INSERT_CHUNKS.map((n) => [
    n,
    "INSERT INTO messages (channel, seq, sender, payload, ts_ms, origin, reply_to) VALUES " +
    Array.from({ length: n }, () => "(?, ?, ?, ?, ?, ?, ?)").join(", ")
  ])
)
/** Issue 22: the payloads' sizes only (`octet_length` reads the record header, not the value). */
export const READ_SINCE_SIZES = "SELECT octet_length(payload) AS n FROM messages " +
  "WHERE channel = ? AND seq > ? AND ts_ms >= ? ORDER BY seq LIMIT ?"
export const READ_SINCE = "SELECT seq AS id, sender, payload, ts_ms, origin, reply_to FROM messages " +
  "WHERE channel = ? AND seq > ? AND ts_ms >= ? ORDER BY seq LIMIT ?"
// Scroll-back: the same rows below a seq, newest first (the (channel, seq) key read backwards).
export const READ_BEFORE_SIZES = "SELECT octet_length(payload) AS n FROM messages " +
  "WHERE channel = ? AND seq < ? AND ts_ms >= ? ORDER BY seq DESC LIMIT ?"
export const READ_BEFORE = "SELECT seq AS id, sender, payload, ts_ms, origin, reply_to FROM messages " +
  "WHERE channel = ? AND seq < ? AND ts_ms >= ? ORDER BY seq DESC LIMIT ?"
export const MESSAGE_EXISTS = "SELECT 1 AS found FROM messages WHERE seq = ? AND channel = ?"
/** A channel's seq counter (D-42). */
export const LAST_SEQ = "SELECT last_seq FROM channel_seq WHERE channel = ?"
export const SET_LAST_SEQ = "INSERT INTO channel_seq (channel, last_seq) VALUES (?, ?) " +
  "ON CONFLICT (channel) DO UPDATE SET last_seq = excluded.last_seq"
export const FIND_MACHINE_BY_KEY = "SELECT user, name, pubkey, added_at FROM machines WHERE pubkey = ?"
export const GET_CHANNEL = "SELECT name, visibility, created_by, created_at FROM channels WHERE name = ?"
export const IS_MEMBER = "SELECT 1 AS found FROM memberships WHERE channel = ? AND user = ?"
export const USER_EXISTS = "SELECT 1 AS found FROM users WHERE username = ?"

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
  "channels.name": "channel",
  "users.skeleton": "username",
  "machines.user, machines.skeleton": "machine",
  "machine_offers.user, machine_offers.name": "machine",
  "machine_offers.user, machine_offers.skeleton": "machine",
  "channels.skeleton": "channel"
}

/** Map a uniqueness violation onto the conflicting value the caller supplied; anything else is a StoreError. */
export const toConflict =
  (operation: string, values: Partial<Record<StoreConflict["what"], string>>) =>
  (error: SqlError): StoreError | StoreConflict => {
    const target = constraintTarget(error)
    const what = target === undefined ? undefined : conflictKinds[target]
    const value = what === undefined ? undefined : values[what]
    return what !== undefined && value !== undefined
      ? new StoreConflict({ what, value })
      : new StoreError({ operation, cause: error })
  }
