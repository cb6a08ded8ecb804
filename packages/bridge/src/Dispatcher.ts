/**
 * The bridge's brain, assembled from one module per concept (SPEC §4.4–§4.13 with D-2, D-4, D-7,
 * D-12, D-22–D-27): `Links` (link lifecycle and the handle), `Watermarks` + `Catchup` (seq state
 * and re-subscribes), `LoopGuard`, `Inbox`, `Policy`, `Delivery` (inbound traffic), `LinkEvents`
 * and the tool handlers. Every piece of state is in a `Ref`. It talks to the MCP side only through
 * `NotificationSink` and `McpOutbound`, and to servers only through `LiveConnection`, so it is
 * testable without sockets.
 *
 * @since 0.1.0
 */
import { type LocalConfig, Permission, Url } from "@conclave/client"
import type { Frames } from "@conclave/protocol"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as AdminTools from "./AdminTools.js"
import * as Catchup from "./Catchup.js"
import * as Delivery from "./Delivery.js"
import * as Handlers from "./Handlers.js"
import * as Inbox from "./Inbox.js"
import * as LinkEvents from "./LinkEvents.js"
import * as Links from "./Links.js"
import * as LoopGuard from "./LoopGuard.js"
import * as Permissions from "./Permissions.js"
import * as Policy from "./Policy.js"
import { McpOutbound, NotificationSink } from "./Ports.js"
import { ToolError } from "./ToolError.js"
import * as ToolKit from "./ToolKit.js"
import * as Tools from "./Tools.js"
import * as Watermarks from "./Watermarks.js"

/** What the dispatcher needs from an established connection. @since 0.1.0 @category models */
export type LiveConnection = Links.LiveConnection

/** @since 0.1.0 @category models */
export interface HandleOptions {
  readonly name: string
  /** `--as` was given: never renamed (SPEC §1.2). */
  readonly explicit: boolean
}

/** @since 0.1.0 @category models */
export interface Options {
  readonly servers: ReadonlyArray<LocalConfig.Registration>
  readonly handle: HandleOptions
  readonly policy: Permission.Policy
  /** Loop guard limit (D-12); 0 = off. */
  readonly loopLimit: number
  /** Relay permission requests to this user's consoles (`permission_relay`, default on). */
  readonly permissionRelay?: boolean
  /** The session's inbox (the bridge shares it with the hook socket); a new one when absent. */
  readonly inbox?: Inbox.Inbox
}

/** A tool result. @since 0.1.0 @category models */
export interface ToolResult {
  readonly text: string
  readonly isError: boolean
}

/** @since 0.1.0 @category models */
export interface Dispatcher {
  /** The handle the next dial must use (re-read on every attempt, SPEC §4.10.1). */
  readonly currentHandle: Effect.Effect<string>
  readonly listTools: Effect.Effect<ReadonlyArray<Tools.ToolDefinition>>
  readonly callTool: (name: string, args: unknown) => Effect.Effect<ToolResult>
  readonly permissionRequest: (params: unknown) => Effect.Effect<void>
  readonly linkUp: (server: string, connection: LiveConnection, dialedHandle: string) => Effect.Effect<void>
  /** The link dropped; `too_large` when it closed over a frame too large for this client (not a flap). */
  readonly linkDown: (server: string, cause?: "too_large") => Effect.Effect<void>
  /** Before a link's first dial: the handles of live sessions of this user and machine there. */
  readonly handlesInUse: (server: string, taken: ReadonlySet<string>) => Effect.Effect<void>
  /** A dial failed; `text` is the reason with its fix. */
  readonly linkFailed: (server: string, text: string) => Effect.Effect<void>
  readonly linkDuplicate: (server: string, canonical: string) => Effect.Effect<void>
  readonly inbound: (server: string, frame: Frames.ServerFrame) => Effect.Effect<void>
  /** Snapshot for tests and `whoami`: the joined channels of a link. */
  readonly joined: (server: string) => Effect.Effect<ReadonlyArray<string>>
  readonly isUp: (server: string) => Effect.Effect<boolean>
}

