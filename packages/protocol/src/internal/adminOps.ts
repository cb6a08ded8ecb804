/**
 * The admin operations of the `admin` frame (SPEC §2.4), discriminated by `kind`; re-exported by
 * `Frames`.
 *
 * @internal
 */
import * as Schema from "effect/Schema"
import { Base64UrlString } from "../Base64Url.js"
import { nullable, U32, Visibility } from "./shapes.js"

// ---------------------------------------------------------------------------------------------
// Admin operations (SPEC §2.4)
// ---------------------------------------------------------------------------------------------

const op = <K extends string, F extends Schema.Struct.Fields>(kind: K, fields: F) =>
  Schema.Struct({ kind: Schema.Literal(kind), ...fields })

/** @since 0.1.0 @category admin */
export const CreateChannel = op("create_channel", { name: Schema.String, visibility: Visibility })
/** @since 0.1.0 @category admin */
export const DeleteChannel = op("delete_channel", { name: Schema.String })
/** @since 0.1.0 @category admin */
export const RenameChannel = op("rename_channel", { name: Schema.String, new_name: Schema.String })
/** @since 0.1.0 @category admin */
export const SetVisibility = op("set_visibility", { name: Schema.String, visibility: Visibility })
/** @since 0.1.0 @category admin */
export const AclAdd = op("acl_add", { channel: Schema.String, user: Schema.String })
/** @since 0.1.0 @category admin */
export const AclRemove = op("acl_remove", { channel: Schema.String, user: Schema.String })
// Any finite integer-valued number, not only safe integers: `Schema.int()` would refuse 1e17 and so
// close the connection where SPEC §2.13 wants the handler to answer `malformed_frame`.
const ExpirySeconds = Schema.Number.pipe(
  Schema.filter((n) => Number.isInteger(n) || "expected an integer-valued number", {
    title: "integer",
    jsonSchema: { type: "integer" },
    arbitrary: () => (fc) => fc.oneof(fc.nat(), fc.constantFrom(2 ** 53, 1e17, 1e300))
  }),
  Schema.nonNegative()
)

/**
 * `expires_in_secs` accepts any non-negative integer: an unrepresentable expiry is answered by the
 * handler with `malformed_frame`, never by closing the connection (SPEC §2.13).
 *
 * @since 0.1.0
 * @category admin
 */
export const InviteCreate = op("invite_create", {
  channel: Schema.String,
  uses: nullable(U32),
  expires_in_secs: nullable(ExpirySeconds)
})
/** @since 0.1.0 @category admin */
export const InviteRevoke = op("invite_revoke", { token: Schema.String })
/** `target` is a session path string or a username. @since 0.1.0 @category admin */
export const Kick = op("kick", { channel: Schema.String, target: Schema.String })
/** @since 0.1.0 @category admin */
export const Ban = op("ban", { channel: Schema.String, user: Schema.String })
/** @since 0.1.0 @category admin */
export const UserRemove = op("user_remove", { username: Schema.String })
/** @since 0.1.0 @category admin */
export const MachineRemove = op("machine_remove", { name: Schema.String })
/** @since 0.1.0 @category admin */
export const MachineAdd = op("machine_add", { name: Schema.String, pubkey: Base64UrlString })
/** @since 0.1.0 @category admin */
export const AclList = op("acl_list", { channel: Schema.String })
/** @since 0.1.0 @category admin */
export const Unban = op("unban", { channel: Schema.String, user: Schema.String })
/** @since 0.1.0 @category admin */
export const BanList = op("ban_list", { channel: Schema.String })
/** @since 0.1.0 @category admin */
export const InviteList = op("invite_list", { channel: Schema.String })

/** @since 0.1.0 @category admin */
export const AdminOp = Schema.Union(
  CreateChannel,
  DeleteChannel,
  RenameChannel,
  SetVisibility,
  AclAdd,
  AclRemove,
  InviteCreate,
  InviteRevoke,
  Kick,
  Ban,
  UserRemove,
  MachineRemove,
  MachineAdd,
  AclList,
  Unban,
  BanList,
  InviteList
).annotations({ identifier: "AdminOp" })
/** @since 0.1.0 @category admin */
export type AdminOp = typeof AdminOp.Type
/** @since 0.1.0 @category admin */
export type AdminOpKind = AdminOp["kind"]
/** @since 0.1.0 @category admin */
export const ADMIN_OP_KINDS: ReadonlyArray<AdminOpKind> = AdminOp.members.map((m) => m.fields.kind.literals[0])
