/**
 * The complete wire contract (SPEC §2.2–§2.5, §2.13 with DECISIONS D-1 to D-8): every frame is a
 * JSON object discriminated by `type`; admin ops, payloads and errors by `kind`.
 *
 * Optional values are JSON `null` when absent and a missing key decodes as `null` (SPEC §2.13).
 * Request ids (D-2) are the exception: absent stays absent, and `"id": null` decodes as absent.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { Base64UrlString } from "./Base64Url.js"
import { AdminOp, type AdminOpKind } from "./internal/adminOps.js"
import {
  ChannelInfo,
  ClientKind,
  HistoryMessage,
  id,
  Int,
  InviteInfo,
  MachineInfo,
  NonNegativeInt,
  nullable,
  Origin,
  Payload,
  PositiveInt,
  U32
} from "./internal/shapes.js"
import { SessionPath } from "./Names.js"

// The shared shapes (internal/shapes.ts) and the admin operations (internal/adminOps.ts).
export {
  AclAdd,
  AclList,
  AclRemove,
  ADMIN_OP_KINDS,
  AdminOp,
  Ban,
  BanList,
  CreateChannel,
  DeleteChannel,
  InviteCreate,
  InviteList,
  InviteRevoke,
  Kick,
  MachineAdd,
  MachineRemove,
  RenameChannel,
  SetVisibility,
  Unban,
  UserRemove
} from "./internal/adminOps.js"
export type { AdminOpKind } from "./internal/adminOps.js"
export {
  ChannelInfo,
  ClientKind,
  EncryptedPayload,
  HistoryMessage,
  Int,
  InviteInfo,
  MachineInfo,
  NonNegativeInt,
  Origin,
  Payload,
  PlainPayload,
  PositiveInt,
  RequestId,
  U32,
  Visibility
} from "./internal/shapes.js"

// ---------------------------------------------------------------------------------------------
// Errors (SPEC §2.5 + D-8)
// ---------------------------------------------------------------------------------------------

const messageError = <K extends string>(kind: K) =>
  Schema.Struct({ kind: Schema.Literal(kind), message: Schema.String })

/** @since 0.1.0 @category errors */
export const ProtocolError = Schema.Union(
  Schema.Struct({ kind: Schema.Literal("version_mismatch"), ours: U32, theirs: U32 }),
  messageError("malformed_frame"),
  messageError("unauthorized"),
  messageError("not_found"),
  messageError("internal"),
  messageError("conflict"),
  Schema.Struct({ kind: Schema.Literal("rate_limited"), message: Schema.String, retry_after_ms: NonNegativeInt }),
  Schema.Struct({ kind: Schema.Literal("too_large"), message: Schema.String, limit: NonNegativeInt }),
  // D-42: a backend the server needs is out of reach; nothing was stored, retry after the delay
  Schema.Struct({ kind: Schema.Literal("unavailable"), message: Schema.String, retry_after_ms: NonNegativeInt })
).annotations({ identifier: "ProtocolError" })
/** @since 0.1.0 @category errors */
export type ProtocolError = typeof ProtocolError.Type
/** @since 0.1.0 @category errors */
export type ProtocolErrorKind = ProtocolError["kind"]

// ---------------------------------------------------------------------------------------------
// Client → server frames
// ---------------------------------------------------------------------------------------------

const frame = <T extends string, F extends Schema.Struct.Fields>(type: T, fields: F) =>
  Schema.Struct({ type: Schema.Literal(type), ...fields })

/**
 * First frame of every connection. `host` is the authority the client dialed and `client` what it
 * is (D-3, D-6); both decode leniently (missing → null / `"bridge"`).
 *
 * @since 0.1.0
 * @category client frames
 */
export const Hello = frame("hello", {
  protocol_version: U32,
  session: Schema.String,
  host: nullable(Schema.String),
  client: Schema.optionalWith(ClientKind, { default: () => "bridge" as const, nullable: true })
})
/** @since 0.1.0 @category client frames */
export const Register = frame("register", { username: Schema.String, machine: Schema.String, pubkey: Base64UrlString })
/** @since 0.1.0 @category client frames */
export const Auth = frame("auth", { pubkey: Base64UrlString, signature: Base64UrlString })
/**
 * A console enrollment code (D-51): 24 random bytes as base64url, single-use, valid 10 minutes.
 *
 * @since 0.1.0
 * @category values
 */
export const EnrollCode = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9_-]{32}$/),
  Schema.annotations({ identifier: "EnrollCode", description: "32 base64url characters" })
)
/**
 * In place of `register` (D-51): a browser enrolls its new key as the next `browser-N` machine of the
 * user who created `code`, then proves possession with the `auth` that follows (same key).
 *
 * @since 0.1.0
 * @category client frames
 */
