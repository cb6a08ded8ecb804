/**
 * The bridge's outbound ports toward the MCP peer: where injections go (a pluggable sink, SPEC
 * §4.4 step 5) and the two other notifications the bridge sends.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { ChannelNotification } from "./Injection.js"

/**
 * Where injections and notices are delivered. The default (see `Mcp.ts`) sends
 * `notifications/claude/channel`; alternative sinks (log, desktop, push) implement the same shape.
 *
 * @since 0.1.0
 * @category tags
 */
export class NotificationSink extends Context.Tag("@conclave/bridge/NotificationSink")<NotificationSink, {
  readonly inject: (notification: ChannelNotification) => Effect.Effect<void>
}>() {}

/** The other MCP notifications the bridge emits. @since 0.1.0 @category tags */
export class McpOutbound extends Context.Tag("@conclave/bridge/McpOutbound")<McpOutbound, {
  /** `notifications/tools/list_changed`. */
  readonly toolListChanged: Effect.Effect<void>
  /** `notifications/claude/channel/permission` with `{request_id, behavior}`. */
  readonly permissionVerdict: (requestId: string, behavior: "allow" | "deny") => Effect.Effect<void>
}>() {}
