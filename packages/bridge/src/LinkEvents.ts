/**
 * What the links report to the dispatcher (SPEC §4.10.4, §4.11, D-27): a link came up (announce
 * the reconnect, re-subscribe every joined channel in the background), went down (flush held
 * deliveries, announce or rename per the flapping breaker), turned out to be a duplicate, or
 * received an unsolicited frame.
 *
 * @since 0.1.0
 */
import { Errors, type Frames, Limits } from "@conclave/protocol"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import type { Catchup } from "./Catchup.js"
import type { Delivery } from "./Delivery.js"
import * as Injection from "./Injection.js"
import type { Links, LiveConnection } from "./Links.js"
import * as LoopGuard from "./LoopGuard.js"
import type { Policy } from "./Policy.js"
import type { Watermarks } from "./Watermarks.js"

/** @since 0.1.0 @category models */
export interface LinkEvents {
  readonly up: (server: string, connection: LiveConnection, dialedHandle: string) => Effect.Effect<void>
  readonly down: (server: string, cause?: "too_large") => Effect.Effect<void>
  readonly duplicate: (server: string, canonical: string) => Effect.Effect<void>
  readonly inbound: (server: string, frame: Frames.ServerFrame) => Effect.Effect<void>
  /** Before the first dial: rename a defaulted handle that a live session already holds (once). */
  readonly avoid: (server: string, taken: ReadonlySet<string>) => Effect.Effect<void>
}

/** @since 0.1.0 @category models */
export interface Dependencies {
  readonly links: Links
  readonly policy: Policy
  readonly guard: LoopGuard.LoopGuard
  readonly watermarks: Watermarks
  readonly delivery: Delivery
  readonly catchup: Catchup
  /** Owns the re-subscribe fibers. */
  readonly fibers: FiberSet.FiberSet<void, never>
  readonly announce: Effect.Effect<void>
  /** A console answered a relayed permission request (SPEC §4.5.3). */
  readonly verdict: (server: string, frame: Frames.ServerFrameOf<"permission_verdict">) => Effect.Effect<void>
}

/** @since 0.1.0 @category constructors */
export const make = (deps: Dependencies): LinkEvents => {
  const { catchup, delivery, links } = deps

  const up = (server: string, connection: LiveConnection, dialedHandle: string) =>
    Effect.gen(function*() {
      const changed = yield* links.up(server, connection, dialedHandle)
      if (Option.isNone(changed)) return
      const { generation, link, wasDown } = changed.value
      if (wasDown) yield* delivery.notice(Injection.Notices.reconnected(server))
      for (const channel of link.joined) {
        yield* FiberSet.run(deps.fibers, catchup.resubscribe(server, channel, generation))
      }
      yield* deps.announce
    })

  const down = (server: string, cause?: "too_large") =>
    Effect.gen(function*() {
      const outcome = yield* links.down(server, cause)
      if (Option.isNone(outcome)) return
      yield* catchup.flush(server)
      const o = outcome.value
      switch (o._tag) {
        case "Disconnected":
          yield* delivery.notice(Injection.Notices.disconnected(server))
          break
        case "HandleConflict":
          yield* delivery.notice(Injection.Notices.handleConflict(server, o.handle))
          break
        case "Renamed":
          yield* Effect.logWarning("handle collision; renaming").pipe(
            Effect.annotateLogs({ server, from: o.from, to: o.to })
          )
          yield* delivery.notice(Injection.Notices.handleRenamed(server, o.from, o.to))
          break
        case "Quiet":
          break
      }
      yield* deps.announce
    })

  const duplicate = (server: string, canonical: string) =>
    Effect.gen(function*() {
      if (!(yield* links.duplicate(server, canonical))) return
      yield* delivery.notice(Injection.Notices.duplicate(server, canonical))
      yield* deps.announce
    })

  const unsubscribed = (server: string, frame: Frames.ServerFrameOf<"unsubscribed">) =>
    Effect.gen(function*() {
      const { channel, new_name, reason } = frame
      if (reason === "renamed" && new_name !== null) {
        yield* links.renamed(server, channel, new_name)
        const from = LoopGuard.channelKey(server, channel)
        const to = LoopGuard.channelKey(server, new_name)
        yield* deps.watermarks.move(from, to)
        yield* deps.guard.move(from, to)
        yield* deps.policy.moveOverride(server, channel, new_name)
      } else {
        yield* links.left(server, channel)
      }
      yield* delivery.notice(Injection.Notices.unsubscribed(server, channel, reason, new_name))
      yield* deps.announce
    })

  const inbound = (server: string, frame: Frames.ServerFrame) =>
    Effect.gen(function*() {
      const link = yield* links.get(server)
      if (Option.isNone(link) || link.value.disabled !== undefined) return
      switch (frame.type) {
        case "channel_msg":
          return yield* delivery.channel(server, frame, false)
        case "whisper":
          return yield* delivery.whisper(server, frame)
        case "server_info":
          yield* links.setAdmin(server, frame.admin)
          return yield* deps.announce
        case "error":
          // While the breaker is quiet, kill reasons of a supersede fight would repeat on every flap.
          if (link.value.rapidDrops >= Limits.RAPID_DROP_THRESHOLD) {
            return yield* Effect.logWarning("server error while the link is flapping").pipe(
              Effect.annotateLogs({ server, error: Errors.render(frame.error) })
            )
          }
          return yield* delivery.notice(Injection.Notices.serverError(server, Errors.render(frame.error)))
        case "unsubscribed":
          return yield* unsubscribed(server, frame)
        case "permission_verdict":
          return yield* deps.verdict(server, frame)
        default:
          return
      }
    })

  const avoid = (server: string, taken: ReadonlySet<string>) =>
    Effect.gen(function*() {
      const renamed = yield* links.avoid(taken)
      if (Option.isNone(renamed)) return
      const { from, to } = renamed.value
      yield* Effect.logWarning("handle in use by a live session; connecting under a new one").pipe(
        Effect.annotateLogs({ server, from, to })
      )
      yield* delivery.notice(Injection.Notices.handleRenamed(server, from, to))
    })

  return { up, down, duplicate, inbound, avoid }
}
