/**
 * The established session (SPEC §2.9, §3.3, DECISIONS D-2, D-5, D-8, D-11): the connection's fiber
 * reads the session's frames strictly in order — every frame ready in a turn before it waits again —
 * and answers each request with exactly one reply, in request order.
 *
 * Posts are pipelined: once a post's checks pass, its append is started in a child fiber and the
 * session goes on reading, so one group commit takes many of its posts; its ack waits for the
 * COMMIT (D-5) and then for the replies owed before it. Any other request waits until every owed
 * reply has left. At most `MAX_PIPELINED_POSTS` posts are in flight per session.
 *
 * @since 0.1.0
 */
import { Codec, Errors, type Frames, Validate } from "@conclave/protocol"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { Hub, SessionEntry } from "./Hub.js"
import { CloseCodes, type Link, logErrorFrame } from "./Link.js"
import type { Caller, Requests } from "./Requests.js"

/** Posts a session may have in flight before it waits for their acks (pipelining). @since 0.1.0 @category constants */
export const MAX_PIPELINED_POSTS = 64

/** What the established session runs on. @since 0.1.0 @category models */
export interface SessionInput {
  readonly link: Link
  readonly entry: SessionEntry
  readonly caller: Caller
  readonly hub: Hub
  readonly requests: Requests
  readonly maxFrameBytes: number
  readonly clock: Clock.Clock
  /** A `debug` line per frame (read once per server: what is recorded, never which code runs). */
  readonly debugOn: boolean
}

interface Slot {
  reply: Frames.Reply | undefined
}

/**
 * The session's replies in request order: posts in flight hold a slot each, filled when their ack
 * (or refusal) is known; replies leave from the front only.
 */
class Replies {
  private readonly slots: Array<Slot> = []
  private waiter: { readonly below: number; readonly resume: () => void } | undefined = undefined

  constructor(private readonly link: Link, private readonly hub: Hub, private readonly entry: SessionEntry) {}

  get owed(): number {
    return this.slots.length
  }

  /** Send a reply now; a full outbox drops the session as a slow consumer. */
  send(frame: Frames.ServerFrame): Effect.Effect<void> {
    return Effect.suspend(() => {
      const logged = frame.type === "error" ? logErrorFrame(frame.error) : Effect.void
      return this.link.send(Codec.encodeFrame(frame))
        ? logged
        : Effect.zipRight(logged, this.hub.kill(this.entry, Errors.KillReasons.slowConsumer))
    })
  }

  /** Hold the place of a reply not yet known. */
  owe(): Slot {
    const slot: Slot = { reply: undefined }
    this.slots.push(slot)
    return slot
  }

  /** The reply of `slot` is known: send every reply now ready at the front, in order. */
  settle(slot: Slot, reply: Frames.Reply): Effect.Effect<void> {
    return Effect.suspend(() => {
      slot.reply = reply
      const ready: Array<Frames.Reply> = []
      while (this.slots.length > 0 && this.slots[0]!.reply !== undefined) ready.push(this.slots.shift()!.reply!)
      const waiter = this.waiter
      if (waiter !== undefined && this.slots.length < waiter.below) {
        this.waiter = undefined
        waiter.resume()
      }
      return ready.length === 1 ? this.send(ready[0]!) : Effect.forEach(ready, (r) => this.send(r), { discard: true })
    })
  }

  /** Wait until fewer than `below` replies are owed. */
  awaitBelow(below: number): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      if (this.slots.length < below) return resume(Effect.void)
      this.waiter = { below, resume: () => resume(Effect.void) }
      return Effect.sync(() => {
        this.waiter = undefined
      })
    })
  }
}

/**
 * Serve an established session until its socket closes, it is force-dropped, or it sends a frame
 * that is not JSON of a known request (D-8: answered, then closed). Returns when the session is over;
 * the caller detaches it from presence.
 *
 * @since 0.1.0
 * @category sessions
 */
