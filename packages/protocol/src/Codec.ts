/**
 * Decode WebSocket messages into typed frames and encode frames (SPEC §2.1, §2.13, D-1).
 * Decoding never throws: every failure is a typed `FrameDecodeError`.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { ClientFrame, type ClientFrameType, FRAME_TYPES, ServerFrame } from "./Frames.js"
import { compileMembers, FAIL } from "./internal/schemaDecoder.js"
import * as JsonDepth from "./JsonDepth.js"
import { DEFAULT_MAX_FRAME_BYTES, MAX_JSON_DEPTH, REQUEST_ID_MAX_LENGTH } from "./Limits.js"

/** @since 0.1.0 @category errors */
export type DecodeFailure = "too_large" | "not_utf8" | "not_json" | "not_object" | "unknown_type" | "invalid"

/** @since 0.1.0 @category errors */
export class FrameDecodeError extends Data.TaggedError("FrameDecodeError")<{
  readonly reason: DecodeFailure
  readonly detail: string
  /** The frame's `type` when it could be read. */
  readonly frameType?: string | undefined
  /** The frame's request `id` when it is a usable one (1–64 characters, D-2), for the refusal to echo. */
  readonly requestId?: string | undefined
}> {
  override get message() {
    return this.detail
  }
}

/** What a `ws` message event hands over. @since 0.1.0 @category models */
export type RawMessage = string | Buffer | ArrayBuffer | ReadonlyArray<Buffer> | Uint8Array

