/**
 * The 14 admin tools (SPEC §4.7, §2.4): each decodes its arguments, checks that this session is a
 * server admin on the link, builds the op with the shared builder and renders the reply.
 *
 * @since 0.1.0
 */
import { AdminOps, type ToolArgs } from "@conclave/client"
import type { Frames } from "@conclave/protocol"
import * as Effect from "effect/Effect"
import type { Link } from "./Links.js"
import { ToolError } from "./ToolError.js"
import { ackText, decode, type Handler, type Kit, request, resolveServer } from "./ToolKit.js"

type AdminTool = ToolArgs.ToolName & AdminOps.Kind

type Render = (kit: Kit, op: Frames.AdminOp, link: Link) => Effect.Effect<string, ToolError>

const gate = (kit: Kit, name: AdminTool, render: Render): Handler => (raw) =>
  Effect.gen(function*() {
    const s = yield* resolveServer(kit, raw)
    if (!s.admin) return yield* new ToolError({ text: `not an admin on \`${s.url}\`` })
    const args = yield* decode(name, raw)
    const op = AdminOps.make(name, args as AdminOps.Args<typeof name>)
    return yield* render(kit, op, s)
  })

const ack: Render = (kit, op, link) =>
  request(kit, link, { type: "admin", op }, "ack", "invite_token").pipe(Effect.map((reply) => ackText(reply)))

const users: Render = (kit, op, link) =>
  request(kit, link, { type: "admin", op }, "user_list").pipe(
    Effect.map((reply) => (reply.users.length === 0 ? "nobody" : reply.users.join(", ")))
  )

const invites: Render = (kit, op, link) =>
  request(kit, link, { type: "admin", op }, "invite_list").pipe(
    Effect.map((reply) =>
      reply.invites.length === 0
        ? "no outstanding invites"
        : reply.invites.map((i) =>
          `${i.token} (uses remaining: ${i.uses_remaining ?? "unlimited"}, expires: ${i.expires_at ?? "never"})`
        ).join("\n")
    )
  )

const RENDER: Readonly<Record<AdminTool, Render>> = {
  create_channel: ack,
  delete_channel: ack,
  set_visibility: ack,
  acl_add: ack,
  acl_remove: ack,
  invite_create: ack,
  invite_revoke: ack,
  kick: ack,
  ban: ack,
  unban: ack,
  rename_channel: ack,
  acl_list: users,
  ban_list: users,
  invite_list: invites
}

/** @since 0.1.0 @category handlers */
export const make = (kit: Kit): Readonly<Record<string, Handler>> =>
  Object.fromEntries(
    (Object.keys(RENDER) as Array<AdminTool>).map((name) => [name, gate(kit, name, RENDER[name])])
  )
