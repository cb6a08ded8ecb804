/**
 * The arguments of the bridge's MCP tools and of the matching CLI verbs, each field defined once as
 * an Effect Schema (one rule per field). The MCP tools' JSON input schemas are derived from these
 * (`jsonSchema`), the bridge decodes tool arguments with them (`decode`), and the CLI validates
 * its flags against the same field schemas (`decodeText`).
 *
 * @since 0.1.0
 */
import { Frames, Limits, Names } from "@conclave/protocol"
import * as Either from "effect/Either"
import * as JSONSchema from "effect/JSONSchema"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import * as Durations from "./Durations.js"
import * as Permission from "./Permission.js"

// ---- one rule per field ----------------------------------------------------------------------

/** An integer field's bounds (inclusive). @since 0.1.0 @category models */
export interface IntegerRule {
  readonly min: number
  readonly max: number
}

/** @since 0.1.0 @category fields */
export const Integers = {
  reply_to: { min: 0, max: Number.MAX_SAFE_INTEGER },
  uses: { min: 1, max: Limits.U32_MAX },
  expires_in_secs: { min: 0, max: Number.MAX_SAFE_INTEGER }
} as const satisfies Record<string, IntegerRule>

/** The schema of an integer field. @since 0.1.0 @category fields */
export const integer = (rule: IntegerRule) => Schema.Number.pipe(Schema.int(), Schema.between(rule.min, rule.max))

/**
 * A channel as the user typed it, without the `#` every display puts in front of it (`#ops` names
 * the channel `ops`, issue 23 item 7). One leading `#` is removed.
 *
 * @since 0.1.0
 * @category fields
 */
export const channelName = (text: string): string => (text.startsWith("#") ? text.slice(1) : text)

/** Tool argument keys that name a channel (every `name`/`new_name` of a tool is a channel). */
const CHANNEL_KEYS: ReadonlySet<string> = new Set(["channel", "name", "new_name"])

/** A required name, token or text: a non-empty string. @since 0.1.0 @category fields */
export const Text = Schema.String.pipe(Schema.minLength(1))

/** An autonomy level, exactly one of mute, notify, converse, act. @since 0.1.0 @category fields */
export const Level = Schema.Literal(...(Permission.LEVELS as readonly [Permission.Level, ...Array<Permission.Level>]))

/** A channel visibility tier, exactly one of public, unlisted, private. @since 0.1.0 @category fields */
export const Visibility = Frames.Visibility

/** `reply_to` / `--reply-to`: a message seq. @since 0.1.0 @category fields */
export const ReplyTo = integer(Integers.reply_to)

/** `uses` / `--uses`: how many joins an invite admits. @since 0.1.0 @category fields */
export const Uses = integer(Integers.uses)

/** `expires_in_secs`: an invite's lifetime in seconds. @since 0.1.0 @category fields */
export const ExpiresInSecs = integer(Integers.expires_in_secs)

/** A duration in the syntax of SPEC §6.1 (`90`, `15m`, `24h`, `7d`), decoded to whole seconds. @since 0.1.0 @category fields */
export const Duration = Schema.transformOrFail(Schema.String, Schema.Number, {
  strict: true,
  decode: (s, _, ast) =>
    Either.match(Durations.parseSeconds(s), {
      onLeft: (message) => ParseResult.fail(new ParseResult.Type(ast, s, message)),
      onRight: (seconds) => ParseResult.succeed(seconds)
    }),
  encode: (n) => ParseResult.succeed(String(n))
})

/** A session path `user/machine/session`. @since 0.1.0 @category fields */
export const SessionPath = Schema.transformOrFail(Text, Names.SessionPath, {
  strict: true,
  decode: (s, _, ast) => {
    const path = Names.parsePath(s)
    return path === undefined
      ? ParseResult.fail(new ParseResult.Type(ast, s, "not a user/machine/session path"))
      : ParseResult.succeed(path)
  },
  encode: (p) => ParseResult.succeed(Names.renderPath(p))
})

/** SPEC §4.7: `allow` iff the decision is exactly "allow"; anything else (or nothing) denies. @since 0.1.0 @category fields */
export const Decision = Schema.transform(Schema.Unknown, Schema.Literal("allow", "deny"), {
  strict: true,
  decode: (u) => (u === "allow" ? "allow" as const : "deny" as const),
  encode: (d) => d
}).annotations({ jsonSchema: { type: "string", enum: ["allow", "deny"], description: "allow or deny" } })

// ---- CLI text ------------------------------------------------------------------------------

