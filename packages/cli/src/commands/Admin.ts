/**
 * Channel administration, moderation and discovery verbs (SPEC §6.2): `channel`, `acl`, `invite`,
 * `who`, `kick`, `ban`, `unban`, `bans`, `user`.
 *
 * @since 0.1.0
 */
import { AdminOps, ToolArgs } from "@conclave/client"
import { type Frames, Names } from "@conclave/protocol"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Ctx from "../Context.js"
import * as Flags from "../Flags.js"
import * as Output from "../Output.js"
import * as Remote from "../Remote.js"
import { ackOut } from "./Identity.js"

const runAck = (server: string, json: boolean, op: Frames.AdminOp, fallback: string) =>
  Effect.gen(function*() {
    const url = yield* Ctx.parseUrl(server)
    const ack = yield* Remote.withSession(url, (conn) => Remote.admin(conn, op, "ack"))
    yield* ackOut(json, ack.detail ?? fallback)
  })

const printUsers = (json: boolean, users: ReadonlyArray<string>) =>
  json ? Output.json({ users }) : Effect.forEach(users, (u) => Output.line(u), { discard: true })

const runUsers = (server: string, json: boolean, request: Parameters<typeof Remote.call>[1]) =>
  Effect.gen(function*() {
    const url = yield* Ctx.parseUrl(server)
    const reply = yield* Remote.withSession(url, (conn) => Remote.call(conn, request, "user_list"))
    yield* printUsers(json, reply.users)
  })

const nameArg = (description: string) =>
  Args.text({ name: "NAME" }).pipe(Args.map(ToolArgs.channelName), Args.withDescription(description))

// ---- channel -------------------------------------------------------------------------------------

const channelCreate = Command.make(
  "create",
  {
    server: Flags.server,
    name: nameArg("Channel name."),
    visibility: Options.text("visibility").pipe(
      Options.withPseudoName("VISIBILITY"),
      Options.withSchema(Flags.VisibilityText),
      Options.withDefault("public" as const),
      Options.withDescription("public | unlisted | private")
    ),
    json: Flags.json
  },
  (args) =>
    runAck(
      args.server,
      args.json,
      AdminOps.make("create_channel", { name: args.name, visibility: args.visibility }),
      args.name
    )
).pipe(Command.withDescription("Create a channel; you become its creator (channel admin) and first member."))

const channelDelete = Command.make(
  "delete",
  { server: Flags.server, name: nameArg("Channel to delete."), json: Flags.json },
  (args) => runAck(args.server, args.json, AdminOps.make("delete_channel", { name: args.name }), args.name)
).pipe(Command.withDescription("Delete a channel with its members, bans, invites and history (channel admin)."))

const channelRename = Command.make(
  "rename",
  {
    server: Flags.server,
    names: Args.all([
      nameArg("Current name."),
      Args.text({ name: "NEW_NAME" }).pipe(Args.map(ToolArgs.channelName), Args.withDescription("New name."))
    ]),
    json: Flags.json
  },
  (args) =>
    runAck(
      args.server,
      args.json,
      AdminOps.make("rename_channel", { name: args.names[0], new_name: args.names[1] }),
      args.names[1]
    )
).pipe(Command.withDescription("Rename a channel; members, bans, invites and history follow (channel admin)."))

const channelSetVisibility = Command.make(
  "set-visibility",
  {
    server: Flags.server,
    args: Args.all([
      nameArg("Channel name."),
      Args.text({ name: "VISIBILITY" }).pipe(
        Args.withSchema(Flags.VisibilityText),
        Args.withDescription("public | unlisted | private")
      )
    ]),
    json: Flags.json
  },
  (args) =>
    runAck(
      args.server,
      args.json,
      AdminOps.make("set_visibility", { name: args.args[0], visibility: args.args[1] }),
      args.args[0]
    )
).pipe(Command.withDescription("Change a channel's visibility tier (channel admin)."))

const channelList = Command.make("list", { server: Flags.server, json: Flags.json }, (args) =>
  Effect.gen(function*() {
    const url = yield* Ctx.parseUrl(args.server)
    const reply = yield* Remote.withSession(url, (conn) => Remote.call(conn, { type: "list_channels" }, "channel_list"))
    if (args.json) return yield* Output.json({ channels: reply.channels })
    for (const c of reply.channels) {
      yield* Output.line(`${c.name}\t${c.visibility}${c.member ? "\t(member)" : ""}`)
    }
  })).pipe(
    Command.withDescription(
      "List the channels you can see: public ones, and unlisted/private ones you belong to (admins see all)."
    )
  )