export const Enroll = frame("enroll", { code: EnrollCode, pubkey: Base64UrlString })
/** Create a console enrollment code for the caller's user (D-51). @since 0.1.0 @category client frames */
export const EnrollCreate = frame("enroll_create", { id })
/** @since 0.1.0 @category client frames */
export const Join = frame("join", { id, channel: Schema.String, token: nullable(Schema.String) })
/** @since 0.1.0 @category client frames */
export const Leave = frame("leave", { id, channel: Schema.String })
/** @since 0.1.0 @category client frames */
export const Who = frame("who", { id, channel: nullable(Schema.String) })
/** @since 0.1.0 @category client frames */
export const Admin = frame("admin", { id, op: AdminOp })
/** A post; any client-supplied `from` is ignored and dropped (D-2). @since 0.1.0 @category client frames */
export const Post = frame("channel_msg", {
  id,
  channel: Schema.String,
  payload: Payload,
  reply_to: nullable(NonNegativeInt)
})
/** @since 0.1.0 @category client frames */
export const WhisperRequest = frame("whisper", { id, target: SessionPath, payload: Payload })
/** @since 0.1.0 @category client frames */
export const ListChannels = frame("list_channels", { id })
/** @since 0.1.0 @category client frames */
export const Ping = frame("ping", { id })
/** @since 0.1.0 @category client frames */
export const ListMachines = frame("list_machines", { id })
/** @since 0.1.0 @category client frames */
export const ListUsers = frame("list_users", { id })
/**
 * History page: exactly one of `since_seq` (exclusive; 0 = everything retained), `since_ms` (D-4)
 * or `before_seq`. The first two read forward: the oldest page after the point. `before_seq`
 * (1 or more, exclusive) reads backward for scroll-back: the newest page of the messages with a
 * lower seq — still oldest first, with `more: true` while older ones remain (the next page is
 * `before_seq` = its first row's seq). Any seq above the channel's newest, e.g. 2^53 − 1, reads
 * the newest page. Pages are capped in rows and bytes either way (issue 22).
 *
 * @since 0.1.0
 * @category client frames
 */
export const ReadSince = frame("read_since", {
  id,
  channel: Schema.String,
  since_seq: nullable(NonNegativeInt),
  since_ms: nullable(Int),
  before_seq: nullable(PositiveInt)
})

/** A permission verdict. @since 0.1.0 @category values */
export const PermissionBehavior = Schema.Literal("allow", "deny")
/** @since 0.1.0 @category values */
export type PermissionBehavior = typeof PermissionBehavior.Type

/**
 * A bridge relays one of its Claude Code session's permission requests (SPEC §4.5.3) to the consoles
 * of its own user; the ack's `detail` says how many console sessions it reached. `request_id` is
 * bounded by `Validate` (1 to 64 characters), `tool_name` + `description` by the body limit.
 *
 * @since 0.1.0
 * @category client frames
 */
export const PermissionRequest = frame("permission_request", {
  id,
  request_id: Schema.String,
  tool_name: Schema.String,
  description: Schema.String
})
/**
 * Answer a relayed permission request of `target`, a session of the caller's own user.
 *
 * @since 0.1.0
 * @category client frames
 */
export const PermissionVerdict = frame("permission_verdict", {
  id,
  target: SessionPath,
  request_id: Schema.String,
  behavior: PermissionBehavior
})

/** @since 0.1.0 @category client frames */
export const ClientFrame = Schema.Union(
  Hello,
  Register,
  Auth,
  Enroll,
  Join,
  Leave,
  Who,
  Admin,
  Post,
  WhisperRequest,
  ListChannels,
  Ping,
  ListMachines,
  ListUsers,
  ReadSince,
  EnrollCreate,
  PermissionRequest,
  PermissionVerdict
).annotations({ identifier: "ClientFrame" })
/** @since 0.1.0 @category client frames */
export type ClientFrame = typeof ClientFrame.Type
/** @since 0.1.0 @category client frames */
export type ClientFrameType = ClientFrame["type"]
/** Client frames that expect exactly one reply. @since 0.1.0 @category client frames */
export type Request = Exclude<ClientFrame, { readonly type: "hello" | "register" | "auth" | "enroll" }>

// ---------------------------------------------------------------------------------------------
// Server → client frames
// ---------------------------------------------------------------------------------------------

/** @since 0.1.0 @category server frames */
export const Challenge = frame("challenge", { nonce: Base64UrlString })
/** @since 0.1.0 @category server frames */
export const Established = frame("established", { path: SessionPath })
/** @since 0.1.0 @category server frames */
export const ServerInfo = frame("server_info", { admin: Schema.Boolean })
/** @since 0.1.0 @category server frames */
export const Joined = frame("joined", { id, channel: Schema.String })
/** `seq` is the stored message's seq when the ack answers a post, else null (D-4). @since 0.1.0 @category server frames */
export const Ack = frame("ack", { id, detail: nullable(Schema.String), seq: nullable(NonNegativeInt) })
/** @since 0.1.0 @category server frames */
export const Presence = frame("presence", { id, channel: nullable(Schema.String), sessions: Schema.Array(SessionPath) })
/** @since 0.1.0 @category server frames */
export const ErrorFrame = frame("error", { id, error: ProtocolError })
/** @since 0.1.0 @category server frames */
export const ChannelList = frame("channel_list", { id, channels: Schema.Array(ChannelInfo) })
/** @since 0.1.0 @category server frames */
export const InviteToken = frame("invite_token", { id, token: Schema.String })
/** @since 0.1.0 @category server frames */
export const Pong = frame("pong", { id })
/** @since 0.1.0 @category server frames */
export const MachineList = frame("machine_list", { id, machines: Schema.Array(MachineInfo) })
/** Answers `list_users`, `acl_list` and `ban_list`. @since 0.1.0 @category server frames */
export const UserList = frame("user_list", { id, users: Schema.Array(Schema.String) })
/** @since 0.1.0 @category server frames */
export const InviteListFrame = frame("invite_list", { id, invites: Schema.Array(InviteInfo) })
/** @since 0.1.0 @category server frames */
export const History = frame("history", {
  id,
  channel: Schema.String,
  messages: Schema.Array(HistoryMessage),
  more: Schema.optionalWith(Schema.Boolean, { default: () => false, nullable: true })
})
/**
 * Answers `enroll_create`: the single-use code and when it stops being redeemable (ISO 8601).
 *
 * @since 0.1.0
 * @category server frames
 */
