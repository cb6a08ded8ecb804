/**
 * Hand-written decoders for the hot client frames. Each one returns exactly what the `ClientFrame`
 * Schema decode (with `onExcessProperty: "ignore"`) returns for the same parsed JSON — same fields,
 * same defaults, same key order, excess properties dropped — or `undefined` ("decline") for anything
 * it is not sure about, so that the Schema path still produces every error. Internal to `Codec`.
 *
 * @since 0.1.0
 */
import { isBase64Url } from "./Base64Url.js"
import type { ClientFrame, ClientFrameOf, Payload } from "./Frames.js"
import { MAX_DATE_MS, REQUEST_ID_MAX_LENGTH, U32_MAX } from "./Limits.js"
import type { SessionPath } from "./Names.js"

type Obj = { readonly [key: string]: unknown }

// Every field name read below is absent from Object.prototype, and JSON.parse only creates own data
// properties (an own `__proto__` key included), so `o.name === undefined` means "key absent".
const isObj = (u: unknown): u is Obj => typeof u === "object" && u !== null && !Array.isArray(u)

// Schema.int() is Number.isSafeInteger; the bounds are the Frames.ts `between` filters.
const isNonNegativeInt = (u: unknown): u is number => typeof u === "number" && Number.isSafeInteger(u) && u >= 0
const isInt = (u: unknown): u is number =>
  typeof u === "number" && Number.isSafeInteger(u) && u >= -MAX_DATE_MS && u <= MAX_DATE_MS
const isU32 = (u: unknown): u is number => typeof u === "number" && Number.isSafeInteger(u) && u >= 0 && u <= U32_MAX

const DECLINE: unique symbol = Symbol("decline")
type Decline = typeof DECLINE

/** Request id (D-2): absent or null → absent (undefined); a 1–64 character string; else decline. */
const requestId = (u: unknown): string | undefined | Decline => {
  if (u === undefined || u === null) return undefined
  return typeof u === "string" && u.length >= 1 && u.length <= REQUEST_ID_MAX_LENGTH ? u : DECLINE
}

/** `nullable(...)`: absent or null → null. */
const nullableString = (u: unknown): string | null | Decline =>
  u === undefined || u === null ? null : typeof u === "string" ? u : DECLINE
const nullableNonNegativeInt = (u: unknown): number | null | Decline =>
  u === undefined || u === null ? null : isNonNegativeInt(u) ? u : DECLINE
const nullableInt = (u: unknown): number | null | Decline =>
  u === undefined || u === null ? null : isInt(u) ? u : DECLINE

const payload = (u: unknown): Payload | undefined => {
  if (!isObj(u)) return undefined
  const kind = u.kind
  if (kind === "plain") {
    const text = u.text
    return typeof text === "string" ? { kind: "plain", text } : undefined
  }
  if (kind === "encrypted") {
    const ciphertext = u.ciphertext
    if (typeof ciphertext !== "string" || !isBase64Url(ciphertext)) return undefined
    const key_id = nullableString(u.key_id)
    return key_id === DECLINE ? undefined : { kind: "encrypted", ciphertext, key_id }
  }
  return undefined
}

const sessionPath = (u: unknown): SessionPath | undefined => {
  if (!isObj(u)) return undefined
  const { machine, session, user } = u
  return typeof user === "string" && typeof machine === "string" && typeof session === "string"
    ? { user, machine, session }
    : undefined
}

const channelMsg = (o: Obj): ClientFrameOf<"channel_msg"> | undefined => {
  const id = requestId(o.id)
  const channel = o.channel
  const reply_to = nullableNonNegativeInt(o.reply_to)
  if (id === DECLINE || typeof channel !== "string" || reply_to === DECLINE) return undefined
  const body = payload(o.payload)
  if (body === undefined) return undefined
  return id === undefined
    ? { type: "channel_msg", channel, payload: body, reply_to }
    : { type: "channel_msg", id, channel, payload: body, reply_to }
}

