/**
 * The `read_since` request (SPEC §3.13, D-18; issue 22, issue 17; scroll-back with `before_seq`):
 * a subscriber's page of a channel's retained history. Every page read passes the server-wide gate
 * (one begins per turn of the event loop, a bounded number under way); reads by seq of one channel
 * are shared by the requests that come while one is under way; the reply is capped in bytes.
 *
 * @internal
 */
import { Errors, type Frames } from "@conclave/protocol"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { SessionEntry } from "../Presence.js"
import type { ServerConfigShape } from "../ServerConfig.js"
import type { HistoryPage, Since, StoreError, StoreShape } from "../Store.js"
import { keepWithin, makeHistoryGate, makeSharedReads } from "./historyPages.js"
import { traced } from "./traced.js"

/** What `read_since` needs of the server. */
export interface HistoryDeps {
  readonly isSubscribed: (entry: SessionEntry, channel: string) => boolean
  readonly store: StoreShape
  readonly config: ServerConfigShape
  /** A storage failure as the request's refusal (logged). */
  readonly db: (operation: string, effect: Effect.Effect<HistoryPage, StoreError>) => Effect.Effect<
    HistoryPage,
    Errors.ProtocolFailure
  >
}

/** The `read_since` handler of a server, its gate and shared reads owned by the scope. */
export const makeReadSince = (
  { config, db, isSubscribed, store }: HistoryDeps
): Effect.Effect<
  (
    entry: SessionEntry,
    frame: Frames.ClientFrameOf<"read_since">
  ) => Effect.Effect<Frames.Reply, Errors.ProtocolFailure>,
  never,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const gate = yield* makeHistoryGate()
    const bounds = (channel: string, now: number) => ({
      channel,
      cutoffMs: now - Duration.toMillis(config.retention),
      limit: config.historyPageCap,
      maxBytes: config.historyPageMaxBytes
    })
    const readPage = (channel: string, since: Since) =>
      Effect.flatMap(
        Clock.currentTimeMillis,
        (now) => gate(db("read history", store.readSince({ ...bounds(channel, now), since })))
      )
    const readBeforePage = (channel: string, beforeSeq: number) =>
      Effect.flatMap(
        Clock.currentTimeMillis,
        (now) => gate(db("read history", store.readBefore({ ...bounds(channel, now), beforeSeq })))
      )
    const shared = yield* makeSharedReads((channel, seq) => readPage(channel, { _tag: "Seq", seq }))
    return (entry, frame) =>
      Effect.gen(function*() {
        const channel = frame.channel
        if (!isSubscribed(entry, channel)) {
          return yield* Effect.fail(
            new Errors.ProtocolFailure({ error: Errors.unauthorized(Errors.Messages.notAMember(channel)) })
          )
        }
        const page = yield* (frame.before_seq !== null
          ? readBeforePage(channel, frame.before_seq)
          : frame.since_seq !== null
          ? shared.read(channel, frame.since_seq)
          : readPage(channel, { _tag: "Ms", ms: frame.since_ms ?? 0 }))
        // `before_seq` pages backward (scroll-back): the newest page below it, still oldest first
        const kept = keepWithin(
          page.messages,
          config.historyPageMaxBytes,
          frame.before_seq !== null ? "newest" : "oldest"
        )
        return {
          type: "history",
          channel,
          messages: kept,
          more: page.more || kept.length < page.messages.length
        } satisfies Frames.Reply
      }).pipe(traced("read_since", () => ({ path: entry.key, channel: frame.channel })))
  })
