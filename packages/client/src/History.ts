/**
 * The paged `read_since` loop (SPEC §2.5): follow `more` from a seq or time watermark, one page
 * after the other, each page starting after the last seq of the one before; and scroll-back with
 * `before_seq` (issue 18), each page ending below the first seq of the one after.
 *
 * A page over the client's own frame limit never arrives: the link closes with 1009, and asking for
 * the same page again would fail the same way, forever (issue 22). `pages` then fails with
 * `PageTooLarge`, and `pastTooLarge` says where a reader carries on: the server caps a page in
 * bytes but always sends the first row whole, so a page only grows past a client's limit through
 * the message it starts with, and seqs are gap-free per channel, so after seq `n` that is `n + 1`.
 *
 * @since 0.1.0
 */
import { type Frames, Limits } from "@conclave/protocol"
import * as Data from "effect/Data"
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
  /**
   * The link's close code once it has closed (`Connection.closeCode`): a request that fails on a
   * link closed with 1009 fails the read with `PageTooLarge` instead of its own error.
   */
  readonly closeCode?: Effect.Effect<number | undefined>
}

/** WebSocket close code 1009, "message too big". @since 0.1.0 @category constants */
export const TOO_BIG = 1009

/**
 * The page of `channel` starting at `from` is larger than this client accepts: the link closed
 * with 1009 while it was on its way. Asking for it again cannot succeed.
 *
 * @since 0.1.0
 * @category errors
 */
export class PageTooLarge extends Data.TaggedError("PageTooLarge")<{
  readonly channel: string
  readonly from: From
}> {
  override get message() {
    return `a history page of #${this.channel} is larger than this client accepts (${Limits.MAX_FRAME_BYTES_CEILING} bytes)`
  }
}

/**
 * Where a reader carries on after a page starting at `from` was too large.
 *
 * - After a seq `n`: the message skipped is `n + 1` (the page's first row; seqs are gap-free per
 *   channel), and the next read starts after it.
 * - At a time: which message it was is not known. The next read looks for it by seq from the start
 *   of the retained history, leaving out rows older than `olderThanMs` (what was not asked for);
 *   the page that then fails starts after a known seq.
 *
 * @since 0.1.0
 * @category models
 */
export type Skip =
  | { readonly _tag: "Message"; readonly seq: number; readonly next: From }
  | { readonly _tag: "Locate"; readonly olderThanMs: number; readonly next: From }

/** @since 0.1.0 @category constructors */
export const pastTooLarge = (from: From): Skip =>
  from.since_seq !== null
    ? { _tag: "Message", seq: from.since_seq + 1, next: afterSeq(from.since_seq + 1) }
    : { _tag: "Locate", olderThanMs: from.since_ms, next: afterSeq(0) }

/**
 * What a reader says about a skipped message: which one, why, and that no client can read it over
 * the protocol (every client stops at the protocol's 16 MiB frame ceiling).
 *
 * @since 0.1.0
 * @category rendering
 */