export const Enrollment = frame("enrollment", { id, code: EnrollCode, expires_at: Schema.String })
/** A fanned-out channel message, `from` stamped by the server. @since 0.1.0 @category server frames */
export const Delivery = frame("channel_msg", {
  channel: Schema.String,
  from: SessionPath,
  payload: Payload,
  seq: NonNegativeInt,
  origin: Origin,
  reply_to: nullable(NonNegativeInt)
})
/** A delivered whisper. @since 0.1.0 @category server frames */
export const WhisperDelivery = frame("whisper", {
  from: SessionPath,
  target: SessionPath,
  payload: Payload,
  origin: Schema.optionalWith(Origin, { default: () => "agent" as const, nullable: true })
})
/** A relayed permission request, `from` the asking session (stamped by the server). @since 0.1.0 @category server frames */
export const PermissionRequestDelivery = frame("permission_request", {
  from: SessionPath,
  request_id: Schema.String,
  tool_name: Schema.String,
  description: Schema.String
})
/** A verdict on one of this session's relayed requests, `from` the answering session. @since 0.1.0 @category server frames */
export const PermissionVerdictDelivery = frame("permission_verdict", {
  from: SessionPath,
  request_id: Schema.String,
  behavior: PermissionBehavior
})
/** @since 0.1.0 @category server frames */
export const UnsubscribeReason = Schema.Literal("kicked", "banned", "removed", "deleted", "renamed")
/** @since 0.1.0 @category server frames */
export type UnsubscribeReason = typeof UnsubscribeReason.Type
/** A live subscription ended (or, for `renamed`, moved to `new_name`) (D-7). @since 0.1.0 @category server frames */
export const Unsubscribed = frame("unsubscribed", {
  channel: Schema.String,
  reason: UnsubscribeReason,
  new_name: nullable(Schema.String)
})
/** The server is draining; treat like a dropped link (D-19). @since 0.1.0 @category server frames */
export const Shutdown = frame("shutdown", { reason: Schema.String })

/** @since 0.1.0 @category server frames */
export const ServerFrame = Schema.Union(
  Challenge,
  Established,
  ServerInfo,
  Joined,
  Ack,
  Presence,
  ErrorFrame,
  ChannelList,
  InviteToken,
  Pong,
  MachineList,
  UserList,
  InviteListFrame,
  History,
  Enrollment,
  Delivery,
  WhisperDelivery,
  Unsubscribed,
  Shutdown,
  PermissionRequestDelivery,
  PermissionVerdictDelivery
).annotations({ identifier: "ServerFrame" })
/** @since 0.1.0 @category server frames */
export type ServerFrame = typeof ServerFrame.Type
/** @since 0.1.0 @category server frames */
export type ServerFrameType = ServerFrame["type"]
/** Server frames that answer a request (and echo its `id`). @since 0.1.0 @category server frames */
export type Reply = Extract<
  ServerFrame,
  {
    readonly type:
      | "joined"
      | "ack"
      | "presence"
      | "error"
      | "channel_list"
      | "invite_token"
      | "pong"
      | "machine_list"
      | "user_list"
      | "invite_list"
      | "history"
      | "enrollment"
  }
>

/** @since 0.1.0 @category type helpers */
export type ClientFrameOf<T extends ClientFrameType> = Extract<ClientFrame, { readonly type: T }>
/** @since 0.1.0 @category type helpers */
export type ServerFrameOf<T extends ServerFrameType> = Extract<ServerFrame, { readonly type: T }>
/** @since 0.1.0 @category type helpers */
export type AdminOpOf<K extends AdminOpKind> = Extract<AdminOp, { readonly kind: K }>

/** Every frame `type` in the protocol, request and reply alike. @since 0.1.0 @category constants */
export const FRAME_TYPES: ReadonlyArray<ClientFrameType | ServerFrameType> = [
  ...new Set([
    ...ClientFrame.members.map((m) => m.fields.type.literals[0]),
    ...ServerFrame.members.map((m) => m.fields.type.literals[0])
  ])
]