export const serve = (input: SessionInput): Effect.Effect<void> => {
  const { caller, clock, debugOn, entry, hub, link, maxFrameBytes, requests } = input
  const replies = new Replies(link, hub, entry)
  const drained = replies.awaitBelow(1)

  const startPost = (post: Frames.ClientFrameOf<"channel_msg">) =>
    Effect.gen(function*() {
      if (replies.owed >= MAX_PIPELINED_POSTS) yield* replies.awaitBelow(MAX_PIPELINED_POSTS)
      const slot = replies.owe()
      const ack = yield* requests.beginPost(caller, post)
      // Uninterruptible: a post whose append was queued is fanned out and answered even if the
      // session ends meanwhile (the session's end waits for it).
      yield* Effect.fork(Effect.uninterruptible(Effect.flatMap(ack, (reply) => replies.settle(slot, reply))))
    })

  /** Handle one frame; true when the session must end (a malformed frame was answered, D-8). */
  const handle = (raw: Codec.RawMessage) =>
    Effect.gen(function*() {
      entry.lastSeen = clock.unsafeCurrentTimeMillis()
      const decoded = Codec.decodeClientFrame(raw, maxFrameBytes)
      if (Either.isLeft(decoded)) {
        yield* drained
        const { frameType, requestId } = decoded.left
        if (frameType !== undefined && Codec.isKnownType(frameType) && !Codec.isClientFrameType(frameType)) {
          // A server→client kind from a client: refused, but the session stays (SPEC §2.9).
          yield* replies.send({ type: "error", error: Errors.malformed(Errors.Messages.unexpectedFrame) })
          return false
        }
        // D-8 / G-26: say why, then close. A request kind that carried a usable id gets it back (D-2).
        const id = frameType !== undefined && Codec.isClientFrameType(frameType) ? requestId : undefined
        const error = Errors.malformed(decoded.left.detail)
        yield* link.finish(
          id === undefined ? { type: "error", error } : { type: "error", id, error },
          CloseCodes.policy
        )
        return true
      }
      const frame = decoded.right
      if (debugOn) {
        yield* Effect.logDebug("frame").pipe(
          Effect.annotateLogs({ kind: frame.type === "admin" ? frame.op.kind : frame.type })
        )
      }
      const valid = Validate.validateClientFrame(frame)
      if (Either.isRight(valid) && frame.type === "channel_msg") {
        yield* startPost(frame)
        return false
      }
      yield* drained
      if (frame.type === "hello" || frame.type === "register" || frame.type === "auth") {
        yield* replies.send({ type: "error", error: Errors.malformed(Errors.Messages.unexpectedFrame) })
        return false
      }
      if (Either.isLeft(valid)) {
        const error: Frames.Reply = { type: "error", error: Errors.malformed(valid.left.detail) }
        yield* replies.send(frame.id !== undefined ? { ...error, id: frame.id } : error)
        return false
      }
      yield* replies.send(yield* requests.handle(caller, frame))
      return false
    })

  return Effect.gen(function*() {
    while (true) {
      const inbound = yield* link.next
      if (inbound === "closed" || inbound === "expired") return
      if (inbound === "killed") {
        yield* Effect.logInfo("session force-dropped").pipe(Effect.annotateLogs({ reason: link.killReason }))
        yield* link.finish({ type: "error", error: Errors.unauthorized(link.killReason ?? "") }, CloseCodes.policy)
        return
      }
      if (yield* handle(inbound as Codec.RawMessage)) return
    }
  })
}

/**
 * The greeting of a new session: `established`, then `server_info`.
 *
 * @since 0.1.0
 * @category sessions
 */
export const greet = (link: Link, path: Frames.ServerFrameOf<"established">["path"], admin: boolean): void => {
  link.send(Codec.encodeFrame({ type: "established", path }))
  link.send(Codec.encodeFrame({ type: "server_info", admin }))
}
