/**
 * The PostgreSQL store's group-commit writer: appends are queued and one writer fiber commits
 * everything queued meanwhile with one statement, numbering each channel's rows from its
 * `channel_seq` counter (D-42).
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import { type NewMessage, StoreError } from "../Store.js"
import { OPERATION_TIMEOUT, type PgAccess } from "./pgAccess.js"
import { integer, isRowFailure } from "./pgRows.js"
import { payloadJson, runWriter } from "./storeRows.js"

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

/**
 * `appendMessage` over `access`, its writer fiber in the scope (closing it refuses appends still
 * queued).
 *
 * Appends go through one writer fiber: everything queued while it waited for the last commit (and
 * during one more turn of the event loop) is committed with one statement (group commit), then
 * each append is resolved in queue order, so appends to one channel resolve in seq order (D-5:
 * only after the COMMIT returned). A batch that fails on its data is retried one append at a time
 * (only the offending append is refused); any other failure refuses the whole batch.
 */
export const makeAppender = (
  { query }: PgAccess,
  maxBatch: number
): Effect.Effect<(message: NewMessage) => Effect.Effect<number, StoreError>, never, Scope.Scope> =>
  Effect.gen(function*() {
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
    yield* runWriter(queue, maxBatch, writeBatch, (rest) => {
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
    return appendMessage
  })
