/**
 * History pages on the way out (issue 22, issue 17): the server-wide gate every `read_since` page
 * read passes, reads by seq shared per channel, and the byte cap on a page's encoding.
 *
 * @since 0.1.0
 */
import type { Frames } from "@conclave/protocol"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import type { HistoryPage } from "../Store.js"
import { nextTurn } from "./storeRows.js"

/**
 * History page reads under way at once, server-wide: each holds up to a page's bytes in memory and,
 * on PostgreSQL, one pooled connection (the rest of the pool stays for handshakes, joins and the
 * group commit).
 *
 * @since 0.1.0
 * @category constants
 */
export const HISTORY_READS_IN_FLIGHT = 8

/** Runs a page read through the gate. @since 0.1.0 @category models */
export type HistoryGate = <A, E, R>(read: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/**
 * The gate: at most one page read *begins* per turn of the event loop, and at most `inFlight` are
 * under way at once.
 *
 * A page costs up to a page's bytes to read and decode. A synchronous store (SQLite) does all of it
 * in the turn its read begins, so one beginning per turn keeps `/health` and the other sessions
 * served between pages however many requests come at once (issue 22). An asynchronous store
 * (PostgreSQL) only sends its queries in that turn: its reads overlap, up to `inFlight`, instead of
 * waiting for one another's round trips — which, with one read at a time, made the sessions of a
 * dead node (hundreds reading their gap at once on each survivor) queue for seconds (issue 17).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeHistoryGate = (inFlight: number = HISTORY_READS_IN_FLIGHT): Effect.Effect<HistoryGate> =>
  Effect.gen(function*() {
    const begins = yield* Effect.makeSemaphore(1)
    const underWay = yield* Effect.makeSemaphore(Math.max(1, Math.floor(inFlight)))
    const turn = begins.withPermits(1)(nextTurn)
    return <A, E, R>(read: Effect.Effect<A, E, R>) => underWay.withPermits(1)(Effect.zipRight(turn, read))
  })

interface Waiter<E> {
  /** The seq the request reads after (exclusive). */
  readonly after: number
  readonly done: Deferred.Deferred<HistoryPage, E>
}

/** What `makeSharedReads` returns. @since 0.1.0 @category models */
export interface SharedReads<E> {
  /** A page of `channel` after seq `after` (exclusive). */
  readonly read: (channel: string, after: number) => Effect.Effect<HistoryPage, E>
  /** How many requests for `channel` wait for the next read (0 with none under way). */
  readonly waiting: (channel: string) => number
}

/**
 * History reads by seq, shared per channel (issue 17): at most one read of a channel is under way;
 * the requests for that channel that come meanwhile wait for it to end and then share one read,
 * from the lowest seq among them, each answered with the rows after its own seq. When the sessions
 * of a dead node reconnect, hundreds of them ask for the same channel's last few rows at once: one
 * store read (two round trips on PostgreSQL) answers each batch of them instead of one per session.
 *
 * A shared page is a page: ordered by seq, gap-free after the asker's seq, `more` when the read's
 * cap (rows or bytes) cut it — so it may hold fewer rows than the cap, as a byte-capped page does.
 * A request whose seq is at or past the end of a cut page gets no empty `more` page: it is served
 * by the next read, which the lowest-seq requests left over go first into, so every request is
 * answered. A failed read fails every request that shared it. The reads run in fibers of the
 * scope's own; reads by time (`since_ms`) do not come here.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeSharedReads = <E>(
  read: (channel: string, after: number) => Effect.Effect<HistoryPage, E>
): Effect.Effect<SharedReads<E>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    // a channel is here while a read of it is under way, with the requests waiting for the next one
    const waiting = new Map<string, Array<Waiter<E>>>()

    const answer = (group: ReadonlyArray<Waiter<E>>, from: number, exit: Exit.Exit<HistoryPage, E>) => {
      const left: Array<Waiter<E>> = []
      for (const w of group) {
        if (Exit.isFailure(exit)) {
          Deferred.unsafeDone(w.done, exit)
          continue
        }
        const page = exit.value
        const own = w.after === from ? page.messages : page.messages.filter((m) => m.seq > w.after)
        if (own.length === 0 && page.more) left.push(w)
        else Deferred.unsafeDone(w.done, Exit.succeed({ messages: own, more: page.more }))
      }
      return left
    }

    const drain = (channel: string, first: Array<Waiter<E>>): Effect.Effect<void> => {
      let group = first
      const loop: Effect.Effect<void> = Effect.suspend(() => {
        if (group.length === 0) {
          waiting.delete(channel)
          return Effect.void
        }
        let from = group[0]!.after
        for (const w of group) from = Math.min(from, w.after)
        return Effect.flatMap(Effect.exit(read(channel, from)), (exit) => {
          const left = answer(group, from, exit)
          // those left over first (the lowest of them is answered by the next read), then the newcomers
          group = left.length > 0 ? left : (waiting.get(channel) ?? []).splice(0)
          return loop
        })
      })
      // interrupted (the server closes): nobody is left waiting for a read that will not come
      return Effect.onInterrupt(loop, () =>
        Effect.flatMap(Effect.fiberId, (fiberId) =>
          Effect.sync(() => {
            for (const w of [...group, ...(waiting.get(channel) ?? [])]) {
              Deferred.unsafeDone(w.done, Exit.interrupt(fiberId))
            }
            waiting.delete(channel)
          })))
    }

    const shared: SharedReads<E> = {
      read: (channel, after) =>
        Effect.flatMap(Deferred.make<HistoryPage, E>(), (done) => {
          const queue = waiting.get(channel)
          if (queue !== undefined) {
            queue.push({ after, done })
            return Deferred.await(done)
          }
          waiting.set(channel, [])
          return Effect.zipRight(Effect.forkIn(drain(channel, [{ after, done }]), scope), Deferred.await(done))
        }),
      waiting: (channel) => waiting.get(channel)?.length ?? 0
    }
    return shared
  })

/**
 * The longest run of `messages` whose encoding stays within `maxBytes` (at least one message, so
 * paging always moves on): a prefix when paging forward, a suffix — the newest rows, next to
 * `before_seq` — when paging back. A body's size is bounded from above (JSON escapes a UTF-16 unit
 * into at most 6 bytes) and only measured exactly when it is large.
 *
 * @since 0.1.0
 * @category history
 */
export const keepWithin = (
  messages: ReadonlyArray<Frames.HistoryMessage>,
  maxBytes: number,
  from: "oldest" | "newest" = "oldest"
): ReadonlyArray<Frames.HistoryMessage> => {
  let total = 0
  const n = messages.length
  for (let k = 0; k < n; k++) {
    const i = from === "oldest" ? k : n - 1 - k
    const payload = messages[i]!.payload
    const text = payload.kind === "plain" ? payload.text : payload.ciphertext
    total += 256 + (text.length <= 1024 ? text.length * 6 : Buffer.byteLength(JSON.stringify(text), "utf8"))
    if (total > maxBytes && k > 0) return from === "oldest" ? messages.slice(0, i) : messages.slice(i + 1)
  }
  return messages
}
