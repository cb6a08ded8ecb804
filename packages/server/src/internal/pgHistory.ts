/**
 * The PostgreSQL store's history reads and the retention purge (SPEC §3.17.3, D-18).
 *
 * @internal
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import type { Since } from "../Store.js"
import type { PgAccess } from "./pgAccess.js"
import {
  integer,
  MESSAGE_EXISTS,
  messageColumns,
  type RawMessageRow,
  READ_BEFORE,
  READ_BEFORE_SIZES,
  READ_SINCE,
  READ_SINCE_SIZES
} from "./pgRows.js"
import { decodeMessage, readBeforePages, readSincePages } from "./storeRows.js"

const seqOf = (row: RawMessageRow): number | undefined => {
  const seq = integer(row.seq)
  return typeof seq === "number" ? seq : undefined
}

/** `messageExists`, `readSince`, `readBefore` and `purgeOlderThan` over `access`. */
export const makeHistory = ({ guard, query, sql }: PgAccess) => {
  const messageExists = (channel: string, seq: number) =>
    query(MESSAGE_EXISTS, [channel, seq]).pipe(Effect.map((rows) => rows.length > 0), guard("messageExists"))

  /** One page statement and its sizes' twin, bound to a channel: (seq, min ts, rows wanted). */
  const statements = (rows: string, sizes: string, channel: string) => ({
    rows: (seq: number, minTs: number, want: number) =>
      query(rows, [channel, seq, minTs, want]) as unknown as Effect.Effect<ReadonlyArray<RawMessageRow>, SqlError>,
    sizes: (seq: number, minTs: number, want: number) =>
      Effect.map(query(sizes, [channel, seq, minTs, want]), (found) => found.map((r) => Number(r.n)))
  })
  const decodeRow = (row: RawMessageRow) => decodeMessage(messageColumns(row))

  const readSince = (input: {
    readonly channel: string
    readonly since: Since
    readonly cutoffMs: number
    readonly limit: number
    readonly maxBytes?: number
  }) => {
    const { rows, sizes } = statements(READ_SINCE, READ_SINCE_SIZES, input.channel)
    return readSincePages(input, rows, decodeRow, seqOf, sizes).pipe(guard("readSince"))
  }

  const readBefore = (input: {
    readonly channel: string
    readonly beforeSeq: number
    readonly cutoffMs: number
    readonly limit: number
    readonly maxBytes?: number
  }) => {
    const { rows, sizes } = statements(READ_BEFORE, READ_BEFORE_SIZES, input.channel)
    return readBeforePages(input, rows, decodeRow, seqOf, sizes).pipe(guard("readBefore"))
  }

  const purgeOlderThan = (cutoffMs: number) =>
    sql`DELETE FROM messages WHERE ts_ms < ${cutoffMs}`.raw.pipe(
      Effect.map((result) => {
        const count = (result as { readonly rowCount?: unknown }).rowCount
        return typeof count === "number" ? count : 0
      }),
      guard("purgeOlderThan")
    )

  return { messageExists, readSince, readBefore, purgeOlderThan }
}
