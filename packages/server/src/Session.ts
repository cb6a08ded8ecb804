/**
 * The established session (SPEC §2.9, §3.3, DECISIONS D-2, D-5, D-8, D-11): its frames are handled
 * strictly in order — every frame ready when it runs before it stops — and each request gets exactly
 * one reply, in request order.
 *
 * A session holds no fiber while idle (a parked fiber per session would cost more memory than the
 * rest of an idle session together): a frame, a kill or the close starts one, owned by the server's
 * scope, which handles what is ready and then lingers briefly for the next frame before it ends — so
 * a busy session keeps one fiber and an idle one has none. Posts are pipelined: once a post's checks pass, its
 * append is started in a fiber of its own and the session goes on reading, so one group commit takes
 * many of its posts; its ack waits for the COMMIT (D-5) and then for the replies owed before it. Any
 * other request waits until every owed reply has left. At most `MAX_PIPELINED_POSTS` posts are in
 * flight per session.
 *
 * @since 0.1.0
 */
import { Codec, Errors, type Frames, Validate } from "@conclave/protocol"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { Hub, SessionEntry } from "./Hub.js"
import type { Lingering } from "./internal/lingering.js"
import { CloseCodes, fail, type Inbound, type Link, logErrorFrame } from "./Link.js"
import type { Caller, Outcome, Requests } from "./Requests.js"

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
  /**
   * Start a fiber owned by the server's scope, from a runtime that carries the session's log
   * annotations (remote address, path): at once, or (`later`) once the code now running is done.
   */
  readonly fork: (effect: Effect.Effect<void>, later?: boolean) => void
  /** Where a run that has nothing left to do waits a little for the next frame (`internal/lingering.ts`). */
  readonly lingering: Lingering
}

/**
 * A reply's text; a reply that cannot be encoded (a string past the engine's limit) becomes an
 * `internal` error echoing its id instead of a throw.
 */
