/**
 * What every tool handler shares: its dependencies, argument decoding against the schemas of
 * `ToolArgs`, server selection, and typed requests whose failures become tool errors.
 *
 * @since 0.1.0
 */
import { type Connection, Replies, ToolArgs, Url } from "@conclave/client"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { Delivery } from "./Delivery.js"
import type { Inbox } from "./Inbox.js"
import type { Link, Links } from "./Links.js"
import type { LoopGuard } from "./LoopGuard.js"
import type { Policy } from "./Policy.js"
import type { McpOutbound } from "./Ports.js"
import { ToolError } from "./ToolError.js"
import type { Watermarks } from "./Watermarks.js"

/** Raw tool arguments: a JSON object. @since 0.1.0 @category models */
export type RawArgs = Readonly<Record<string, unknown>>

/** @since 0.1.0 @category models */
export interface Handler {
  (args: RawArgs): Effect.Effect<string, ToolError>
}

/** @since 0.1.0 @category models */
export interface Kit {
  readonly links: Links
  readonly policy: Policy
  readonly guard: LoopGuard
  readonly watermarks: Watermarks
  readonly inbox: Inbox
  readonly delivery: Delivery
  readonly outbound: McpOutbound["Type"]
  /** `--as` was given. */
  readonly explicitHandle: boolean
  /** Re-announce the tool list if it changed. */
  readonly announce: Effect.Effect<void>
}

/** The arguments of tool `name`, decoded against its schema. @since 0.1.0 @category decoding */
export const decode = <T extends ToolArgs.ToolName>(
  name: T,
  args: RawArgs
): Effect.Effect<ToolArgs.ArgsOf<T>, ToolError> =>
  Either.match(ToolArgs.decodeTool(name, args), {
    onLeft: (text) => Effect.fail(new ToolError({ text })),
    onRight: (a) => Effect.succeed(a)
  })

/** `arguments` must be an object (absent or null reads as `{}`). @since 0.1.0 @category decoding */
export const fromUnknown = (u: unknown): Effect.Effect<RawArgs, ToolError> => {
  if (u === undefined || u === null) return Effect.succeed({})
  if (typeof u === "object" && !Array.isArray(u)) return Effect.succeed(u as RawArgs)
  return Effect.fail(new ToolError({ text: "tool arguments must be a JSON object" }))
}

/** The link a tool targets: `server` if given, else the only one. @since 0.1.0 @category servers */
export const resolveServer = (kit: Kit, args: RawArgs): Effect.Effect<Link, ToolError> =>
  Effect.gen(function*() {
    const raw = args["server"]
    if (raw !== undefined && raw !== null && typeof raw !== "string") {
      return yield* new ToolError({ text: "`server` must be a string" })
    }
    const live = yield* kit.links.active
    if (typeof raw === "string") {
      const wanted = Url.normalizeOrSelf(raw)
      const hit = live.find((s) => s.url === raw || s.url === wanted)
      if (hit === undefined) return yield* new ToolError({ text: `not connected to server \`${raw}\`` })
      return hit
    }
    if (live.length === 1) return live[0]!
    return yield* new ToolError({ text: "multiple servers connected; pass `server`" })
  })

/**
 * Send `frame` on the link and require one of the `expected` reply types.
 *
 * @since 0.1.0
 * @category requests
 */
export const request = <const T extends ReadonlyArray<Connection.Reply["type"]>>(
  kit: Kit,
  link: Link,
  frame: Connection.RequestWithoutId,
  ...expected: T
): Effect.Effect<Replies.ReplyOf<T[number]>, ToolError> =>
  Replies.request((f) => kit.links.request(link.url, f), frame, ...expected).pipe(
    Effect.mapError((e) =>
      new ToolError({
        text: e._tag === "UnexpectedReply" ? `unexpected reply \`${e.got}\` from the server` : e.text
      })
    )
  )

/** The text of an `ack` (or of an `invite_token`). @since 0.1.0 @category rendering */
export const ackText = (reply: Replies.ReplyOf<"ack" | "invite_token">, fixed?: string): string =>
  reply.type === "invite_token" ? `invite token: ${reply.token}` : fixed ?? reply.detail ?? "ok"
