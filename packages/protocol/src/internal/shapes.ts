/**
 * The shapes every frame is built from (SPEC §2.2, §2.13): numbers, ids, visibility, origin,
 * payloads and the rows lists carry; re-exported by `Frames`.
 *
 * @internal
 */
import * as Schema from "effect/Schema"
import { Base64UrlString } from "../Base64Url.js"
import { MAX_DATE_MS, REQUEST_ID_MAX_LENGTH, U32_MAX } from "../Limits.js"
import { SessionPath } from "../Names.js"

/** An optional value: JSON `null` when absent, and a missing key decodes as `null` (SPEC §2.13). */
export const nullable = <S extends Schema.Schema.Any>(schema: S) =>
  Schema.optionalWith(Schema.NullOr(schema), { default: () => null })

/** @since 0.1.0 @category values */
export const Int = Schema.Number.pipe(Schema.int(), Schema.between(-MAX_DATE_MS, MAX_DATE_MS))
/** @since 0.1.0 @category values */
export const NonNegativeInt = Schema.Number.pipe(Schema.int(), Schema.between(0, Number.MAX_SAFE_INTEGER))
/** A seq that names a message: 1 or more (seqs start at 1 per channel). @since 0.1.0 @category values */
export const PositiveInt = Schema.Number.pipe(Schema.int(), Schema.between(1, Number.MAX_SAFE_INTEGER))
/** @since 0.1.0 @category values */
export const U32 = Schema.Number.pipe(Schema.int(), Schema.between(0, U32_MAX))

/** A client-chosen request id, copied onto the one reply (D-2). @since 0.1.0 @category values */
export const RequestId = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(REQUEST_ID_MAX_LENGTH))
/** A request id (D-2): absent stays absent, `"id": null` decodes as absent. */
export const id = Schema.optionalWith(RequestId, { nullable: true })

/** @since 0.1.0 @category values */
export const Visibility = Schema.Literal("public", "unlisted", "private")
/** @since 0.1.0 @category values */
export type Visibility = typeof Visibility.Type

/** Who sent a message, from the sender's `hello.client` (D-6). @since 0.1.0 @category values */
export const Origin = Schema.Literal("agent", "human")
/** @since 0.1.0 @category values */
export type Origin = typeof Origin.Type

/** @since 0.1.0 @category values */
export const ClientKind = Schema.Literal("bridge", "cli", "web", "console")
/** @since 0.1.0 @category values */
export type ClientKind = typeof ClientKind.Type

/** @since 0.1.0 @category values */
export const PlainPayload = Schema.Struct({ kind: Schema.Literal("plain"), text: Schema.String })
/** Reserved for end-to-end encryption: relayed and stored verbatim. @since 0.1.0 @category values */
export const EncryptedPayload = Schema.Struct({
  kind: Schema.Literal("encrypted"),
  ciphertext: Base64UrlString,
  key_id: nullable(Schema.String)
})
/** @since 0.1.0 @category values */
export const Payload = Schema.Union(PlainPayload, EncryptedPayload).annotations({ identifier: "Payload" })
/** @since 0.1.0 @category values */
export type Payload = typeof Payload.Type

/** @since 0.1.0 @category values */
export const ChannelInfo = Schema.Struct({ name: Schema.String, visibility: Visibility, member: Schema.Boolean })
/** @since 0.1.0 @category values */
export type ChannelInfo = typeof ChannelInfo.Type
/** @since 0.1.0 @category values */
export const MachineInfo = Schema.Struct({ name: Schema.String, pubkey: Schema.String, added_at: Schema.String })
/** @since 0.1.0 @category values */
export type MachineInfo = typeof MachineInfo.Type
/** @since 0.1.0 @category values */
export const InviteInfo = Schema.Struct({
  token: Schema.String,
  uses_remaining: nullable(NonNegativeInt),
  expires_at: nullable(Schema.String)
})
/** @since 0.1.0 @category values */
export type InviteInfo = typeof InviteInfo.Type

/** One retained channel message (D-4, D-6). @since 0.1.0 @category values */
export const HistoryMessage = Schema.Struct({
  seq: NonNegativeInt,
  from: SessionPath,
  ts_ms: Int,
  payload: Payload,
  origin: Origin,
  reply_to: nullable(NonNegativeInt)
})
/** @since 0.1.0 @category values */
export type HistoryMessage = typeof HistoryMessage.Type