/**
 * Build a dispatcher. Its background fibers (re-subscribes after reconnects) live in the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options
): Effect.Effect<Dispatcher, never, NotificationSink | McpOutbound | Scope.Scope> =>
  Effect.gen(function*() {
    const sink = yield* NotificationSink
    const outbound = yield* McpOutbound
    const fibers = yield* FiberSet.make<void, never>()
    const links = yield* Links.make({
      servers: options.servers.map((registration) => ({ url: Url.normalizeOrSelf(registration.url), registration })),
      handle: options.handle.name,
      explicit: options.handle.explicit
    })
    const policy = yield* Policy.make(options.policy)
    const guard = yield* LoopGuard.make(options.loopLimit)
    const watermarks = yield* Watermarks.make
    const inbox = options.inbox ?? (yield* Inbox.make)
    const delivery = Delivery.make({ links, policy, guard, watermarks, inbox, sink })

    // ---- tool-list signature (SPEC §4.13, D-25) ----
    const signature: Effect.Effect<Tools.Signature> = Effect.gen(function*() {
      const live = yield* links.active
      const current = yield* policy.current
      const level = (url: string, scope: Permission.Scope) => Permission.resolve(current, url, scope)
      return {
        send: live.some((s) => s.joined.some((c) => Permission.mayEmit(level(s.url, Permission.channel(c))))),
        whisper: live.some((s) => Permission.mayEmit(level(s.url, Permission.whisper))),
        admin: live.some((s) => s.admin)
      }
    })
    const announced = yield* Ref.make(yield* signature)
    const announce = Effect.gen(function*() {
      const next = yield* signature
      const changed = yield* Ref.modify(announced, (last) =>
        Tools.signatureEquals(next, last) ? [false, last] : [true, next])
      if (changed) {
        yield* outbound.toolListChanged
      }
    })

    const permissions = yield* Permissions.make({
      links,
      delivery,
      outbound,
      fibers,
      relay: options.permissionRelay !== false
    })
    const catchup = Catchup.make({ links, watermarks, delivery, announce })
    const events = LinkEvents.make({
      links,
      policy,
      guard,
      watermarks,
      delivery,
      catchup,
      fibers,
      announce,
      verdict: permissions.verdict
    })
    const kit: ToolKit.Kit = {
      links,
      policy,
      guard,
      watermarks,
      inbox,
      delivery,
      // submit_permission answers through the relay's bookkeeping: a console's later verdict is dropped
      outbound: { ...outbound, permissionVerdict: permissions.answer },
      explicitHandle: options.handle.explicit,
      announce
    }
    const handlers: Readonly<Record<string, ToolKit.Handler>> = { ...Handlers.make(kit), ...AdminTools.make(kit) }

    const callTool = (name: string, rawArgs: unknown): Effect.Effect<ToolResult> => {
      const handler = Object.hasOwn(handlers, name) ? handlers[name] : undefined
      const run = handler === undefined
        ? Effect.fail(new ToolError({ text: `unknown tool \`${name}\`` }))
        : ToolKit.fromUnknown(rawArgs).pipe(Effect.flatMap(handler))
      return run.pipe(
        Effect.map((text): ToolResult => ({ text, isError: false })),
        Effect.catchTag("ToolError", (e) =>
          Effect.succeed<ToolResult>({ text: e.text, isError: true })),
        Effect.zipLeft(announce),
        Effect.withSpan("Dispatcher.callTool", { attributes: { tool: name } })
      )
    }

    const permissionRequest = permissions.request

    const norm = (server: string) => Url.normalizeOrSelf(server)
    return {
      currentHandle: links.handle,
      listTools: Effect.map(signature, Tools.offered),
      callTool,
      permissionRequest,
      linkUp: (server, connection, dialedHandle) => events.up(norm(server), connection, dialedHandle),
      linkDown: (server, cause) => events.down(norm(server), cause),
      handlesInUse: (server, taken) => events.avoid(norm(server), taken),
      linkFailed: (server, text) => links.failed(norm(server), text),
      linkDuplicate: (server, canonical) => events.duplicate(norm(server), canonical),
      inbound: (server, frame) => events.inbound(norm(server), frame),
      joined: (server) =>
        links.get(norm(server)).pipe(Effect.map(Option.match({ onNone: () => [], onSome: (l) => l.joined }))),
      isUp: (server) => links.get(norm(server)).pipe(Effect.map(Option.exists((l) => l.generation !== undefined)))
    } satisfies Dispatcher
  })
