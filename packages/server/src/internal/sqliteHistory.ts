/**
 * The SQLite store's history reads and the retention purge (SPEC §3.17.3, D-18).
 *
 * @internal
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import type { Since } from "../Store.js"
import type { SqliteAccess } from "./sqliteChannels.js"
import {
  MESSAGE_EXISTS,
  messageColumns,
  type RawMessageRow,
  READ_BEFORE,
  READ_BEFORE_SIZES,
  READ_SINCE,
  READ_SINCE_SIZES
} from "./sqliteRows.js"
import { decodeMessage, readBeforePages, readSincePages, toStoreError } from "./storeRows.js"

/** `messageExists`, `readSince`, `readBefore` and `purgeOlderThan` over `access`. */
export const makeHistory = ({ query, sql, tx }: SqliteAccess) => {
  const messageExists = (channel: string, seq: number) =>
    query(MESSAGE_EXISTS, [seq, channel]).pipe(
      Effect.map((rows) => rows.length > 0),
      Effect.mapError(toStoreError("messageExists"))
    )

  /** One page statement and its sizes' twin, bound to a channel: (seq, min ts, rows wanted). */
  const statements = (rows: string, sizes: string, channel: string) => ({
    rows: (seq: number, minTs: number, want: number) =>
      query(rows, [channel, seq, minTs, want]) as unknown as Effect.Effect<ReadonlyArray<RawMessageRow>, SqlError>,
    sizes: (seq: number, minTs: number, want: number) =>
      Effect.map(
        query(sizes, [channel, seq, minTs, want]),
        (found) => found.map((r) => Number((r as { readonly n: unknown }).n))
      )
  })
  const decodeRow = (row: RawMessageRow) => decodeMessage(messageColumns(row))
  const seqOf = (row: RawMessageRow) => row.id

  const readSince = (input: {
    readonly channel: string
    readonly since: Since
    readonly cutoffMs: number
    readonly limit: number
    readonly maxBytes?: number
  }) => {
    const { rows, sizes } = statements(READ_SINCE, READ_SINCE_SIZES, input.channel)
    return readSincePages(input, rows, decodeRow, seqOf, sizes).pipe(Effect.mapError(toStoreError("readSince")))
  }

  const readBefore = (input: {
    readonly channel: string
    readonly beforeSeq: number
    readonly cutoffMs: number
    readonly limit: number
    readonly maxBytes?: number
  }) => {
    const { rows, sizes } = statements(READ_BEFORE, READ_BEFORE_SIZES, input.channel)
    return readBeforePages(input, rows, decodeRow, seqOf, sizes).pipe(Effect.mapError(toStoreError("readBefore")))
  }

  const purgeOlderThan = Effect.fnUntraced(function*(cutoffMs: number) {
    const result = yield* tx(sql`DELETE FROM messages WHERE ts_ms < ${cutoffMs}`.raw)
    const changes = (result as { readonly changes?: unknown }).changes
    return typeof changes === "number" ? changes : 0
  }, Effect.mapError(toStoreError("purgeOlderThan")))

  return { messageExists, readSince, readBefore, purgeOlderThan }
}
