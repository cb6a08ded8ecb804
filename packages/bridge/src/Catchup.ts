/**
 * Re-join and catch up after a reconnect (SPEC §4.10.4, D-22): hold live deliveries back, read
 * what was missed since the watermark (or since the join), drop our own and the ones seen live,
 * cap the replay (leaving a gap that `catch_up` continues from), then deliver everything in seq
 * order. A page too large for this client (the link closes with 1009) is never asked for again:
 * the watermark moves past the message it starts with and a notice says which one (issue 22).
 *
 * @since 0.1.0
 */
import { History } from "@conclave/client"
import { type Frames, Limits, Names } from "@conclave/protocol"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import type { Delivery } from "./Delivery.js"
import * as Injection from "./Injection.js"
import type { Generation, Links } from "./Links.js"
import * as LoopGuard from "./LoopGuard.js"
import type { Watermarks } from "./Watermarks.js"

/** Pages read per channel after a reconnect. */
const MAX_PAGES = 20

/** @since 0.1.0 @category models */
export interface Catchup {
  readonly resubscribe: (url: string, channel: string, generation: Generation) => Effect.Effect<void>
  /** The link dropped: deliver what every unfinished catch-up on it held back. */
  readonly flush: (url: string) => Effect.Effect<void>
}

/** @since 0.1.0 @category models */
export interface Dependencies {
  readonly links: Links
  readonly watermarks: Watermarks
  readonly delivery: Delivery
  /** Re-announce the tool list if it changed. */
  readonly announce: Effect.Effect<void>
}

const historyToDelivery = (channel: string, m: Frames.HistoryMessage): Frames.ServerFrameOf<"channel_msg"> => ({
  type: "channel_msg",
  channel,
  from: m.from,
  payload: m.payload,
  seq: m.seq,
  origin: m.origin,
  reply_to: m.reply_to
})

/** @since 0.1.0 @category constructors */
export const make = (deps: Dependencies): Catchup => {
  const { delivery, links, watermarks } = deps

  const finish = (
    url: string,
    channel: string,
    from: number | undefined,
    rows: ReadonlyArray<Frames.HistoryMessage>,
    self: Names.SessionPath,
    olderThan: number | undefined = undefined
  ) =>
    Effect.gen(function*() {
      const key = LoopGuard.channelKey(url, channel)
      const buffered = yield* watermarks.endCatchup(key)
      const live = new Set(buffered.map((d) => d.seq))
      const missed = rows
        .filter((r) =>
          (from === undefined || r.seq > from) && (olderThan === undefined || r.ts_ms >= olderThan) &&
          !live.has(r.seq) && !Names.pathEquals(r.from, self)
        )
        .sort((a, b) => a.seq - b.seq)
      const skipped = Math.max(0, missed.length - Limits.RECONNECT_CATCHUP_CAP)
      if (skipped > 0) {
        yield* watermarks.setGap(key, missed[0]!.seq - 1)
        yield* delivery.notice(Injection.Notices.catchupSkipped(url, channel, skipped))
      }
      const shown = missed.slice(skipped).map((r) => ({ d: historyToDelivery(channel, r), catchup: true }))
      const all = [...shown, ...buffered.map((d) => ({ d, catchup: false }))].sort((a, b) => a.d.seq - b.d.seq)
      for (const { catchup, d } of all) yield* delivery.channel(url, d, catchup)
    })

  const resubscribe = (url: string, channel: string, generation: Generation) =>
    Effect.gen(function*() {
      const self = generation.connection.path
      const from = yield* watermarks.beginCatchup(LoopGuard.channelKey(url, channel))
      const joined = yield* Effect.either(links.requestOn(url, generation, { type: "join", channel, token: null }))
      if (Either.isLeft(joined)) {
        if (joined.left.rejected) {
          yield* links.left(url, channel)
          yield* delivery.notice(Injection.Notices.rejoinFailed(url, channel, joined.left.text))
          yield* deps.announce
        }
        return yield* finish(url, channel, from, [], self)
      }
      const key = LoopGuard.channelKey(url, channel)
      const joinedAt = yield* links.get(url).pipe(Effect.map(Option.flatMapNullable((l) => l.joinedAt.get(channel))))
      const start = from === undefined ? History.sinceMs(Option.getOrElse(joinedAt, () => 0)) : History.afterSeq(from)
      const closeCode = generation.connection.closeCode
      const { rows, tooLarge } = yield* History.collect(
        (frame) => links.requestOn(url, generation, frame),
        channel,
        start,
        closeCode === undefined ? { maxPages: MAX_PAGES } : { maxPages: MAX_PAGES, closeCode }
      )
      const olderThan = yield* watermarks.olderThan(key)
      yield* finish(url, channel, from, rows, self, olderThan)
      if (Option.isNone(tooLarge)) {
        // Read to the end (or to the page cap) without meeting it: nothing is looked for any more.
        if (olderThan !== undefined) yield* watermarks.setOlderThan(key, undefined)
        return
      }
      // The link is gone (1009); the next catch-up, after the reconnect, starts past the message.
      const skip = History.pastTooLarge(tooLarge.value.from)
      if (skip._tag === "Message") {
        yield* watermarks.raise(key, skip.seq)
      } else {
        yield* watermarks.raise(key, 0)
        yield* watermarks.setOlderThan(key, skip.olderThanMs)
      }
      yield* delivery.notice(
        Injection.Notices.tooLargeSkipped(
          url,
          channel,
          History.skippedText(channel, skip),
          skip._tag === "Message" ? skip.seq : undefined
        )
      )
    })

  const flush = (url: string) =>
    watermarks.endCatchupsWithPrefix(`${url}\u0000#`).pipe(
      Effect.flatMap((held) => Effect.forEach(held.flat(), (d) => delivery.channel(url, d, false), { discard: true }))
    )

  return { resubscribe, flush }
}
