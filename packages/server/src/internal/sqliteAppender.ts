/**
 * The SQLite store's group-commit writer: appends are queued and one writer fiber inserts
 * everything queued meanwhile in one transaction, with chunked multi-row INSERTs.
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import { type NewMessage, StoreError } from "../Store.js"
import { INSERT_CHUNK, INSERT_CHUNKS, LAST_SEQ, SET_LAST_SEQ } from "./sqliteRows.js"
import { payloadJson, runWriter } from "./storeRows.js"

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

// The last seq of a row of `LAST_SEQ` (0 for a channel with no counter yet); undefined if malformed.
const lastSeqOf = (rows: ReadonlyArray<unknown>): number | undefined => {
  if (rows.length === 0) return 0
  const row = rows[0]
  const last: unknown = typeof row === "object" && row !== null
    ? (row as { readonly last_seq?: unknown }).last_seq
    : undefined
  return typeof last === "number" && Number.isSafeInteger(last) && last >= 0 ? last : undefined
}

const refuseAll = (batch: ReadonlyArray<PendingAppend>, cause: unknown) =>
  Effect.sync(() => {
    for (const item of batch) refuse(item, cause)
  })

/**
 * `appendMessage` over `sql`, with its writer fiber in the scope. Appends go through one writer
 * fiber that owns the connection for a whole batch: everything queued while it worked is inserted
 * in one transaction (group commit), then the appends are resolved in seq order, each only once
 * COMMIT returned (D-5), and `markCommitted` is called. An insert that fails refuses that post
 * alone (the batch is retried without it, see `commitBatch`); a failed BEGIN or COMMIT refuses
 * every post of the batch. No Schema, no span, no statement compilation on this path.
 */
export const makeAppender = (options: {
  readonly sql: SqlClient.SqlClient
  readonly maxBatch: number
  readonly markCommitted: () => void
}): Effect.Effect<(message: NewMessage) => Effect.Effect<number, StoreError>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { markCommitted, maxBatch, sql } = options
    const queue = yield* Queue.unbounded<PendingAppend>()

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
          // Each row's seq comes from its channel's counter (D-42), read once per channel per attempt
          // and written back before COMMIT, all inside this transaction.
          const seqs: Array<number> = []
          const counters = new Map<string, number>()
          let failed: { readonly from: number; readonly size: number; readonly cause: unknown } | undefined
          let i = 0
          while (i < pending.length) {
            const size = chunkSize(pending, i, solo)
            const params: Array<unknown> = []
            for (let k = i; k < i + size; k++) {
              const p = pending[k]!.params
              const channel = p[0] as string
              let last = counters.get(channel)
              if (last === undefined) {
                const read = yield* Effect.either(exec(LAST_SEQ, [channel]))
                last = Either.isRight(read) ? lastSeqOf(read.right) : undefined
                if (last === undefined) {
                  yield* Effect.ignore(exec("ROLLBACK", []))
                  yield* refuseAll(pending, Either.isLeft(read) ? read.left : "malformed channel_seq row")
                  return noneCommitted
                }
              }
              counters.set(channel, last + 1)
              seqs.push(last + 1)
              params.push(p[0], last + 1, p[1], p[2], p[3], p[4], p[5])
            }
            const result = yield* Effect.either(exec(INSERT_CHUNK[size]!, params))
            if (Either.isLeft(result)) {
              failed = { from: i, size, cause: result.left }
              break
            }
            i += size
          }
          if (failed === undefined) {
            for (const [channel, last] of counters) {
              const written = yield* Effect.either(exec(SET_LAST_SEQ, [channel, last]))
              if (Either.isLeft(written)) {
                yield* Effect.ignore(exec("ROLLBACK", []))
                yield* refuseAll(pending, written.left)
                return noneCommitted
              }
            }
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

    // appends offered after close are interrupted by the shut-down queue
    yield* runWriter(queue, maxBatch, writeBatch, (rest) => {
      for (const item of rest) refuse(item, "store closed")
    })

    // The append is queued when the effect starts (so earlier starts get lower seqs) and resolved by
    // the writer. Interrupting the wait only stops the wait: the append still commits or is refused.
    return (message: NewMessage) =>
      Effect.async<number, StoreError>((resume) => {
        const item = pendingAppend(message)
        item.waiter = resume
        if (!Queue.unsafeOffer(queue, item)) refuse(item, "store closed")
        return Effect.sync(() => {
          item.waiter = undefined
        })
      })
  })