const encodeSafely = (frame: Frames.ServerFrame): string => {
  try {
    return Codec.encodeFrame(frame)
  } catch {
    const id = "id" in frame ? frame.id : undefined
    const error = Errors.internal("reply too large to encode")
    return Codec.encodeFrame(id === undefined ? { type: "error", error } : { type: "error", id, error })
  }
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

  /**
   * Send a reply now. What is left to do — log an `error` frame, drop the session as a slow consumer
   * when its outbox is full — is returned as an effect; usually nothing is.
   */
  sendNow(frame: Frames.ServerFrame): Effect.Effect<void> | undefined {
    const text = encodeSafely(frame)
    const logged = frame.type === "error" ? logErrorFrame(frame.error) : undefined
    if (this.link.send(text)) return logged
    const kill = this.hub.kill(this.entry, Errors.KillReasons.slowConsumer)
    return logged === undefined ? kill : Effect.zipRight(logged, kill)
  }

  /** `sendNow` as one effect. */
  send(frame: Frames.ServerFrame): Effect.Effect<void> {
    return this.sendNow(frame) ?? Effect.void
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
 * One established session. `start` greets it and handles what arrived meanwhile; from then on the
 * link wakes it.
 *
 * @since 0.1.0
 * @category sessions
 */
export class Session {
  private running = false
  private ended = false
  private readonly replies: Replies
  /** Handle whatever is ready, then end the run (the fiber of one wake). */
  private readonly run: Effect.Effect<void>

  constructor(private readonly input: SessionInput) {
    this.replies = new Replies(input.link, input.hub, input.entry)
    this.run = Effect.suspend(() => this.step()).pipe(
      Effect.catchAllCause((cause) => Effect.zipRight(fail(input.link, cause), this.end))
    )
  }

  /**
   * Send `established` and `server_info`; the effect returned is the session's first run, for the
   * fiber that established it to go on with (the frames that came meanwhile first, then those that
   * follow while it lingers): a new session's first frames — its joins, or its close — cost no fork.
   */
  start(admin: boolean): Effect.Effect<void> {
    const { entry, link } = this.input
    link.send(Codec.encodeFrame({ type: "established", path: entry.path }))
    link.send(Codec.encodeFrame({ type: "server_info", admin }))
    link.onWake = this.wake
    this.running = true
    return this.run
  }

  /**
   * Start a run unless one is running (or the session has ended). The run starts once the socket
   * callback that woke it is done, so it finds every frame of that read (one run, not one per frame).
   */
  private readonly wake = (): void => {
    if (this.running || this.ended) return
    this.running = true
    this.input.fork(this.run, true)
  }

  /**
   * The next thing to do. Frames whose requests are answered at once are handled in a plain loop;
   * the first that needs an effect (a store step, a log line) continues the run through it. With
   * nothing ready the run lingers: it waits on its fiber for the next frame, and ends (the session
   * then waits without a fiber) once the sweeper releases it.
   */
  private step(): Effect.Effect<void> {
    const { link, lingering } = this.input
    for (;;) {
      const inbound = link.poll()
      if (inbound === undefined) break
      if (inbound === "closed" || inbound === "expired" || inbound === "idle" || inbound === "killed") {
        return this.consider(inbound)
      }
      const handled = this.handle(inbound as Codec.RawMessage)
      if (handled === true) return this.end
      if (handled !== false) return Effect.flatMap(handled, (stop) => stop ? this.end : this.step())
    }
    lingering.waiting(link)
    return Effect.flatMap(link.next, (next) => {
      lingering.done(link)
      if (next !== "idle") return this.consider(next)
      // A frame may have come between the release and now: it is handled on this fiber.
      if (link.ready()) return this.step()
      this.running = false
      return Effect.void
    })
  }

  private consider(inbound: Inbound): Effect.Effect<void> {
    const { link } = this.input
    if (inbound === "closed" || inbound === "expired" || inbound === "idle") return this.end
    if (inbound === "killed") {
      return Effect.logInfo("session force-dropped").pipe(
        Effect.annotateLogs({ reason: link.killReason }),
        Effect.zipRight(
          link.finish({ type: "error", error: Errors.unauthorized(link.killReason ?? "") }, CloseCodes.policy)
        ),
        Effect.zipRight(this.end)
      )
    }
    const handled = this.handle(inbound as Codec.RawMessage)
    if (typeof handled === "boolean") return handled ? this.end : this.step()
    return Effect.flatMap(handled, (stop) => stop ? this.end : this.step())
  }

  /** The session is over: no more runs, and presence no longer holds it. */
  private readonly end: Effect.Effect<void> = Effect.suspend(() => {
    this.ended = true
    this.running = false
    this.input.link.onWake = undefined
    this.input.lingering.done(this.input.link)
    return Effect.zipRight(this.input.hub.detach(this.input.entry), Effect.logDebug("session detached"))
  })

  /**
   * Handle one frame: true when the session must end (a malformed frame was answered, D-8), false
   * when it goes on — or the effect that finishes handling it and says which.
   */
  private handle(raw: Codec.RawMessage): boolean | Effect.Effect<boolean> {
    const { caller, clock, debugOn, entry, link, maxFrameBytes, requests } = this.input
    const replies = this.replies
    entry.lastSeen = clock.unsafeCurrentTimeMillis()
    const decoded = Codec.decodeClientFrame(raw, maxFrameBytes)
    if (Either.isLeft(decoded)) {
      const { frameType, requestId } = decoded.left
      if (frameType !== undefined && Codec.isKnownType(frameType) && !Codec.isClientFrameType(frameType)) {
        // A server→client kind from a client: refused, but the session stays (SPEC §2.9).
        return this.afterOwed(
          replies.send({ type: "error", error: Errors.malformed(Errors.Messages.unexpectedFrame) }),
          false
        )
      }
      // D-8 / G-26: say why, then close. A request kind that carried a usable id gets it back (D-2).
      const id = frameType !== undefined && Codec.isClientFrameType(frameType) ? requestId : undefined
      const error = Errors.malformed(decoded.left.detail)
      return this.afterOwed(
        link.finish(id === undefined ? { type: "error", error } : { type: "error", id, error }, CloseCodes.policy),
        true
      )
    }
    const frame = decoded.right
    // A debug line per frame is recorded only when debug logging is on (the code that runs is the same).
    const logged = <A>(effect: Effect.Effect<A>): Effect.Effect<A> =>
      debugOn
        ? Effect.zipRight(
          Effect.logDebug("frame").pipe(
            Effect.annotateLogs({ kind: frame.type === "admin" ? frame.op.kind : frame.type })
          ),
          effect
        )
        : effect
    const valid = Validate.validateClientFrame(frame)
    if (Either.isRight(valid) && frame.type === "channel_msg") return logged(this.post(frame))
    const answer = (): Outcome => {
      if (frame.type === "hello" || frame.type === "register" || frame.type === "auth" || frame.type === "enroll") {
        return { type: "error", error: Errors.malformed(Errors.Messages.unexpectedFrame) }
      }
      if (Either.isLeft(valid)) {
        const error: Frames.Reply = { type: "error", error: Errors.malformed(valid.left.detail) }
        return frame.id !== undefined ? { ...error, id: frame.id } : error
      }
      return requests.handle(caller, frame)
    }
    if (replies.owed > 0) {
      // replies are owed to posts in flight: this request runs once they have left (request order)
      return logged(this.afterOwed(
        Effect.suspend(() => {
          const reply = answer()
          return Effect.isEffect(reply) ? Effect.flatMap(reply, (r) => replies.send(r)) : replies.send(reply)
        }),
        false
      ))
    }
    const reply = answer()
    if (Effect.isEffect(reply)) return logged(Effect.flatMap(reply, (r) => replies.send(r)).pipe(Effect.as(false)))
    // answered at once: sent now, with no effect step unless one is left to do (a log line, a drop)
    const rest = replies.sendNow(reply)
    if (rest === undefined) return debugOn ? logged(Effect.succeed(false)) : false
    return logged(Effect.as(rest, false))
  }

  /** `effect` once every owed reply has left (request order), then `result`. */
  private afterOwed(effect: Effect.Effect<void>, result: boolean): Effect.Effect<boolean> {
    const answered = Effect.as(effect, result)
    return this.replies.owed === 0 ? answered : Effect.zipRight(this.replies.awaitBelow(1), answered)
  }

  /** Start a post: checks now, its append and ack in a fiber of its own (pipelining). */
  private post(frame: Frames.ClientFrameOf<"channel_msg">): Effect.Effect<boolean> {
    const { caller, fork, requests } = this.input
    const replies = this.replies
    const start = Effect.map(requests.beginPost(caller, frame), (ack) => {
      const slot = replies.owe()
      // Uninterruptible: a post whose append was queued is fanned out and answered even while the
      // server drains.
      fork(Effect.uninterruptible(Effect.flatMap(ack, (reply) => replies.settle(slot, reply))))
      return false
    })
    return replies.owed >= MAX_PIPELINED_POSTS ? Effect.zipRight(replies.awaitBelow(MAX_PIPELINED_POSTS), start) : start
  }
}