const Digits = Schema.transformOrFail(Schema.String, Schema.Number, {
  strict: true,
  decode: (s, _, ast) => {
    const text = s.trim()
    return /^[0-9]+$/.test(text)
      ? ParseResult.succeed(Number(text))
      : ParseResult.fail(new ParseResult.Type(ast, s, "not a whole number"))
  },
  encode: (n) => ParseResult.succeed(String(n))
})

/**
 * An integer field read from command-line text: digits only, then the field's own rule.
 *
 * @since 0.1.0
 * @category cli
 */
export const integerText = <I>(field: Schema.Schema<number, I>): Schema.Schema<number, string> =>
  Schema.compose(Digits, Schema.typeSchema(field))

/**
 * A field read from command-line text whose every refusal reads `refusal(value)` (for
 * `Options.withSchema` / `Args.withSchema`).
 *
 * @since 0.1.0
 * @category cli
 */
export const refusing = <A, I extends string>(
  field: Schema.Schema<A, I>,
  refusal: (value: string) => string
): Schema.Schema<A, string> =>
  Schema.transform(Schema.String, Schema.encodedSchema(field), {
    strict: true,
    // The field's own decoding refuses what is not one of its encoded values.
    decode: (s) => s as I,
    encode: (s) => s
  }).pipe(Schema.compose(field)).annotations({
    message: (issue) => ({ message: refusal(String(issue.actual)), override: true })
  })

/** Decode command-line text with `schema`: the value, or the refusal text. @since 0.1.0 @category cli */
export const decodeText = <A>(schema: Schema.Schema<A, string>, value: string): Either.Either<A, string> =>
  Either.mapLeft(
    Schema.decodeUnknownEither(schema)(value),
    (e) => ParseResult.TreeFormatter.formatErrorSync(e)
  )

// ---- tool argument specs ---------------------------------------------------------------------

/** A refusal text, fixed or built from the value that was refused. @since 0.1.0 @category models */
export type Refusal = string | ((value: unknown) => string)

/**
 * One tool's arguments: the struct (field order = the order in which problems are reported), the
 * refusal text of each field, and the message for a missing required field.
 *
 * @since 0.1.0
 * @category models
 */
export interface Spec<A, I> {
  readonly schema: Schema.Schema<A, I>
  /** Field names in the order problems are reported. */
  readonly fields: ReadonlyArray<string>
  readonly required: ReadonlyArray<string>
  readonly refusals: Readonly<Record<string, Refusal>>
  /** Default: "`a` and `b` are required" naming every required field (SPEC §4.7). */
  readonly requiredMessage: string
}

const spec = <F extends Schema.Struct.Fields>(
  fields: F,
  refusals: { readonly [K in keyof F]?: Refusal } = {},
  requiredMessage?: string
): Spec<Schema.Struct.Type<F>, Schema.Struct.Encoded<F>> => {
  const schema = Schema.Struct(fields)
  const required = SchemaAST.getPropertySignatures(schema.ast).filter((p) => !p.isOptional).map((p) => String(p.name))
  return {
    // The fields are context-free schemas.
    schema: schema as unknown as Schema.Schema<Schema.Struct.Type<F>, Schema.Struct.Encoded<F>>,
    fields: Object.keys(fields),
    required,
    refusals: refusals as Readonly<Record<string, Refusal>>,
    requiredMessage: requiredMessage ?? requiredText(required)
  }
}

const describe = <S extends Schema.Schema.Any>(schema: S, description: string): S =>
  schema.annotations({ description }) as S

const typeRefusal = (key: string, type: string) => `\`${key}\` must be a ${type}`

const server = Schema.optional(describe(Schema.String, "Server URL (optional if only one is connected)"))
const channel = (what = "Channel name") => describe(Text, what)
const optChannel = (what: string) => Schema.optional(describe(Schema.String, what))
const user = describe(Text, "Username")

const stringRefusals = <K extends string>(...keys: ReadonlyArray<K>) =>
  Object.fromEntries(keys.map((k) => [k, typeRefusal(k, "string")])) as Record<K, string>

/** "`a` is required" / "`a` and `b` are required" (SPEC §4.7). @since 0.1.0 @category rendering */
export const requiredText = (keys: ReadonlyArray<string>): string => {
  const quoted = keys.map((k) => `\`${k}\``)
  if (quoted.length === 1) return `${quoted[0]} is required`
  return `${quoted.slice(0, -1).join(", ")} and ${quoted[quoted.length - 1]} are required`
}

/** The refusal of a level argument that is not one of the four (`perm`, `perm set`). @since 0.1.0 @category rendering */
export const levelRefusal = (key: string) => (value: unknown): string =>
  typeof value === "string"
    ? `unknown permission level \`${value}\` (expected mute, notify, converse, or act)`
    : typeRefusal(key, "string")

/** @since 0.1.0 @category rendering */
export const LEVEL_TEXT = "`level` must be mute, notify, converse, or act"

