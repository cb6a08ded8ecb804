/**
 * Request handling for established sessions (SPEC §2.9, §3.5–§3.15, DECISIONS D-2 to D-10, D-16,
 * D-17): each request frame yields exactly one reply frame echoing its `id`. Refusals are typed
 * `ProtocolFailure`s turned into `error` frames here; nothing escapes.
 *
 * @since 0.1.0
 */
import { Codec, Errors, type Frames, Names } from "@conclave/protocol"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as AdminOps from "./AdminOps.js"
import * as Admins from "./Admins.js"
import { Enrollments } from "./Enrollments.js"
import { Hub, type SessionEntry } from "./Hub.js"
import { makeReadSince } from "./internal/historyRequests.js"
import { makeTracedPlain, traced } from "./internal/traced.js"
import type { TokenBucket } from "./RateLimit.js"
import { ServerConfig } from "./ServerConfig.js"
import {
  type ChannelRow,
  isUnavailable,
  Store,
  type StoreConflict,
  type StoreError,
  UNAVAILABLE_RETRY_MS
} from "./Store.js"

/** The established session a request comes from. @since 0.1.0 @category models */
export interface Caller {
  readonly entry: SessionEntry
  readonly isAdmin: boolean
  /** The session's token bucket over `channel_msg` + `whisper` (D-10). */
  readonly bucket: TokenBucket
}

const refuse = (error: Frames.ProtocolError) => Effect.fail(new Errors.ProtocolFailure({ error }))

/**
 * A request's reply: known at once when the request needed only the hub's in-memory state (a
 * whisper, a ping, `who` of the whole server), else the effect that produces it (store steps). Each
 * request kind still has one implementation (D-40); the session sends a plain reply without an
 * effect step, which is most of what such a request used to cost.
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome = Frames.Reply | Effect.Effect<Frames.Reply>

/** What a request's implementation yields: a plain reply (a refusal is an `error` frame), or an effect. */
type Answer = Frames.Reply | Effect.Effect<Frames.Reply, Errors.ProtocolFailure>

const refusal = (error: Frames.ProtocolError): Frames.Reply => ({ type: "error", error })

const withId = <F extends Frames.Reply>(frame: F, id: string | undefined): F =>
  id === undefined ? frame : { ...frame, id }

const bodyBytes = (payload: Frames.Payload): number =>
  payload.kind === "plain"
    ? Buffer.byteLength(payload.text, "utf8")
    : Buffer.byteLength(payload.ciphertext, "base64url")

/** A storage failure on the wire: `unavailable` (retry later, D-42) when the store is out of reach, else `internal`. */
const storageRefusal = (operation: string, e: StoreError): Frames.ProtocolError =>
  isUnavailable(e)
    ? Errors.unavailable(`the store is unreachable during ${operation}; nothing was stored`, UNAVAILABLE_RETRY_MS)
    : Errors.internal(Errors.Messages.storageFailure(operation))

const iso = (ms: number): string => DateTime.formatIso(DateTime.unsafeMake(ms))

