/**
 * Request handling for established sessions (SPEC §2.9, §3.5–§3.15, DECISIONS D-2 to D-10, D-16,
 * D-17): each request frame yields exactly one reply frame echoing its `id`. Refusals are typed
 * `ProtocolFailure`s turned into `error` frames here; nothing escapes.
 *
 * @since 0.1.0
 */
import { Auth, Codec, Errors, type Frames, Limits, Names } from "@conclave/protocol"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as Admins from "./Admins.js"
import { Hub, type SessionEntry } from "./Hub.js"
import * as Corking from "./internal/corking.js"
import type { TokenBucket } from "./RateLimit.js"
import { ServerConfig } from "./ServerConfig.js"
import { type ChannelRow, Store, type StoreConflict, type StoreError } from "./Store.js"

/** The established session a request comes from. @since 0.1.0 @category models */
export interface Caller {
  readonly entry: SessionEntry
  readonly isAdmin: boolean
  /** The session's token bucket over `channel_msg` + `whisper` (D-10). */
  readonly bucket: TokenBucket
}

/**
 * How a post started by `postNow` ended: its reply, and what to log about it — for a storage failure
 * the operation and the cause's text, as `handle` logs them (never SQL or the body).
 *
 * @since 0.1.0
 * @category models
 */
export interface PostOutcome {
  readonly reply: Frames.Reply
  readonly failure: { readonly operation: string; readonly cause: string } | undefined
  /** What the fan-out of a committed post threw, if it did (it is logged; the post is still acked). */
  readonly fanOutDefect: unknown
}

// A post's fan-out runs in the store's writer, itself resumed from a `setImmediate` callback: its
// corked sockets are flushed once the batch is done, not at the next turn's end (`Corking.flushSoon`).
const flushFanOut = Effect.sync(Corking.flushSoon)

const refuse = (error: Frames.ProtocolError) => Effect.fail(new Errors.ProtocolFailure({ error }))

const withId = <F extends Frames.Reply>(frame: F, id: string | undefined): F =>
  id === undefined ? frame : { ...frame, id }

const bodyBytes = (payload: Frames.Payload): number =>
  payload.kind === "plain"
    ? Buffer.byteLength(payload.text, "utf8")
    : Buffer.byteLength(payload.ciphertext, "base64url")

const iso = (ms: number): string => DateTime.formatIso(DateTime.unsafeMake(ms))

/**
 * A span around a request, made only while tracing is on: `withSpan` costs ~10 µs per request even
 * when spans go nowhere (`conclave serve` switches tracing off without an exporter).
 */
const traced =
  (name: string, attributes: () => Record<string, unknown>) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.flatMap(
      FiberRef.get(FiberRef.currentTracerEnabled),
      (on) => on ? Effect.withSpan(effect, name, { captureStackTrace: false, attributes: attributes() }) : effect
    )

