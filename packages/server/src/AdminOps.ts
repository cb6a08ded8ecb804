/**
 * The admin operations (SPEC §2.4, §3.11–§3.15, DECISIONS D-14, D-16, D-17): channel lifecycle,
 * ACLs, invites, kicks and bans, users and machines. Each answers one `ack` (or its listing) or a
 * typed refusal; the store changes first, then the hub's live state.
 *
 * @since 0.1.0
 */
import { Auth, Errors, type Frames, Limits, Names } from "@conclave/protocol"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { Hub } from "./Hub.js"
import type { Caller } from "./Requests.js"
import type { ChannelRow, StoreConflict, StoreError, StoreShape } from "./Store.js"

const refuse = (error: Frames.ProtocolError) => Effect.fail(new Errors.ProtocolFailure({ error }))

const iso = (ms: number): string => DateTime.formatIso(DateTime.unsafeMake(ms))

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

const adminSpanAttributes = (caller: Caller, op: Frames.AdminOp): Record<string, string> => {
  const attributes: Record<string, string> = { path: caller.entry.key, op: op.kind }
  if ("channel" in op) attributes.channel = op.channel
  else if ("name" in op && op.kind !== "machine_add" && op.kind !== "machine_remove") attributes.channel = op.name
  return attributes
}

/** What the admin operations use of the request handlers. @since 0.1.0 @category models */
export interface Kit {
  readonly hub: Hub
  readonly store: StoreShape
  /** Storage failures become `internal` (logged). */
  readonly db: <A, E extends StoreError | StoreConflict>(
    operation: string,
    effect: Effect.Effect<A, E>
  ) => Effect.Effect<A, Exclude<E, StoreError> | Errors.ProtocolFailure>
  /** The channel-admin gate with uniform denials (SPEC §3.12, D-16). */
  readonly authorizeChannelAdmin: (caller: Caller, name: string) => Effect.Effect<ChannelRow, Errors.ProtocolFailure>
  readonly requireServerAdmin: (caller: Caller) => Effect.Effect<void, Errors.ProtocolFailure>
  readonly ack: (detail: string | null, seq?: number | null) => Frames.Reply
  readonly nowMs: Effect.Effect<number>
  readonly nowIso: Effect.Effect<string>
}

/**
 * The admin-op handler over `kit`: one reply or a typed refusal per op, in a span while tracing is on.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (kit: Kit) => {
  const { ack, authorizeChannelAdmin, db, hub, nowIso, nowMs, requireServerAdmin, store } = kit
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
          // an offer: the key's holder accepts it by registering as this user/machine, proving
          // possession over the server's challenge (issue 22)
          yield* conflicts(db("add machine", store.offerMachine({ user, name: op.name, pubkey: op.pubkey, now })))
          return ack(op.name)
        })
    }
  }
  // Admin ops are rare: a span of their own through `Effect.fn` (its stack trace included).
  return Effect.fn("admin")(function*(caller: Caller, op: Frames.AdminOp) {
    yield* Effect.annotateCurrentSpan(adminSpanAttributes(caller, op))
    return yield* adminOp(caller, op)
  })
}
