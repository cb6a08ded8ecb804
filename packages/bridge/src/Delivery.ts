/**
 * Inbound traffic toward the agent (SPEC §4.4, §4.5, D-12, D-23): seq dedupe, the loop guard,
 * the permission level, framing, the inbox ring and the sink, plus session notices.
 *
 * @since 0.1.0
 */
import { Permission } from "@conclave/client"
import { type Frames, Names } from "@conclave/protocol"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { Inbox } from "./Inbox.js"
import * as Injection from "./Injection.js"
import type { Links } from "./Links.js"
import * as LoopGuard from "./LoopGuard.js"
import type { Policy } from "./Policy.js"
import type { NotificationSink } from "./Ports.js"
import type { Delivery as ChannelDelivery, Watermarks } from "./Watermarks.js"

/** @since 0.1.0 @category models */
export interface Delivery {
  readonly channel: (server: string, d: ChannelDelivery, catchup: boolean) => Effect.Effect<void>
  readonly whisper: (server: string, w: Frames.ServerFrameOf<"whisper">) => Effect.Effect<void>
  /** A session notice: injected and kept in the inbox. */
  readonly notice: (n: Injection.ChannelNotification) => Effect.Effect<void>
  /** Any notification with its inbox line. */
  readonly inject: (n: Injection.ChannelNotification, inboxLine: string) => Effect.Effect<void>
}

/** @since 0.1.0 @category models */
export interface Dependencies {
  readonly links: Links
  readonly policy: Policy
  readonly guard: LoopGuard.LoopGuard
  readonly watermarks: Watermarks
  readonly inbox: Inbox
  readonly sink: NotificationSink["Type"]
}

const GUARD_NOTE = "(The loop guard has tripped here: it is delivered as notify; replies are refused until a human " +
  "posts or set_perm is called for this scope.)"

/** @since 0.1.0 @category constructors */
export const make = (deps: Dependencies): Delivery => {
  const { guard, inbox, links, policy, sink, watermarks } = deps

  const inject = (n: Injection.ChannelNotification, inboxLine: string) =>
    inbox.remember(inboxLine, n.content).pipe(Effect.zipRight(sink.inject(n)))

  const notice = (n: Injection.ChannelNotification) =>
    inject(n, `notice (${n.meta["kind"] ?? "notice"}): ${Injection.indentContinuation(n.content)}`)

  const guardNotices = (server: string, scope: string, transition: LoopGuard.Transition, humanDid: string) =>
    transition === "tripped"
      ? notice(Injection.Notices.loopTripped(server, scope, guard.limit))
      : transition === "reset"
      ? notice(Injection.Notices.loopReset(server, scope, humanDid))
      : Effect.void

  const isActive = (server: string) =>
    links.get(server).pipe(Effect.map(Option.exists((l) => l.disabled === undefined)))

  const channel = (server: string, d: ChannelDelivery, catchup: boolean): Effect.Effect<void> =>
    Effect.gen(function*() {
      if (!(yield* isActive(server))) return
      const key = LoopGuard.channelKey(server, d.channel)
      if ((yield* watermarks.admit(key, d, catchup)) !== "fresh") return
      const { transition, tripped } = yield* guard.observe(key, d.origin)
      const level = yield* policy.level(server, Permission.channel(d.channel))
      if (level === "mute") return
      const from = Names.renderPath(d.from)
      const body = Injection.bodyText(d.payload)
      const framed = Injection.frame(
        {
          kind: "channel",
          server,
          channel: d.channel,
          from,
          body,
          seq: d.seq,
          origin: d.origin,
          replyTo: d.reply_to,
          catchup
        },
        tripped ? "notify" : level,
        tripped ? GUARD_NOTE : undefined
      )
      yield* inject(framed, `#${d.channel} (${server}) ${from} [seq ${d.seq}]: ${Injection.indentContinuation(body)}`)
      yield* guardNotices(server, `#${d.channel}`, transition, "a human posted")
    })

  const whisper = (server: string, w: Frames.ServerFrameOf<"whisper">): Effect.Effect<void> =>
    Effect.gen(function*() {
      if (!(yield* isActive(server))) return
      const from = Names.renderPath(w.from)
      const key = LoopGuard.peerKey(server, from)
      const { transition, tripped } = yield* guard.observe(key, w.origin)
      const level = yield* policy.level(server, Permission.whisper)
      if (level === "mute") return
      const body = Injection.bodyText(w.payload)
      yield* inject(
        Injection.frame(
          { kind: "whisper", server, from, body, origin: w.origin },
          tripped ? "notify" : level,
          tripped ? GUARD_NOTE : undefined
        ),
        `whisper (${server}) ${from}: ${Injection.indentContinuation(body)}`
      )
      yield* guardNotices(server, `whispers with ${from}`, transition, "a human whispered")
    })

  return { channel, whisper, notice, inject }
}