/** @since 0.1.0 @category services */
export class Requests extends Effect.Service<Requests>()("@conclave/server/Requests", {
  effect: Effect.gen(function*() {
    const hub = yield* Hub
    const store = yield* Store
    const config = yield* ServerConfig
    const admins = Admins.allowlist(config.admins)

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
              Effect.zipRight(refuse(Errors.internal(Errors.Messages.storageFailure(operation))))
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

    const who = (caller: Caller, channel: string | null) =>
      Effect.gen(function*() {
        if (channel === null) return { type: "presence", channel, sessions: yield* hub.presence } satisfies Frames.Reply
        const row = yield* loadChannel(channel)
        if (!(yield* canSee(caller, row))) {
          return yield* refuse(Errors.notFound(Errors.Messages.channelNotFound(channel)))
        }
        return { type: "presence", channel, sessions: yield* hub.subscribersOf(channel) } satisfies Frames.Reply
      })

    const checkBody = (payload: Frames.Payload) => {
      const size = bodyBytes(payload)
      return size > config.maxBodyBytes
        ? refuse(Errors.tooLarge(`message body exceeds ${config.maxBodyBytes} bytes`, config.maxBodyBytes))
        : Effect.void
    }

    const checkRate = (caller: Caller) =>
      Effect.flatMap(caller.bucket.take, (wait) =>
        wait > 0
          ? refuse(
            Errors.rateLimited(`rate limit: ${config.rateBurst} messages burst, ${config.ratePerSecond}/s`, wait)
          )
          : Effect.void)

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
    ): Effect.Effect<Effect.Effect<Frames.Reply, Errors.ProtocolFailure>, Errors.ProtocolFailure> =>
      Effect.gen(function*() {
        const { entry } = caller
        const channel = frame.channel
        if (!(yield* hub.isSubscribed(entry, channel))) {
          return yield* refuse(Errors.unauthorized(Errors.Messages.notAMember(channel)))
        }
        yield* checkBody(frame.payload)
        yield* checkRate(caller)
        if (frame.reply_to !== null) {
          const exists = yield* db("check reply_to", store.messageExists(channel, frame.reply_to))
          if (!exists) {
            return yield* refuse(Errors.notFound(`message ${frame.reply_to} not found in channel \`${channel}\``))
          }
        }
        const ts = yield* nowMs
        // The store runs the fan-out after COMMIT and in seq order, so subscribers see increasing seqs.
        const committed = yield* store.appendMessageQueued(
          {
            channel,
            from: entry.key,
            payload: frame.payload,
            ts_ms: ts,
            origin: entry.origin,
            reply_to: frame.reply_to
          },
          (seq) => Effect.zipRight(hub.publish(channel, encodePost(caller, frame, seq), entry.key), flushFanOut)
        )
        return Effect.map(db("append message", committed), (seq) => ack(null, seq))
      }).pipe(
        traced("post", () => ({ path: caller.entry.key, channel: frame.channel }))
      )

    /** The delivered whisper: the sender and origin stamped from the session (D-4). */
    const encodeWhisper = (caller: Caller, frame: Frames.ClientFrameOf<"whisper">) =>
      Codec.encodeFrame({
        type: "whisper",
        from: caller.entry.path,
        target: frame.target,
        payload: frame.payload,
        origin: caller.entry.origin
      })

    const whisper = (caller: Caller, frame: Frames.ClientFrameOf<"whisper">) =>
      Effect.gen(function*() {
        const target = Names.renderPath(frame.target)
        if (!(yield* hub.online(frame.target))) return yield* refuse(Errors.notFound(Errors.Messages.notOnline(target)))
        yield* checkBody(frame.payload)
        yield* checkRate(caller)
        yield* hub.sendTo(target, encodeWhisper(caller, frame))
        return ack(null)
      }).pipe(
        traced("whisper", () => ({ path: caller.entry.key, target: Names.renderPath(frame.target) }))
      )

    /**
     * A whisper as plain synchronous code (the hot path: answered in the socket's callback, no fiber,
     * STACK.md "Fan-out speed"): the reply when it is delivered, or `undefined` when it would be refused
     * — the refusal is then left to `handle`, so it reads and logs exactly as there. The checks and
     * their order are `whisper`'s; no span is made, so it is for sessions without tracing.
     */
    const whisperNow = (
      caller: Caller,
      frame: Frames.ClientFrameOf<"whisper">,
      now: number
    ): Frames.Reply | undefined => {
      const target = Names.renderPath(frame.target)
      if (!hub.unsafe.online(target)) return undefined
      if (bodyBytes(frame.payload) > config.maxBodyBytes) return undefined
      if (caller.bucket.takeAt(now) > 0) return undefined
      hub.unsafe.sendTo(target, encodeWhisper(caller, frame))
      return withId(ack(null), frame.id)
    }

    /**
     * `join` answered synchronously, for the same path as `whisperNow`: a public channel read from
     * committed state (`Store.syncReads`) is subscribed here. `undefined` — nothing changed — when the
     * store has no synchronous reads or could not read, and for every other outcome (an absent,
     * unlisted or private channel, a ban): `handle` then answers it as always.
     */
    const joinNow = (caller: Caller, frame: Frames.ClientFrameOf<"join">): Frames.Reply | undefined => {
      const row = store.syncReads?.getChannel(frame.channel)
      if (row === undefined || Option.isNone(row) || row.value.visibility !== "public") return undefined
      if (hub.unsafe.subscribe(caller.entry, frame.channel) !== "subscribed") return undefined
      return withId({ type: "joined", channel: frame.channel }, frame.id)
    }

    /**
     * A post started as plain synchronous code, for the same path as `whisperNow`: when every check
     * `postQueued` makes passes here, the append is queued and `true` returned; `answered` is then
     * called once, from the store's writer, after the COMMIT and the fan-out with the ack (D-5) — or
     * with the `internal` error of a storage failure and what to log about it. `false` — nothing
     * changed — for every refusal and for a post with `reply_to` (its check reads the store): `handle`
     * then answers it as always.
     */
    const postNow = (
      caller: Caller,
      frame: Frames.ClientFrameOf<"channel_msg">,
      now: number,
      answered: (outcome: PostOutcome) => void
    ): boolean => {
      const { entry } = caller
      const channel = frame.channel
      if (!hub.unsafe.isSubscribed(entry, channel) || frame.reply_to !== null) return false
      if (bodyBytes(frame.payload) > config.maxBodyBytes) return false
      if (caller.bucket.takeAt(now) > 0) return false
      const message = {
        channel,
        from: entry.key,
        payload: frame.payload,
        ts_ms: now,
        origin: entry.origin,
        reply_to: null
      }
      store.unsafeAppend(message, (outcome) => {
        if (Exit.isSuccess(outcome)) {
          // The row is durable: the post is acked even if its fan-out failed (logged, as after a
          // failed `afterCommit`); nothing may escape into the store's writer.
          let fanOutDefect: unknown = undefined
          try {
            hub.unsafe.publish(channel, encodePost(caller, frame, outcome.value), entry.key)
          } catch (defect) {
            fanOutDefect = defect
          }
          Corking.flushSoon()
          return answered({ reply: withId(ack(null, outcome.value), frame.id), failure: undefined, fanOutDefect })
        }
        const operation = "append message"
        const cause = Cause.failureOption(outcome.cause)
        answered({
          reply: withId({ type: "error", error: Errors.internal(Errors.Messages.storageFailure(operation)) }, frame.id),
          failure: { operation, cause: Option.isSome(cause) ? String(cause.value.cause) : Cause.pretty(outcome.cause) },
          fanOutDefect: undefined
        })
      })
      return true
    }

    const readSince = (caller: Caller, frame: Frames.ClientFrameOf<"read_since">) =>
      Effect.gen(function*() {
        const channel = frame.channel
        if (!(yield* hub.isSubscribed(caller.entry, channel))) {
          return yield* refuse(Errors.unauthorized(Errors.Messages.notAMember(channel)))
        }
        const now = yield* nowMs
        const page = yield* db(
          "read history",
          store.readSince({
            channel,
            since: frame.since_seq !== null
              ? { _tag: "Seq", seq: frame.since_seq }
              : { _tag: "Ms", ms: frame.since_ms ?? 0 },
            cutoffMs: now - Duration.toMillis(config.retention),
            limit: config.historyPageCap
          })
        )
        return { type: "history", channel, messages: page.messages, more: page.more } satisfies Frames.Reply
      }).pipe(
        traced("read_since", () => ({ path: caller.entry.key, channel: frame.channel }))
      )

    const conflictMessage = (e: StoreConflict): Frames.ProtocolError => {
      switch (e.what) {
        case "channel":
          return Errors.conflict(Errors.Messages.channelExists(e.value))
        case "machine":
          return Errors.conflict(`machine \`${e.value}\` already exists`)
        case "pubkey":
          return Errors.conflict("public key is already enrolled")
        case "username":
          return Errors.conflict(Errors.Messages.usernameTaken(e.value))
      }
    }
    const conflicts = <A>(effect: Effect.Effect<A, Errors.ProtocolFailure | StoreConflict>) =>
      Effect.catchTag(effect, "StoreConflict", (e) => refuse(conflictMessage(e)))

    const adminOp = (caller: Caller, op: Frames.AdminOp): Effect.Effect<Frames.Reply, Errors.ProtocolFailure> => {
      const user = caller.entry.path.user
      switch (op.kind) {
        case "create_channel":
          return Effect.gen(function*() {
            const now = yield* nowIso
            yield* conflicts(
              db(
                "create channel",
                store.createChannel({ name: op.name, visibility: op.visibility, createdBy: user, now })
              )
            )
            return ack(op.name)
          })
        case "delete_channel":
          return Effect.gen(function*() {
            yield* authorizeChannelAdmin(caller, op.name)
            yield* db("delete channel", store.deleteChannel(op.name))
            yield* hub.dropChannel(op.name)
            return ack(op.name)
          })
        case "rename_channel":
          return Effect.gen(function*() {
            yield* authorizeChannelAdmin(caller, op.name)
            if (op.new_name !== op.name) {
              yield* conflicts(db("rename channel", store.renameChannel(op.name, op.new_name)))
              yield* hub.renameChannel(op.name, op.new_name)
            }
            return ack(op.new_name)
          })
        case "set_visibility":
          return Effect.gen(function*() {
            yield* authorizeChannelAdmin(caller, op.name)
            yield* db("set visibility", store.setVisibility(op.name, op.visibility))
            return ack(op.name)
          })
        case "acl_add":
          return Effect.gen(function*() {
            yield* authorizeChannelAdmin(caller, op.channel)
            yield* db("add member", store.aclAdd(op.channel, op.user))
            yield* hub.removeBan(op.channel, op.user)
            return ack(op.user)
          })
        case "acl_remove":
          return Effect.gen(function*() {
            yield* authorizeChannelAdmin(caller, op.channel)
            yield* db("remove member", store.removeMember(op.channel, op.user))
            yield* hub.unsubscribeUser(op.channel, op.user, "removed")
            return ack(op.user)
          })
        case "acl_list":
          return Effect.gen(function*() {
            yield* authorizeChannelAdmin(caller, op.channel)
            const users = yield* db("list members", store.listMembers(op.channel))
            return { type: "user_list", users } satisfies Frames.Reply
          })
        case "invite_create":
          return Effect.gen(function*() {
            yield* authorizeChannelAdmin(caller, op.channel)
            if (op.uses === 0) return yield* refuse(Errors.malformed("invite uses must be at least 1"))
            const now = yield* nowMs
            let expiresAt: string | null = null
            if (op.expires_in_secs !== null) {
              const at = now + op.expires_in_secs * 1000
              if (!Number.isFinite(at) || at > Limits.MAX_DATE_MS) {
                return yield* refuse(Errors.malformed(Errors.Messages.inviteExpiryTooFar))
              }
              expiresAt = iso(at)
            }
            const token = Auth.randomToken()
            yield* db(
              "create invite",
              store.createInvite({
                token,
                channel: op.channel,
                uses_remaining: op.uses,
                expires_at: expiresAt,
                created_by: user
              })
            )
            return { type: "invite_token", token } satisfies Frames.Reply
          })
        case "invite_revoke":
          return Effect.gen(function*() {
            const invite = yield* db("load invite", store.getInvite(op.token))
            if (Option.isSome(invite)) {
              const allowed = yield* authorizeChannelAdmin(caller, invite.value.channel).pipe(
                Effect.as(true),
                Effect.catchTag(
                  "ProtocolFailure",
                  (e) => e.error.kind === "internal" ? Effect.fail(e) : Effect.succeed(false)
                )
              )
              if (allowed) yield* db("delete invite", store.deleteInvite(op.token))
            }
            return ack(op.token)
          })
        case "invite_list":
          return Effect.gen(function*() {
            yield* authorizeChannelAdmin(caller, op.channel)
            const rows = yield* db("list invites", store.listInvites(op.channel))
            const invites = rows.map((r) => ({
              token: r.token,
              uses_remaining: r.uses_remaining,
              expires_at: r.expires_at
            }))
            return { type: "invite_list", invites } satisfies Frames.Reply
          })
        case "kick":
          return Effect.gen(function*() {
            yield* authorizeChannelAdmin(caller, op.channel)
            const path = Names.parsePath(op.target)
            if (path !== undefined) yield* hub.unsubscribePath(op.channel, Names.renderPath(path), "kicked")
            else yield* hub.unsubscribeUser(op.channel, op.target, "kicked")
            return ack(op.target)
          })
        case "ban":
          return Effect.gen(function*() {
            yield* authorizeChannelAdmin(caller, op.channel)
            yield* db("ban", store.ban(op.channel, op.user))
            yield* hub.addBan(op.channel, op.user)
            yield* hub.unsubscribeUser(op.channel, op.user, "banned")
            return ack(op.user)
          })
        case "unban":
          return Effect.gen(function*() {
            yield* authorizeChannelAdmin(caller, op.channel)
            yield* db("unban", store.unban(op.channel, op.user))
            yield* hub.removeBan(op.channel, op.user)
            return ack(op.user)
          })
        case "ban_list":
          return Effect.gen(function*() {
            yield* authorizeChannelAdmin(caller, op.channel)
            const users = yield* db("list bans", store.listBans(op.channel))
            return { type: "user_list", users } satisfies Frames.Reply
          })
        case "user_remove":
          return Effect.gen(function*() {
            yield* requireServerAdmin(caller)
            const removed = yield* db("remove user", store.removeUser(op.username))
            for (const channel of removed.deletedChannels) yield* hub.dropChannel(channel)
            yield* hub.killUser(op.username, Errors.KillReasons.userRemoved)
            return ack(op.username)
          })
        case "machine_remove":
          return Effect.gen(function*() {
            yield* db("remove machine", store.removeMachine(user, op.name))
            yield* hub.killUser(user, Errors.KillReasons.machineRevoked, op.name)
            return ack(op.name)
          })
        case "machine_add":
          return Effect.gen(function*() {
            const now = yield* nowIso
            yield* conflicts(db("add machine", store.addMachine({ user, name: op.name, pubkey: op.pubkey, now })))
            return ack(op.name)
          })
      }
    }

    const adminSpanAttributes = (caller: Caller, op: Frames.AdminOp): Record<string, string> => {
      const attributes: Record<string, string> = { path: caller.entry.key, op: op.kind }
      if ("channel" in op) attributes.channel = op.channel
      else if ("name" in op && op.kind !== "machine_add" && op.kind !== "machine_remove") attributes.channel = op.name
      return attributes
    }

    const dispatch = (caller: Caller, frame: Frames.Request): Effect.Effect<Frames.Reply, Errors.ProtocolFailure> => {
      switch (frame.type) {
        case "ping":
          return Effect.succeed({ type: "pong" })
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
          return adminOp(caller, frame.op).pipe(
            traced("admin", () => adminSpanAttributes(caller, frame.op))
          )
      }
    }

    const answer = (frame: Frames.Request) => (effect: Effect.Effect<Frames.Reply, Errors.ProtocolFailure>) =>
      effect.pipe(
        Effect.catchTag(
          "ProtocolFailure",
          (e): Effect.Effect<Frames.Reply> => Effect.succeed({ type: "error", error: e.error })
        ),
        Effect.map((reply) => withId(reply, frame.id))
      )

    /** Answer one request: the success frame or an `error` frame, echoing the request's `id`. */
    const handle = (caller: Caller, frame: Frames.Request): Effect.Effect<Frames.Reply> =>
      answer(frame)(dispatch(caller, frame))

    /**
     * Start a post and return the effect that completes it with its reply: the checks run and the
     * append is queued here; the reply waits for the COMMIT (a session pipelines its posts, so group
     * commits fill up). `handle` of a post is this, run to its end.
     */
    const beginPost = (
      caller: Caller,
      frame: Frames.ClientFrameOf<"channel_msg">
    ): Effect.Effect<Effect.Effect<Frames.Reply>> => {
      const reply = answer(frame)
      return postQueued(caller, frame).pipe(
        Effect.match({
          onFailure: (failure) => reply(Effect.fail(failure)),
          onSuccess: reply
        })
      )
    }

    return { handle, beginPost, whisperNow, joinNow, postNow, isAdmin: admins.isAdmin } as const
  })
}) {}