/** @since 0.1.0 @category services */
export class Requests extends Effect.Service<Requests>()("@conclave/server/Requests", {
  scoped: Effect.gen(function*() {
    const hub = yield* Hub
    const store = yield* Store
    const config = yield* ServerConfig
    const enrollments = yield* Enrollments
    const admins = Admins.allowlist(config.admins)
    const tracedPlain = yield* makeTracedPlain

    /** Storage failures become `internal` (logged at warn, text never includes SQL). */
    const db = <A, E extends StoreError | StoreConflict>(
      operation: string,
      effect: Effect.Effect<A, E>
    ): Effect.Effect<A, Exclude<E, StoreError> | Errors.ProtocolFailure> =>
      Effect.catchAll(
        effect,
        (e): Effect.Effect<never, Exclude<E, StoreError> | Errors.ProtocolFailure> =>
          e._tag === "StoreError"
            ? Effect.logWarning("store failure").pipe(
              Effect.annotateLogs({ operation, cause: String(e.cause) }),
              Effect.zipRight(refuse(storageRefusal(operation, e)))
            )
            : Effect.fail(e as Exclude<E, StoreError>)
      )

    const nowMs = Clock.currentTimeMillis
    const nowIso = Effect.map(nowMs, iso)

    const loadChannel = (name: string) =>
      db("load channel", store.getChannel(name)).pipe(
        Effect.flatMap(Option.match({
          onNone: () => refuse(Errors.notFound(Errors.Messages.channelNotFound(name))),
          onSome: Effect.succeed
        }))
      )

    const canSee = (caller: Caller, channel: ChannelRow) =>
      caller.isAdmin || channel.visibility === "public"
        ? Effect.succeed(true)
        : db("check membership", store.isMember(channel.name, caller.entry.path.user))

    /** Channel-admin gate with uniform denials (SPEC §3.12, D-16). */
    const authorizeChannelAdmin = (caller: Caller, name: string) =>
      Effect.gen(function*() {
        const channel = yield* loadChannel(name)
        if (caller.isAdmin || channel.created_by === caller.entry.path.user) return channel
        if (!(yield* canSee(caller, channel))) {
          return yield* refuse(Errors.notFound(Errors.Messages.channelNotFound(name)))
        }
        return yield* refuse(Errors.unauthorized(Errors.Messages.adminRequired))
      })

    const requireServerAdmin = (caller: Caller) =>
      caller.isAdmin ? Effect.void : refuse(Errors.unauthorized(Errors.Messages.adminRequired))

    const ack = (detail: string | null, seq: number | null = null): Frames.Reply => ({ type: "ack", detail, seq })

    const join = (caller: Caller, channel: string, token: string | null) =>
      Effect.gen(function*() {
        const { entry } = caller
        const user = entry.path.user
        const row = yield* loadChannel(channel)
        if (yield* hub.isBanned(channel, user)) {
          return yield* refuse(Errors.unauthorized(Errors.Messages.banned(channel)))
        }
        // Membership matters only for unlisted (recorded on join) and private (needs an invite) channels.
        if (row.visibility !== "public" && !(yield* db("check membership", store.isMember(channel, user)))) {
          if (row.visibility === "unlisted") {
            yield* db("add member", store.addMember(channel, user))
          } else if (row.visibility === "private") {
            const denied = refuse(Errors.notFound(Errors.Messages.channelNotFound(channel)))
            if (token === null) return yield* denied
            const now = yield* nowMs
            const outcome = yield* db("redeem invite", store.redeemInvite({ token, channel, user, nowMs: now }))
            if (outcome !== "redeemed") return yield* denied
          }
        }
        const result = yield* hub.subscribe(entry, channel)
        if (result !== "subscribed") return yield* refuse(Errors.unauthorized(Errors.Messages.banned(channel)))
        return { type: "joined", channel } satisfies Frames.Reply
      }).pipe(traced("join", () => ({ path: caller.entry.key, channel })))

    const who = (caller: Caller, channel: string | null): Answer =>
      channel === null
        ? { type: "presence", channel, sessions: hub.presence() }
        : Effect.gen(function*() {
          const row = yield* loadChannel(channel)
          if (!(yield* canSee(caller, row))) {
            return yield* refuse(Errors.notFound(Errors.Messages.channelNotFound(channel)))
          }
          return { type: "presence", channel, sessions: hub.subscribersOf(channel) } satisfies Frames.Reply
        })

    const clock = yield* Effect.clock
    /**
     * The per-message limits (D-9, D-10), in their order: the body's size, then the session's rate
     * (which takes a token only when the body fits); the refusal, or `undefined`.
     */
    const limitProblem = (caller: Caller, payload: Frames.Payload | number): Frames.ProtocolError | undefined => {
      if ((typeof payload === "number" ? payload : bodyBytes(payload)) > config.maxBodyBytes) {
        return Errors.tooLarge(`message body exceeds ${config.maxBodyBytes} bytes`, config.maxBodyBytes)
      }
      const wait = caller.bucket.takeAt(clock.unsafeCurrentTimeMillis())
      return wait > 0
        ? Errors.rateLimited(`rate limit: ${config.rateBurst} messages burst, ${config.ratePerSecond}/s`, wait)
        : undefined
    }

    /** The delivered post: the sender, origin and seq stamped by the server (D-4). */
    const encodePost = (caller: Caller, frame: Frames.ClientFrameOf<"channel_msg">, seq: number) =>
      Codec.encodeFrame({
        type: "channel_msg",
        channel: frame.channel,
        from: caller.entry.path,
        payload: frame.payload,
        seq,
        origin: caller.entry.origin,
        reply_to: frame.reply_to
      })

    /**
     * A post in two steps (pipelining): the checks run and the append is queued (so it gets its seq
     * in request order); the returned effect waits for the COMMIT and yields the ack (D-5).
     */
    const postQueued = (
      caller: Caller,
      frame: Frames.ClientFrameOf<"channel_msg">
    ): Effect.Effect<Effect.Effect<Frames.Reply, Errors.ProtocolFailure>, Errors.ProtocolFailure> => {
      const { entry } = caller
      const channel = frame.channel
      // Appends resolve in seq order and the fan-out follows at once, so subscribers see increasing
      // seqs; the writer resolves from a `setImmediate` callback, so the fan-out's sockets are flushed
      // once the batch is done rather than at the next turn's end (`Hub.flushSoon`).
      const append = (ts: number) =>
        db(
          "append message",
          store.appendMessage({
            channel,
            from: entry.key,
            payload: frame.payload,
            ts_ms: ts,
            origin: entry.origin,
            reply_to: frame.reply_to
          })
        ).pipe(
          Effect.flatMap((seq) => {
            const acked = ack(null, seq)
            try {
              hub.publish(channel, encodePost(caller, frame, seq), entry.key)
              hub.flushSoon()
              return Effect.succeed(acked)
            } catch (defect) {
              // the row is durable: the post is acked even if its fan-out failed (logged)
              return Effect.as(Effect.logWarning("after-commit action failed", Cause.die(defect)), acked)
            }
          })
        )
      const replyTo = frame.reply_to
      return Effect.suspend(() => {
        if (!hub.isSubscribed(entry, channel)) return refuse(Errors.unauthorized(Errors.Messages.notAMember(channel)))
        const problem = limitProblem(caller, frame.payload)
        if (problem !== undefined) return refuse(problem)
        const ts = clock.unsafeCurrentTimeMillis()
        if (replyTo === null) return Effect.succeed(append(ts))
        return Effect.flatMap(db("check reply_to", store.messageExists(channel, replyTo)), (exists) =>
          exists
            ? Effect.succeed(append(ts))
            : refuse(Errors.notFound(`message ${replyTo} not found in channel \`${channel}\``)))
      }).pipe(traced("post", () => ({ path: entry.key, channel })))
    }

    /** The delivered whisper: the sender and origin stamped from the session (D-4). */
    const encodeWhisper = (caller: Caller, frame: Frames.ClientFrameOf<"whisper">) =>
      Codec.encodeFrame({
        type: "whisper",
        from: caller.entry.path,
        target: frame.target,
        payload: frame.payload,
        origin: caller.entry.origin
      })

    const ackNull: Frames.Reply = ack(null)

    const whisper = (caller: Caller, frame: Frames.ClientFrameOf<"whisper">): Frames.Reply => {
      const target = Names.renderPath(frame.target)
      return tracedPlain("whisper", () => ({ path: caller.entry.key, target }), () => {
        const problem = hub.online(target)
          ? limitProblem(caller, frame.payload)
          : Errors.notFound(Errors.Messages.notOnline(target))
        if (problem !== undefined) return refusal(problem)
        hub.sendTo(target, encodeWhisper(caller, frame))
        return ackNull
      })
    }

    /**
     * A bridge relays its session's permission request to the console sessions of its own user, on
     * any node (SPEC §4.5.3 remote approvers): counted against the body limit and the session's rate
     * like a whisper; the ack's `detail` says how many consoles it reached.
     */
    const permissionRequest = (caller: Caller, frame: Frames.ClientFrameOf<"permission_request">): Frames.Reply => {
      const { entry } = caller
      return tracedPlain("permission_request", () => ({ path: entry.key }), () => {
        const size = Buffer.byteLength(frame.tool_name, "utf8") + Buffer.byteLength(frame.description, "utf8")
        const problem = limitProblem(caller, size)
        if (problem !== undefined) return refusal(problem)
        const consoles = hub.consolesOf(entry.path.user).filter((key) => key !== entry.key)
        if (consoles.length > 0) {
          const encoded = Codec.encodeFrame({
            type: "permission_request",
            from: entry.path,
            request_id: frame.request_id,
            tool_name: frame.tool_name,
            description: frame.description
          })
          for (const key of consoles) hub.sendTo(key, encoded)
        }
        return ack(`relayed to ${consoles.length} console session${consoles.length === 1 ? "" : "s"}`)
      })
    }

    /** A verdict on a relayed request, only from a session of the asking session's own user. */
    const permissionVerdict = (caller: Caller, frame: Frames.ClientFrameOf<"permission_verdict">): Frames.Reply => {
      const { entry } = caller
      const target = Names.renderPath(frame.target)
      return tracedPlain("permission_verdict", () => ({ path: entry.key, target }), () => {
        if (frame.target.user !== entry.path.user) {
          return refusal(Errors.unauthorized(
            `only a session of user \`${frame.target.user}\` may answer the permission requests of \`${target}\``
          ))
        }
        const problem = hub.online(target)
          ? limitProblem(caller, 0)
          : Errors.notFound(Errors.Messages.notOnline(target))
        if (problem !== undefined) return refusal(problem)
        hub.sendTo(
          target,
          Codec.encodeFrame({
            type: "permission_verdict",
            from: entry.path,
            request_id: frame.request_id,
            behavior: frame.behavior
          })
        )
        return ackNull
      })
    }

    // `read_since` (scroll-back included): internal/historyRequests.ts
    const history = yield* makeReadSince({ isSubscribed: hub.isSubscribed, store, config, db })
    const readSince = (caller: Caller, frame: Frames.ClientFrameOf<"read_since">) => history(caller.entry, frame)

    const adminOp = AdminOps.make({ hub, store, db, authorizeChannelAdmin, requireServerAdmin, ack, nowMs, nowIso })

    const pong: Frames.Reply = { type: "pong" }

    const dispatch = (caller: Caller, frame: Frames.Request): Answer => {
      switch (frame.type) {
        case "ping":
          return pong
        case "join":
          return join(caller, frame.channel, frame.token)
        case "leave":
          return Effect.as(hub.unsubscribe(caller.entry, frame.channel), ack(frame.channel))
        case "who":
          return who(caller, frame.channel)
        case "list_channels":
          return Effect.map(
            db("list channels", store.listVisibleChannels(caller.entry.path.user, caller.isAdmin)),
            (channels) => ({ type: "channel_list", channels })
          )
        case "list_machines":
          return Effect.map(db("list machines", store.listMachines(caller.entry.path.user)), (rows) => ({
            type: "machine_list",
            machines: rows.map((r) => ({ name: r.name, pubkey: r.pubkey, added_at: r.added_at }))
          }))
        case "list_users":
          return Effect.zipRight(
            requireServerAdmin(caller),
            Effect.map(db("list users", store.listUsers), (users): Frames.Reply => ({ type: "user_list", users }))
          )
        case "channel_msg":
          return Effect.flatten(postQueued(caller, frame))
        case "whisper":
          return whisper(caller, frame)
        case "read_since":
          return readSince(caller, frame)
        case "admin":
          return adminOp(caller, frame.op)
        case "enroll_create":
          return Effect.catchTag(
            enrollments.create(caller.entry.path.user),
            "StoreError",
            (e) => db("create enrollment code", Effect.fail(e))
          )
        case "permission_request":
          return permissionRequest(caller, frame)
        case "permission_verdict":
          return permissionVerdict(caller, frame)
      }
    }

    // One step for both outcomes: the reply or the refusal's `error` frame, echoing the request's `id`.
    const answerEffect = (frame: Frames.Request) => (effect: Effect.Effect<Frames.Reply, Errors.ProtocolFailure>) =>
      Effect.match(effect, {
        onFailure: (e): Frames.Reply => withId(refusal(e.error), frame.id),
        onSuccess: (reply) => withId(reply, frame.id)
      })
    const answer = (frame: Frames.Request, answered: Answer): Outcome =>
      Effect.isEffect(answered) ? answerEffect(frame)(answered) : withId(answered, frame.id)

    /** Answer one request: the success frame or an `error` frame, echoing the request's `id`. */
    const handle = (caller: Caller, frame: Frames.Request): Outcome => answer(frame, dispatch(caller, frame))

    /**
     * Start a post and return the effect that completes it with its reply: the checks run and the
     * append is queued here; the reply waits for the COMMIT (a session pipelines its posts, so group
     * commits fill up). `handle` of a post is this, run to its end.
     */
    const beginPost = (
      caller: Caller,
      frame: Frames.ClientFrameOf<"channel_msg">
    ): Effect.Effect<Effect.Effect<Frames.Reply>> => {
      const reply = answerEffect(frame)
      return postQueued(caller, frame).pipe(
        Effect.match({
          onFailure: (failure) => reply(Effect.fail(failure)),
          onSuccess: reply
        })
      )
    }

    return { handle, beginPost, isAdmin: admins.isAdmin } as const
  })
}) {}