/** @since 0.1.0 @category rendering */
export const VISIBILITY_TEXT = "`visibility` must be public, unlisted, or private"

/** @since 0.1.0 @category rendering */
export const REPLY_TO_TEXT = "`reply_to` must be a message seq (a non-negative integer)"

/** @since 0.1.0 @category rendering */
export const USES_TEXT = `\`uses\` must be an integer between 1 and ${Limits.U32_MAX}`

/** @since 0.1.0 @category rendering */
export const EXPIRES_TEXT = "`expires_in_secs` must be a non-negative integer"

/** @since 0.1.0 @category rendering */
export const TARGET_PATH_TEXT = "`target` must be a `user/machine/session` path"

const sinceRefusal = (value: unknown) =>
  typeof value === "string"
    ? `invalid \`since\`: ${Either.match(Durations.parseSeconds(value), { onLeft: (m) => m, onRight: () => "" })}`
    : typeRefusal("since", "string")

/**
 * Every tool's arguments (SPEC §4.7 + D-24).
 *
 * @since 0.1.0
 * @category specs
 */
export const Tools = {
  join_channel: spec(
    {
      server,
      channel: channel(),
      token: Schema.optional(describe(Schema.String, "Invite token for a private channel")),
      perm: Schema.optional(describe(Level, "Autonomy level for this channel (mute, notify, converse, act)"))
    },
    { ...stringRefusals("server", "token"), perm: levelRefusal("perm") }
  ),
  leave_channel: spec({ server, channel: channel() }, stringRefusals("server")),
  list_channels: spec({ server }, stringRefusals("server")),
  who: spec(
    { server, channel: optChannel("Channel name (omit for server-wide presence)") },
    stringRefusals("server", "channel")
  ),
  catch_up: spec(
    {
      server,
      channel: channel("Channel name (you must have joined it)"),
      since: Schema.optional(describe(Duration, "How far back to read, e.g. 15m, 2h, 7d"))
    },
    { ...stringRefusals("server"), since: sinceRefusal }
  ),
  submit_permission: spec({
    request_id: describe(Text, "The request_id of the permission request"),
    decision: Schema.optional(describe(Decision, "allow or deny"))
  }),
  set_perm: spec(
    {
      server,
      channel: optChannel("Channel name"),
      whisper: Schema.optional(
        describe(Schema.Boolean, "Set the level for whispers on the server instead of a channel")
      ),
      level: describe(Level, "mute, notify, converse or act")
    },
    { ...stringRefusals("server", "channel"), whisper: typeRefusal("whisper", "boolean"), level: LEVEL_TEXT },
    LEVEL_TEXT
  ),
  whoami: spec({}),
  inbox: spec({}),
  send_channel: spec(
    {
      server,
      channel: channel(),
      text: describe(Text, "Message text"),
      reply_to: Schema.optional(describe(ReplyTo, "The seq of the message this replies to"))
    },
    { ...stringRefusals("server"), reply_to: REPLY_TO_TEXT }
  ),
  whisper: spec(
    {
      server,
      target: describe(SessionPath, "Recipient session path user/machine/session"),
      text: describe(Text, "Message text")
    },
    { ...stringRefusals("server"), target: TARGET_PATH_TEXT }
  ),
  create_channel: spec(
    {
      server,
      name: channel(),
      visibility: Schema.optional(describe(Visibility, "Default public"))
    },
    { ...stringRefusals("server"), visibility: VISIBILITY_TEXT }
  ),
  delete_channel: spec({ server, name: channel() }, stringRefusals("server")),
  set_visibility: spec(
    { server, name: channel(), visibility: Visibility },
    stringRefusals("server"),
    "`name` and a valid `visibility` are required"
  ),
  acl_add: spec({ server, channel: channel(), user }, stringRefusals("server")),
  acl_remove: spec({ server, channel: channel(), user }, stringRefusals("server")),
  invite_create: spec(
    {
      server,
      channel: channel(),
      uses: Schema.optional(describe(Uses, "How many joins it admits (default unlimited)")),
      expires_in_secs: Schema.optional(describe(ExpiresInSecs, "Lifetime in seconds (default never expires)"))
    },
    { ...stringRefusals("server"), uses: USES_TEXT, expires_in_secs: EXPIRES_TEXT }
  ),
  invite_revoke: spec({ server, token: describe(Text, "Invite token") }, stringRefusals("server")),
  kick: spec(
    {
      server,
      channel: channel(),
      target: describe(Text, "Session path user/machine/session, or a username")
    },
    stringRefusals("server")
  ),
  ban: spec({ server, channel: channel(), user }, stringRefusals("server")),
  unban: spec({ server, channel: channel(), user }, stringRefusals("server")),
  rename_channel: spec(
    { server, name: channel("Current channel name"), new_name: channel("New channel name") },
    stringRefusals("server")
  ),
  acl_list: spec({ server, channel: channel() }, stringRefusals("server")),
  ban_list: spec({ server, channel: channel() }, stringRefusals("server")),
  invite_list: spec({ server, channel: channel() }, stringRefusals("server"))
} as const