const byteLength = (raw: RawMessage): number => {
  if (typeof raw === "string") return Buffer.byteLength(raw, "utf8")
  if (raw instanceof ArrayBuffer) return raw.byteLength
  if (Array.isArray(raw)) return (raw as ReadonlyArray<Buffer>).reduce((n, b) => n + b.byteLength, 0)
  return (raw as Uint8Array).byteLength
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

const toText = (raw: RawMessage): string | undefined => {
  if (typeof raw === "string") return raw
  try {
    if (raw instanceof ArrayBuffer) return utf8.decode(raw)
    if (Array.isArray(raw)) return utf8.decode(Buffer.concat(raw as ReadonlyArray<Buffer>))
    return utf8.decode(raw as Uint8Array)
  } catch {
    return undefined
  }
}

const knownTypes = new Set<string>(FRAME_TYPES)

// Parse issues quote the offending value; keep a hostile or buggy frame from echoing megabytes
// (or a mistyped body) into error frames and logs.
const DETAIL_MAX_CHARS = 1024
const capDetail = (detail: string): string =>
  detail.length <= DETAIL_MAX_CHARS ? detail : `${detail.slice(0, DETAIL_MAX_CHARS)}…`

const decodeWith = <A>(
  decodeUnknown: (u: unknown) => Either.Either<A, ParseResult.ParseError>,
  types: Set<string>,
  // The decoder compiled from the Schema: its result, or undefined (then the Schema decode runs).
  fast?: (json: object, type: string) => A | undefined
) =>
(
  raw: RawMessage,
  maxBytes: number = DEFAULT_MAX_FRAME_BYTES
): Either.Either<A, FrameDecodeError> => {
  const size = byteLength(raw)
  if (size > maxBytes) {
    return Either.left(
      new FrameDecodeError({ reason: "too_large", detail: `frame of ${size} bytes exceeds the ${maxBytes}-byte cap` })
    )
  }
  const text = toText(raw)
  if (text === undefined) return Either.left(new FrameDecodeError({ reason: "not_utf8", detail: "frame is not UTF-8" }))
  if (JsonDepth.exceeds(text, MAX_JSON_DEPTH)) {
    return Either.left(
      new FrameDecodeError({ reason: "invalid", detail: `frame nests deeper than ${MAX_JSON_DEPTH} levels` })
    )
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return Either.left(new FrameDecodeError({ reason: "not_json", detail: "frame is not valid JSON" }))
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return Either.left(new FrameDecodeError({ reason: "not_object", detail: "frame is not a JSON object" }))
  }
  const type = (json as { readonly type?: unknown }).type
  const rawId = (json as { readonly id?: unknown }).id
  const requestId = typeof rawId === "string" && rawId.length >= 1 && rawId.length <= REQUEST_ID_MAX_LENGTH
    ? rawId
    : undefined
  if (typeof type !== "string" || !types.has(type)) {
    return Either.left(
      new FrameDecodeError({
        reason: "unknown_type",
        detail: typeof type === "string" ? `unknown frame type \`${type.slice(0, 64)}\`` : "frame has no string `type`",
        frameType: typeof type === "string" ? type.slice(0, 64) : undefined,
        requestId
      })
    )
  }
  // Decoding and formatting recurse into the value: a hostile 100 000-deep nesting overflows the
  // stack. Never throw — report it as an invalid frame.
  try {
    const decoded = fast?.(json, type)
    if (decoded !== undefined) return Either.right(decoded)
    return Either.mapLeft(decodeUnknown(json), (e) =>
      new FrameDecodeError({
        reason: "invalid",
        detail: capDetail(`invalid \`${type}\` frame: ${ParseResult.TreeFormatter.formatIssueSync(e.issue)}`),
        frameType: type,
        requestId
      }))
  } catch {
    return Either.left(
      new FrameDecodeError({
        reason: "invalid",
        detail: `invalid \`${type}\` frame: value too deeply nested`,
        frameType: type,
        requestId
      })
    )
  }
}

const clientTypes = new Set<string>(ClientFrame.members.map((m) => m.fields.type.literals[0]))
const serverTypes = new Set<string>(ServerFrame.members.map((m) => m.fields.type.literals[0]))

const clientOptions = { errors: "first", onExcessProperty: "ignore" } as const
const decodeClientUnknown = Schema.decodeUnknownEither(ClientFrame, clientOptions)

// Plain functions compiled once from the `ClientFrame` Schema's AST, one per frame type (the types
// whose AST it does not cover have none): the Schema decode's result, or FAIL, and then the Schema
// decode runs (and words the error).
const compiledClient = compileMembers(ClientFrame.ast, clientOptions)
const compiledClientFrame = (json: object, type: string): ClientFrame | undefined => {
  const decode = compiledClient.get(type)
  if (decode === undefined) return undefined
  const decoded = decode(json)
  return decoded === FAIL ? undefined : decoded as ClientFrame
}

/**
 * Decode a client→server message (what the server reads). Checks the size cap before parsing.
 * Well-formed frames are decoded by plain functions compiled once from the `ClientFrame` Schema's
 * AST, with the Schema decode's result; anything they refuse, errors included, takes the Schema
 * decode.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeClientFrame: (
  raw: RawMessage,
  maxBytes?: number
) => Either.Either<ClientFrame, FrameDecodeError> = decodeWith(
  decodeClientUnknown,
  clientTypes,
  compiledClientFrame
)

/**
 * `decodeClientFrame` without its compiled decoders: every frame goes through the Schema decode.
 * The reference the compiled decoders are tested and benchmarked against; same results, slower.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeClientFrameSchema: (
  raw: RawMessage,
  maxBytes?: number
) => Either.Either<ClientFrame, FrameDecodeError> = decodeWith(decodeClientUnknown, clientTypes)

/**
 * Decode a server→client message (what clients read).
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeServerFrame: (
  raw: RawMessage,
  maxBytes?: number
) => Either.Either<ServerFrame, FrameDecodeError> = decodeWith(
  Schema.decodeUnknownEither(ServerFrame, { errors: "first", onExcessProperty: "ignore" }),
  serverTypes
)

/** @since 0.1.0 @category decoding */
export const decodeClientFrameEffect = (raw: RawMessage, maxBytes?: number) =>
  Effect.suspend(() => decodeClientFrame(raw, maxBytes))

/** @since 0.1.0 @category decoding */
export const decodeServerFrameEffect = (raw: RawMessage, maxBytes?: number) =>
  Effect.suspend(() => decodeServerFrame(raw, maxBytes))

/**
 * Encode a frame as the text of one WebSocket message. Frame types are plain JSON data whose
 * decoded and encoded forms coincide, so this is a straight serialisation.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeFrame = (frame: ClientFrame | ServerFrame): string => JSON.stringify(frame)

/** Whether a `type` names any frame of the protocol. @since 0.1.0 @category guards */
export const isKnownType = (type: string): boolean => knownTypes.has(type)

/** @since 0.1.0 @category guards */
export const isClientFrameType = (type: string): type is ClientFrameType => clientTypes.has(type)