/** @since 0.1.0 @category commands */
export const channelCommands = [channelCreate, channelDelete, channelRename, channelSetVisibility, channelList] as const

/** `conclave channel`. @since 0.1.0 @category commands */
export const channel = Command.make("channel").pipe(
  Command.withDescription("Create, delete, rename, re-tier and list channels."),
  Command.withSubcommands(channelCommands)
)

// ---- acl ---------------------------------------------------------------------------------------

const userArg = Args.text({ name: "USER" }).pipe(Args.withDescription("Username."))

const aclAdd = Command.make(
  "add",
  { server: Flags.server, channel: Flags.channel, user: userArg, json: Flags.json },
  (args) => runAck(args.server, args.json, AdminOps.make("acl_add", args), args.user)
).pipe(Command.withDescription("Add a user to a channel's members (also lifts a ban on them)."))

const aclRemove = Command.make(
  "remove",
  { server: Flags.server, channel: Flags.channel, user: userArg, json: Flags.json },
  (args) => runAck(args.server, args.json, AdminOps.make("acl_remove", args), args.user)
).pipe(Command.withDescription("Remove a user from a channel's members."))

const aclList = Command.make(
  "list",
  { server: Flags.server, channel: Flags.channel, json: Flags.json },
  (args) => runUsers(args.server, args.json, { type: "admin", op: AdminOps.make("acl_list", args) })
).pipe(Command.withDescription("List a channel's members, one username per line."))

/** @since 0.1.0 @category commands */
export const aclCommands = [aclAdd, aclRemove, aclList] as const

/** `conclave acl`. @since 0.1.0 @category commands */
export const acl = Command.make("acl").pipe(
  Command.withDescription("Manage a channel's member list (channel admin)."),
  Command.withSubcommands(aclCommands)
)

// ---- invite ------------------------------------------------------------------------------------

const inviteCreate = Command.make(
  "create",
  {
    server: Flags.server,
    channel: Flags.channel,
    uses: Options.text("uses").pipe(
      Options.withPseudoName("N"),
      Options.withSchema(Flags.UsesText),
      Options.optional,
      Options.withDescription("How many times the token can be redeemed, 1–4294967295 (default: unlimited).")
    ),
    expiresIn: Options.text("expires-in").pipe(
      Options.withPseudoName("DURATION"),
      Options.withSchema(Flags.DurationText),
      Options.optional,
      Options.withDescription("Expiry, e.g. 90 (seconds), 15m, 24h, 7d (default: never).")
    ),
    json: Flags.json
  },
  (args) =>
    Effect.gen(function*() {
      const url = yield* Ctx.parseUrl(args.server)
      const reply = yield* Remote.withSession(url, (conn) =>
        Remote.admin(
          conn,
          AdminOps.make("invite_create", {
            channel: args.channel,
            uses: Option.getOrNull(args.uses),
            expires_in_secs: Option.getOrNull(args.expiresIn)
          }),
          "invite_token"
        ))
      yield* args.json ? Output.json({ token: reply.token }) : Output.line(`invite token: ${reply.token}`)
    })
).pipe(Command.withDescription("Mint an invite token for a channel (channel admin)."))

const inviteRevoke = Command.make(
  "revoke",
  {
    server: Flags.server,
    token: Args.text({ name: "TOKEN" }).pipe(Args.withDescription("The token.")),
    json: Flags.json
  },
  (args) => runAck(args.server, args.json, AdminOps.make("invite_revoke", args), args.token)
).pipe(Command.withDescription("Revoke an invite token (always answers ok, whether or not the token existed)."))

const inviteList = Command.make(
  "list",
  { server: Flags.server, channel: Flags.channel, json: Flags.json },
  (args) =>
    Effect.gen(function*() {
      const url = yield* Ctx.parseUrl(args.server)
      const reply = yield* Remote.withSession(url, (conn) =>
        Remote.admin(conn, AdminOps.make("invite_list", args), "invite_list"))
      if (args.json) {
        return yield* Output.json({ invites: reply.invites })
      }
      for (const i of reply.invites) {
        yield* Output.line(
          `${i.token}\tuses: ${i.uses_remaining ?? "unlimited"}\texpires: ${i.expires_at ?? "never"}`
        )
      }
    })
).pipe(Command.withDescription("List a channel's outstanding invite tokens (channel admin)."))

