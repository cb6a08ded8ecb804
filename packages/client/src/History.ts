/**
 * The paged `read_since` loop (SPEC §2.5): follow `more` from a seq or time watermark, one page
 * after the other, each page starting after the last seq of the one before.
 *
 * @since 0.1.0
 */
import type { Frames } from "@conclave/protocol"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Replies from "./Replies.js"

/** Where a read starts: after a seq, or at a time. @since 0.1.0 @category models */
export type From =
  | { readonly since_seq: number; readonly since_ms: null }
  | { readonly since_seq: null; readonly since_ms: number }

/** @since 0.1.0 @category constructors */
export const afterSeq = (seq: number): From => ({ since_seq: seq, since_ms: null })

/** @since 0.1.0 @category constructors */
export const sinceMs = (ms: number): From => ({ since_seq: null, since_ms: ms })

/** One `history` reply. @since 0.1.0 @category models */
export type Page = Replies.ReplyOf<"history">

/** @since 0.1.0 @category models */
export interface PagesOptions {
  /** Stop after this many pages (default: no limit). */
  readonly maxPages?: number
}

/**
 * The pages of `channel` from `from`, until a page says no `more` or comes back empty.
 *
 * @since 0.1.0
 * @category reading
 */
export const pages = <E>(
  send: Replies.Requester<E>,
  channel: string,
  from: From,
  options: PagesOptions = {}
): Stream.Stream<Page, E | Replies.UnexpectedReply> => {
  const maxPages = options.maxPages ?? Number.POSITIVE_INFINITY
  return Stream.paginateEffect(
    { from, page: 1 },
    (state): Effect.Effect<
      readonly [Page, Option.Option<{ readonly from: From; readonly page: number }>],
      E | Replies.UnexpectedReply
    > =>
      Replies.request(send, { type: "read_since", channel, ...state.from }, "history").pipe(
        Effect.map((page) => {
          const last = page.messages[page.messages.length - 1]
          const next = page.more && last !== undefined && state.page < maxPages
            ? Option.some({ from: afterSeq(last.seq), page: state.page + 1 })
            : Option.none()
          return [page, next] as const
        })
      )
  )
}

/** Every message of the pages, collected; a failure ends the read with what came before it. @since 0.1.0 @category reading */
export const collectUntilFailure = <E>(
  send: Replies.Requester<E>,
  channel: string,
  from: From,
  options: PagesOptions = {}
): Effect.Effect<ReadonlyArray<Frames.HistoryMessage>> =>
  pages(send, channel, from, options).pipe(
    Stream.catchAll(() => Stream.empty),
    Stream.runFold([] as Array<Frames.HistoryMessage>, (rows, page) => {
      rows.push(...page.messages)
      return rows
    })
  )