export const skippedText = (channel: string, skip: Skip): string =>
  skip._tag === "Message"
    ? `message #${skip.seq} of #${channel} is larger than this client accepts (${Limits.MAX_FRAME_BYTES_CEILING} bytes) and was skipped: no client can read it over the protocol (the server's operator can read it in the server's store; a lower \`serve --max-body-bytes\` keeps new ones readable); carrying on after it`
    : `a message of #${channel} posted since ${
      new Date(skip.olderThanMs).toISOString()
    } is larger than this client accepts (${Limits.MAX_FRAME_BYTES_CEILING} bytes): looking for it by seq to skip it`

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
): Stream.Stream<Page, E | Replies.UnexpectedReply | PageTooLarge> => {
  const maxPages = options.maxPages ?? Number.POSITIVE_INFINITY
  const closeCode = options.closeCode
  return Stream.paginateEffect(
    { from, page: 1 },
    (state): Effect.Effect<
      readonly [Page, Option.Option<{ readonly from: From; readonly page: number }>],
      E | Replies.UnexpectedReply | PageTooLarge
    > =>
      Replies.request(send, { type: "read_since", channel, before_seq: null, ...state.from }, "history").pipe(
        Effect.catchAll((error) =>
          closeCode === undefined
            ? Effect.fail(error)
            : Effect.flatMap(
              closeCode,
              (code): Effect.Effect<never, E | Replies.UnexpectedReply | PageTooLarge> =>
                code === TOO_BIG ? Effect.fail(new PageTooLarge({ channel, from: state.from })) : Effect.fail(error)
            )
        ),
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

/**
 * A `before_seq` above any channel's newest seq: `pageBefore(send, channel, NEWEST)` reads the
 * newest page.
 *
 * @since 0.1.0
 * @category constants
 */
export const NEWEST = Number.MAX_SAFE_INTEGER

/**
 * One page of scroll-back (issue 18): the newest messages of `channel` with a seq below
 * `beforeSeq`, oldest first; `more` while older ones remain (the next page is below its first row).
 *
 * @since 0.1.0
 * @category reading
 */
export const pageBefore = <E>(
  send: Replies.Requester<E>,
  channel: string,
  beforeSeq: number
): Effect.Effect<Page, E | Replies.UnexpectedReply> =>
  Replies.request(
    send,
    { type: "read_since", channel, since_seq: null, since_ms: null, before_seq: beforeSeq },
    "history"
  )

/**
 * The pages of `channel` going back from `beforeSeq` (each oldest first, the newest page first),
 * until a page says no `more`, comes back empty, or `maxPages` have been read.
 *
 * @since 0.1.0
 * @category reading
 */
export const pagesBefore = <E>(
  send: Replies.Requester<E>,
  channel: string,
  beforeSeq: number,
  options: { readonly maxPages?: number } = {}
): Stream.Stream<Page, E | Replies.UnexpectedReply> => {
  const maxPages = options.maxPages ?? Number.POSITIVE_INFINITY
  return Stream.paginateEffect(
    { before: beforeSeq, page: 1 },
    (state) =>
      Effect.map(pageBefore(send, channel, state.before), (page) => {
        const first = page.messages[0]
        const next = page.more && first !== undefined && state.page < maxPages
          ? Option.some({ before: first.seq, page: state.page + 1 })
          : Option.none()
        return [page, next] as const
      })
  )
}

/** Every message of the pages, collected; a failure ends the read with what came before it. @since 0.1.0 @category reading */
export const collectUntilFailure = <E>(
  send: Replies.Requester<E>,
  channel: string,
  from: From,
  options: PagesOptions = {}
): Effect.Effect<ReadonlyArray<Frames.HistoryMessage>> =>
  Effect.map(collect(send, channel, from, options), (read) => read.rows)

/** What `collect` read: the rows, and the page too large for this client that ended it, if one did. @since 0.1.0 @category models */
export interface Collected {
  readonly rows: ReadonlyArray<Frames.HistoryMessage>
  readonly tooLarge: Option.Option<PageTooLarge>
}

/**
 * Every message of the pages, collected; a failure ends the read with what came before it, and a
 * page too large for this client (given `closeCode`) is reported with them.
 *
 * @since 0.1.0
 * @category reading
 */
export const collect = <E>(
  send: Replies.Requester<E>,
  channel: string,
  from: From,
  options: PagesOptions = {}
): Effect.Effect<Collected> =>
  Effect.suspend(() => {
    const rows: Array<Frames.HistoryMessage> = []
    return pages(send, channel, from, options).pipe(
      Stream.runForEach((page) => Effect.sync(() => rows.push(...page.messages))),
      Effect.as(Option.none<PageTooLarge>()),
      Effect.catchAll((e) => Effect.succeed(e instanceof PageTooLarge ? Option.some(e) : Option.none())),
      Effect.map((tooLarge): Collected => ({ rows, tooLarge }))
    )
  })
