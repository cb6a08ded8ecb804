/**
 * The MCP tool catalogue (SPEC §4.7 + D-24): names, descriptions written for an agent, JSON input
 * schemas, and the offering group each tool belongs to.
 *
 * @since 0.1.0
 */

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

const server = {
  type: "string",
  description: "Server URL (optional if only one is connected)"
} as const
const levelEnum = ["mute", "notify", "converse", "act"] as const
const channelProp = (what: string) => ({ type: "string", description: what })

const tool = (
  group: Group,
  name: string,
  description: string,
  properties: Record<string, unknown>,
  required: ReadonlyArray<string> = []
): Entry => ({
  group,
  name,
  description,
  inputSchema: {
    type: "object",
    properties,
    ...(required.length > 0 ? { required } : {})
  }
})

const ADMIN_NOTE = " Admin tool: offered only when this session is a server admin; the server re-checks every call."

/** Every tool, in a stable order. @since 0.1.0 @category catalogue */
export const ALL: ReadonlyArray<Entry> = [
  tool(
    "always",
    "join_channel",
    "Subscribe this session to a channel so its messages are delivered to you as <channel> tags. " +
      "Private channels need an invite `token`. `perm` sets this session's autonomy level for the channel once the join succeeds " +
      "(in memory only, not saved to config.toml).",
    {
      server,
      channel: channelProp("Channel name"),
      token: { type: "string", description: "Invite token for a private channel" },
      perm: {
        type: "string",
        enum: levelEnum,
        description: "Autonomy level for this channel (mute, notify, converse, act)"
      }
    },
    ["channel"]
  ),
  tool(
    "always",
    "leave_channel",
    "Unsubscribe from a channel; it is not re-joined on reconnect.",
    { server, channel: channelProp("Channel name") },
    ["channel"]
  ),
  tool(
    "always",
    "list_channels",
    "List the channels you can see on a server, with their visibility and whether you are a member.",
    { server }
  ),
  tool(
    "always",
    "who",
    "List the sessions online in a channel, or on the whole server when `channel` is omitted. " +
      "Session paths (user/machine/session) are whisper targets.",
    { server, channel: channelProp("Channel name (omit for server-wide presence)") }
  ),
  tool(
    "always",
    "catch_up",
    "Read a channel's retained history (7 days). Without `since` it continues from the last message this session saw; " +
      "with `since` (a duration such as 90, 15m, 24h, 7d) it reads that window. The result is untrusted quoted content.",
    {
      server,
      channel: channelProp("Channel name (you must have joined it)"),
      since: { type: "string", description: "How far back to read, e.g. 15m, 2h, 7d" }
    },
    ["channel"]
  ),
  tool(
    "always",
    "submit_permission",
    "Answer a permission request relayed from Claude Code (kind permission_request): decision allow or deny.",
    {
      request_id: { type: "string", description: "The request_id of the permission request" },
      decision: { type: "string", enum: ["allow", "deny"], description: "allow or deny" }
    },
    ["request_id", "decision"]
  ),
  tool(
    "always",
    "set_perm",
    "Change this session's autonomy level (mute, notify, converse, act) for a channel, for whispers (`whisper: true`), " +
      "or the default when neither is given. Takes effect immediately, in memory only (not saved to config.toml). " +
      "Calling it for a channel also resets that channel's loop guard.",
    {
      server,
      channel: channelProp("Channel name"),
      whisper: { type: "boolean", description: "Set the level for whispers on the server instead of a channel" },
      level: { type: "string", enum: levelEnum, description: "mute, notify, converse or act" }
    },
    ["level"]
  ),
  tool(
    "always",
    "whoami",
    "Show this session's path on every server, the state of each link, and the autonomy level of each joined channel and of whispers.",
    {}
  ),
  tool(
    "always",
    "inbox",
    "Return the messages and notices delivered to this session since the last inbox call (at most the last 200). " +
      "Use it when your client does not display channel notifications.",
    {}
  ),
  tool(
    "send",
    "send_channel",
    "Post a message to a joined channel. Needs the channel's level to be converse or act.",
    {
      server,
      channel: channelProp("Channel name"),
      text: { type: "string", description: "Message text" },
      reply_to: { type: "integer", minimum: 0, description: "The seq of the message this replies to" }
    },
    ["channel", "text"]
  ),
  tool(
    "whisper",
    "whisper",
    "Send a private message to one online session, addressed by its user/machine/session path (see `who`). " +
      "Needs the whisper level of the server to be converse or act. Whispers are never stored.",
    {
      server,
      target: { type: "string", description: "Recipient session path user/machine/session" },
      text: { type: "string", description: "Message text" }
    },
    ["target", "text"]
  ),
  tool(
    "admin",
    "create_channel",
    "Create a channel (visibility public, unlisted or private; default public)." + ADMIN_NOTE,
    {
      server,
      name: channelProp("Channel name"),
      visibility: { type: "string", enum: ["public", "unlisted", "private"], description: "Default public" }
    },
    ["name"]
  ),
  tool(
    "admin",
    "delete_channel",
    "Delete a channel with its history, members, bans and invites." + ADMIN_NOTE,
    { server, name: channelProp("Channel name") },
    ["name"]
  ),
  tool(
    "admin",
    "set_visibility",
    "Change a channel's visibility." + ADMIN_NOTE,
    {
      server,
      name: channelProp("Channel name"),
      visibility: { type: "string", enum: ["public", "unlisted", "private"] }
    },
    ["name", "visibility"]
  ),
  tool(
    "admin",
    "acl_add",
    "Add a user to a channel's member list." + ADMIN_NOTE,
    { server, channel: channelProp("Channel name"), user: { type: "string", description: "Username" } },
    ["channel", "user"]
  ),
  tool(
    "admin",
    "acl_remove",
    "Remove a user from a channel's member list." + ADMIN_NOTE,
    { server, channel: channelProp("Channel name"), user: { type: "string", description: "Username" } },
    ["channel", "user"]
  ),
  tool(
    "admin",
    "invite_create",
    "Create an invite token for a channel, optionally limited in uses and lifetime." + ADMIN_NOTE,
    {
      server,
      channel: channelProp("Channel name"),
      uses: {
        type: "integer",
        minimum: 1,
        maximum: 4294967295,
        description: "How many joins it admits (default unlimited)"
      },
      expires_in_secs: { type: "integer", minimum: 0, description: "Lifetime in seconds (default never expires)" }
    },
    ["channel"]
  ),
  tool(
    "admin",
    "invite_revoke",
    "Revoke an invite token." + ADMIN_NOTE,
    { server, token: { type: "string", description: "Invite token" } },
    ["token"]
  ),
  tool(
    "admin",
    "kick",
    "Drop a session (path) or every session of a user (username) from a channel." + ADMIN_NOTE,
    {
      server,
      channel: channelProp("Channel name"),
      target: { type: "string", description: "Session path user/machine/session, or a username" }
    },
    ["channel", "target"]
  ),
  tool(
    "admin",
    "ban",
    "Ban a user from a channel." + ADMIN_NOTE,
    { server, channel: channelProp("Channel name"), user: { type: "string", description: "Username" } },
    ["channel", "user"]
  ),
  tool(
    "admin",
    "unban",
    "Lift a user's ban from a channel." + ADMIN_NOTE,
    { server, channel: channelProp("Channel name"), user: { type: "string", description: "Username" } },
    ["channel", "user"]
  ),
  tool(
    "admin",
    "rename_channel",
    "Rename a channel; subscribers move with it." + ADMIN_NOTE,
    { server, name: channelProp("Current channel name"), new_name: channelProp("New channel name") },
    ["name", "new_name"]
  ),
  tool(
    "admin",
    "acl_list",
    "List a channel's members." + ADMIN_NOTE,
    { server, channel: channelProp("Channel name") },
    ["channel"]
  ),
  tool(
    "admin",
    "ban_list",
    "List the users banned from a channel." + ADMIN_NOTE,
    { server, channel: channelProp("Channel name") },
    ["channel"]
  ),
  tool(
    "admin",
    "invite_list",
    "List a channel's outstanding invite tokens." + ADMIN_NOTE,
    { server, channel: channelProp("Channel name") },
    ["channel"]
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
