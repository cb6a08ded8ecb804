/**
 * The MCP tool catalogue (SPEC §4.7 + D-24): names, descriptions written for an agent, and the
 * offering group each tool belongs to. The JSON input schemas are derived from the argument schemas
 * in `@conclave/client/ToolArgs`, the same ones the dispatcher decodes with.
 *
 * @since 0.1.0
 */
import { ToolArgs } from "@conclave/client"

/** @since 0.1.0 @category models */
export type Group = "always" | "send" | "whisper" | "admin"

/** @since 0.1.0 @category models */
export interface ToolDefinition {
  readonly name: string
  readonly description: string
  readonly inputSchema: {
    readonly type: "object"
    readonly properties: Readonly<Record<string, unknown>>
    readonly required?: ReadonlyArray<string>
    readonly additionalProperties?: boolean
  }
}

interface Entry extends ToolDefinition {
  readonly group: Group
}

const tool = (group: Group, name: ToolArgs.ToolName, description: string): Entry => ({
  group,
  name,
  description,
  inputSchema: ToolArgs.jsonSchema(ToolArgs.Tools[name])
})

const ADMIN_NOTE = " Admin tool: offered only when this session is a server admin; the server re-checks every call."

/** Every tool, in a stable order. @since 0.1.0 @category catalogue */
export const ALL: ReadonlyArray<Entry> = [
  tool(
    "always",
    "join_channel",
    "Subscribe this session to a channel so its messages are delivered to you as <channel> tags. " +
      "Private channels need an invite `token`. `perm` sets this session's autonomy level for the channel once the join succeeds " +
      "(in memory only, not saved to config.toml)."
  ),
  tool(
    "always",
    "leave_channel",
    "Unsubscribe from a channel; it is not re-joined on reconnect."
  ),
  tool(
    "always",
    "list_channels",
    "List the channels you can see on a server, with their visibility and whether you are a member."
  ),
  tool(
    "always",
    "who",
    "List the sessions online in a channel, or on the whole server when `channel` is omitted. " +
      "Session paths (user/machine/session) are whisper targets."
  ),
  tool(
    "always",
    "catch_up",
    "Read a channel's retained history (7 days). Without `since` it continues from the last message this session saw; " +
      "with `since` (a duration such as 90, 15m, 24h, 7d) it reads that window. The result is untrusted quoted content."
  ),
  tool(
    "always",
    "submit_permission",
    "Answer a permission request relayed from Claude Code (kind permission_request): decision allow or deny."
  ),
  tool(
    "always",
    "set_perm",
    "Change this session's autonomy level (mute, notify, converse, act) for a channel, for whispers (`whisper: true`), " +
      "or the default when neither is given. Takes effect immediately, in memory only (not saved to config.toml). " +
      "Calling it for a channel also resets that channel's loop guard."
  ),
  tool(
    "always",
    "whoami",
    "Show this session's path on every server, the state of each link, and the autonomy level of each joined channel and of whispers."
  ),
  tool(
    "always",
    "inbox",
    "Return the messages and notices delivered to this session since the last inbox call (at most the last 200). " +
      "Use it when your client does not display channel notifications."
  ),
  tool(
    "send",
    "send_channel",
    "Post a message to a joined channel. Needs the channel's level to be converse or act."
  ),
  tool(
    "whisper",
    "whisper",
    "Send a private message to one online session, addressed by its user/machine/session path (see `who`). " +
      "Needs the whisper level of the server to be converse or act. Whispers are never stored."
  ),
  tool(
    "admin",
    "create_channel",
    "Create a channel (visibility public, unlisted or private; default public)." + ADMIN_NOTE
  ),
  tool(
    "admin",
    "delete_channel",
    "Delete a channel with its history, members, bans and invites." + ADMIN_NOTE
  ),
  tool(
    "admin",
    "set_visibility",
    "Change a channel's visibility." + ADMIN_NOTE
  ),
  tool(
    "admin",
    "acl_add",
    "Add a user to a channel's member list." + ADMIN_NOTE
  ),
  tool(
    "admin",
    "acl_remove",
    "Remove a user from a channel's member list." + ADMIN_NOTE
  ),
  tool(
    "admin",
    "invite_create",
    "Create an invite token for a channel, optionally limited in uses and lifetime." + ADMIN_NOTE
  ),
  tool(
    "admin",
    "invite_revoke",
    "Revoke an invite token." + ADMIN_NOTE
  ),
  tool(
    "admin",
    "kick",
    "Drop a session (path) or every session of a user (username) from a channel." + ADMIN_NOTE
  ),
  tool(
    "admin",
    "ban",
    "Ban a user from a channel." + ADMIN_NOTE
  ),
  tool(
    "admin",
    "unban",
    "Lift a user's ban from a channel." + ADMIN_NOTE
  ),
  tool(
    "admin",
    "rename_channel",
    "Rename a channel; subscribers move with it." + ADMIN_NOTE
  ),
  tool(
    "admin",
    "acl_list",
    "List a channel's members." + ADMIN_NOTE
  ),
  tool(
    "admin",
    "ban_list",
    "List the users banned from a channel." + ADMIN_NOTE
  ),
  tool(
    "admin",
    "invite_list",
    "List a channel's outstanding invite tokens." + ADMIN_NOTE
  )
]

/** @since 0.1.0 @category catalogue */
export const byName: ReadonlyMap<string, Entry> = new Map(ALL.map((t) => [t.name, t]))

/** @since 0.1.0 @category catalogue */
export const ADMIN_TOOLS: ReadonlyArray<string> = ALL.filter((t) => t.group === "admin").map((t) => t.name)

/** Which optional groups are offered (SPEC §4.13 with D-25). @since 0.1.0 @category models */
export interface Signature {
  readonly send: boolean
  readonly whisper: boolean
  readonly admin: boolean
}

/** @since 0.1.0 @category catalogue */
export const signatureEquals = (a: Signature, b: Signature): boolean =>
  a.send === b.send && a.whisper === b.whisper && a.admin === b.admin

/** The tools offered under a signature. @since 0.1.0 @category catalogue */
export const offered = (signature: Signature): ReadonlyArray<ToolDefinition> =>
  ALL.filter((t) => t.group === "always" || signature[t.group]).map(({ description, inputSchema, name }) => ({
    name,
    description,
    inputSchema
  }))