/** @since 0.1.0 @category specs */
export type ToolName = keyof typeof Tools

/** The decoded arguments of tool `T`. @since 0.1.0 @category specs */
export type ArgsOf<T extends ToolName> = (typeof Tools)[T] extends Spec<infer A, infer _I> ? A : never

/** `arguments` must be an object; absent or null reads as `{}`, and a null member as absent. */
const asRecord = (u: unknown): Either.Either<Readonly<Record<string, unknown>>, string> => {
  if (u === undefined || u === null) return Either.right({})
  if (typeof u !== "object" || Array.isArray(u)) return Either.left("tool arguments must be a JSON object")
  return Either.right(
    Object.fromEntries(
      Object.entries(u).filter(([, v]) => v !== null && v !== undefined).map((
        [k, v]
      ) => [k, CHANNEL_KEYS.has(k) && typeof v === "string" ? channelName(v) : v])
    )
  )
}

/**
 * Decode raw tool arguments against `spec`. A missing (absent, empty or non-string) required field
 * fails with the required message; otherwise the first refused field, in field order, fails with
 * its refusal text.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = <A, I>(spec: Spec<A, I>, raw: unknown): Either.Either<A, string> =>
  Either.flatMap(asRecord(raw), (args) => {
    const required = spec.required
    // Every required field is a string: absent, empty or another type all read as missing.
    const missing = required.some((k) => {
      const v = args[k]
      return !(typeof v === "string" && v.length > 0)
    })
    const requiredMessage = spec.requiredMessage
    if (missing) return Either.left(requiredMessage)
    const decoded = Schema.decodeUnknownEither(spec.schema, { errors: "all", onExcessProperty: "ignore" })(args)
    if (Either.isRight(decoded)) return Either.right(decoded.right)
    const failing = new Set(ParseResult.ArrayFormatter.formatErrorSync(decoded.left).map((i) => i.path[0]))
    for (const key of spec.fields) {
      if (!failing.has(key)) continue
      const refusal: Refusal | undefined = spec.refusals[key]
      if (refusal === undefined) return Either.left(required.includes(key) ? requiredMessage : `invalid \`${key}\``)
      return Either.left(typeof refusal === "string" ? refusal : refusal(args[key]))
    }
    return Either.left(requiredMessage)
  })

// ---- JSON Schema -----------------------------------------------------------------------------

/** A tool's JSON input schema (MCP `inputSchema`). @since 0.1.0 @category json schema */
export interface InputSchema {
  readonly type: "object"
  readonly properties: Readonly<Record<string, unknown>>
  readonly required?: ReadonlyArray<string>
}

const clean = (node: unknown, defs: Readonly<Record<string, unknown>>): unknown => {
  if (Array.isArray(node)) return node.map((n) => clean(n, defs))
  if (typeof node !== "object" || node === null) return node
  const record = node as Record<string, unknown>
  const ref = record["$ref"]
  const base = typeof ref === "string" ? { ...(defs[ref.replace("#/$defs/", "")] as object), ...record } : record
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(base)) {
    if (k === "$ref" || k === "title" || k === "$schema" || k === "$defs" || k === "additionalProperties") continue
    out[k] = clean(v, defs)
  }
  return out
}

/**
 * The JSON Schema of a tool's arguments, derived from its Effect Schema (`$defs` inlined, titles
 * and `additionalProperties` dropped).
 *
 * @since 0.1.0
 * @category json schema
 */
export const jsonSchema = (spec: { readonly schema: Schema.Schema.AnyNoContext }): InputSchema => {
  const made = JSONSchema.make(spec.schema) as unknown as {
    readonly $defs?: Record<string, unknown>
    readonly properties?: Record<string, unknown>
    readonly required?: ReadonlyArray<string>
  }
  const properties = clean(made.properties ?? {}, made.$defs ?? {}) as Record<string, unknown>
  const required = made.required ?? []
  return { type: "object", properties, ...(required.length > 0 ? { required } : {}) }
}

/**
 * Decode raw arguments of tool `name` (see `decode`).
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeTool = <T extends ToolName>(name: T, raw: unknown): Either.Either<ArgsOf<T>, string> =>
  decode(Tools[name] as unknown as Spec<ArgsOf<T>, unknown>, raw)
