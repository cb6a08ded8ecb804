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
      seqOf,
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
      seqOf,
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

  return { messageExists, readSince, readBefore, purgeOlderThan }
}