/** @since 0.1.0 @category commands */
export const inviteCommands = [inviteCreate, inviteRevoke, inviteList] as const

/** `conclave invite`. @since 0.1.0 @category commands */
export const invite = Command.make("invite").pipe(
  Command.withDescription("Invite tokens for private channels."),
  Command.withSubcommands(inviteCommands)
)

// ---- presence and moderation -------------------------------------------------------------------

/** @since 0.1.0 @category rendering */
export const presenceLine = (channel: string | null, sessions: ReadonlyArray<Names.SessionPath>) =>
  `[${channel ?? "server"}] ${sessions.map(Names.renderPath).join(", ")}`.trimEnd()

/** `conclave who`. @since 0.1.0 @category commands */
export const who = Command.make(
  "who",
  {
    server: Flags.server,
    channel: Args.text({ name: "CHANNEL" }).pipe(
      Args.optional,
      Args.withDescription("Channel (default: server-wide).")
    ),
    json: Flags.json
  },
  (args) =>
    Effect.gen(function*() {
      const url = yield* Ctx.parseUrl(args.server)
      const reply = yield* Remote.withSession(url, (conn) =>
        Remote.call(conn, { type: "who", channel: Option.getOrNull(args.channel) }, "presence"))
      yield* args.json
        ? Output.json({ channel: reply.channel, sessions: reply.sessions })
        : Output.line(presenceLine(reply.channel, reply.sessions))
    })
).pipe(Command.withDescription("Show who is online: server-wide, or in one channel."))

/** `conclave kick`. @since 0.1.0 @category commands */
export const kick = Command.make(
  "kick",
  {
    server: Flags.server,
    channel: Flags.channel,
    target: Args.text({ name: "TARGET" }).pipe(
      Args.withDescription("A session path user/machine/session, or a username.")
    ),
    json: Flags.json
  },
  (args) => runAck(args.server, args.json, AdminOps.make("kick", args), args.target)
).pipe(Command.withDescription("Unsubscribe a session (or every session of a user) from a channel; it may rejoin."))

/** `conclave ban`. @since 0.1.0 @category commands */
export const ban = Command.make(
  "ban",
  { server: Flags.server, channel: Flags.channel, user: userArg, json: Flags.json },
  (args) => runAck(args.server, args.json, AdminOps.make("ban", args), args.user)
).pipe(Command.withDescription("Ban a user from a channel (any tier) and drop their subscriptions."))

/** `conclave unban`. @since 0.1.0 @category commands */
export const unban = Command.make(
  "unban",
  { server: Flags.server, channel: Flags.channel, user: userArg, json: Flags.json },
  (args) => runAck(args.server, args.json, AdminOps.make("unban", args), args.user)
).pipe(Command.withDescription("Lift a ban (grants no membership)."))

/** `conclave bans`. @since 0.1.0 @category commands */
export const bans = Command.make(
  "bans",
  { server: Flags.server, channel: Flags.channel, json: Flags.json },
  (args) => runUsers(args.server, args.json, { type: "admin", op: AdminOps.make("ban_list", args) })
).pipe(Command.withDescription("List the users banned from a channel."))

// ---- user --------------------------------------------------------------------------------------

const userList = Command.make(
  "list",
  { server: Flags.server, json: Flags.json },
  (args) => runUsers(args.server, args.json, { type: "list_users" })
).pipe(Command.withDescription("List every user on the server (server admins only)."))

const userRemove = Command.make(
  "remove",
  {
    server: Flags.server,
    username: Args.text({ name: "USERNAME" }).pipe(Args.withDescription("User to remove.")),
    json: Flags.json
  },
  (args) => runAck(args.server, args.json, AdminOps.make("user_remove", args), args.username)
).pipe(
  Command.withDescription(
    "Remove a user with their machines and the channels they created (server admins only)."
  )
)

/** @since 0.1.0 @category commands */
export const userCommands = [userList, userRemove] as const

/** `conclave user`. @since 0.1.0 @category commands */
export const user = Command.make("user").pipe(
  Command.withDescription("Server-wide user administration (server admins only)."),
  Command.withSubcommands(userCommands)
)