const whisper = (o: Obj): ClientFrameOf<"whisper"> | undefined => {
  const id = requestId(o.id)
  if (id === DECLINE) return undefined
  const target = sessionPath(o.target)
  if (target === undefined) return undefined
  const body = payload(o.payload)
  if (body === undefined) return undefined
  return id === undefined
    ? { type: "whisper", target, payload: body }
    : { type: "whisper", id, target, payload: body }
}

const readSince = (o: Obj): ClientFrameOf<"read_since"> | undefined => {
  const id = requestId(o.id)
  const channel = o.channel
  const since_seq = nullableNonNegativeInt(o.since_seq)
  const since_ms = nullableInt(o.since_ms)
  if (id === DECLINE || typeof channel !== "string" || since_seq === DECLINE || since_ms === DECLINE) return undefined
  return id === undefined
    ? { type: "read_since", channel, since_seq, since_ms }
    : { type: "read_since", id, channel, since_seq, since_ms }
}

const join = (o: Obj): ClientFrameOf<"join"> | undefined => {
  const id = requestId(o.id)
  const channel = o.channel
  const token = nullableString(o.token)
  if (id === DECLINE || typeof channel !== "string" || token === DECLINE) return undefined
  return id === undefined ? { type: "join", channel, token } : { type: "join", id, channel, token }
}

const leave = (o: Obj): ClientFrameOf<"leave"> | undefined => {
  const id = requestId(o.id)
  const channel = o.channel
  if (id === DECLINE || typeof channel !== "string") return undefined
  return id === undefined ? { type: "leave", channel } : { type: "leave", id, channel }
}

const who = (o: Obj): ClientFrameOf<"who"> | undefined => {
  const id = requestId(o.id)
  const channel = nullableString(o.channel)
  if (id === DECLINE || channel === DECLINE) return undefined
  return id === undefined ? { type: "who", channel } : { type: "who", id, channel }
}

const ping = (o: Obj): ClientFrameOf<"ping"> | undefined => {
  const id = requestId(o.id)
  if (id === DECLINE) return undefined
  return id === undefined ? { type: "ping" } : { type: "ping", id }
}

const hello = (o: Obj): ClientFrameOf<"hello"> | undefined => {
  const { protocol_version, session } = o
  const host = nullableString(o.host)
  const client = o.client === undefined || o.client === null ? "bridge" : o.client
  if (!isU32(protocol_version) || typeof session !== "string" || host === DECLINE) return undefined
  if (client !== "bridge" && client !== "cli" && client !== "web") return undefined
  return { type: "hello", protocol_version, session, host, client }
}

const auth = (o: Obj): ClientFrameOf<"auth"> | undefined => {
  const { pubkey, signature } = o
  if (typeof pubkey !== "string" || typeof signature !== "string") return undefined
  return isBase64Url(pubkey) && isBase64Url(signature) ? { type: "auth", pubkey, signature } : undefined
}

const decoders = new Map<string, (o: Obj) => ClientFrame | undefined>([
  ["channel_msg", channelMsg],
  ["whisper", whisper],
  ["read_since", readSince],
  ["join", join],
  ["leave", leave],
  ["who", who],
  ["ping", ping],
  ["hello", hello],
  ["auth", auth]
])

/**
 * The decoded frame when `json` (a parsed JSON object whose `type` is `type`) is a well-formed hot
 * client frame, deep-equal to the Schema decode's result; `undefined` when the caller must fall back
 * to the Schema decode.
 *
 * @since 0.1.0
 * @category decoding
 */
export const fastDecodeClientFrame = (json: object, type: string): ClientFrame | undefined => {
  const decode = decoders.get(type)
  return decode === undefined ? undefined : decode(json as Obj)
}

/** Frame types `fastDecodeClientFrame` may accept. @since 0.1.0 @category decoding */
export const FAST_CLIENT_TYPES: ReadonlyArray<string> = [...decoders.keys()]
