/**
 * The permission relay (SPEC §4.5.3): Claude Code's permission request is injected as a notice for
 * the session itself and, unless `permission_relay = false`, relayed over every link that is up to
 * the consoles of this user (`permission_request`). A console's verdict (`permission_verdict`) is
 * sent to Claude Code only while its request is pending — once, and not after the session answered
 * it itself with `submit_permission` (which is always sent, as before).
 *
 * @since 0.1.0
 */
import { type Frames, Names } from "@conclave/protocol"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Ref from "effect/Ref"
import type { Delivery } from "./Delivery.js"
import * as Injection from "./Injection.js"
import type { Links } from "./Links.js"
import type { McpOutbound } from "./Ports.js"

/** How many unanswered requests are remembered (the oldest is forgotten first). @since 0.1.0 @category constants */
export const PENDING_CAP = 256

/** @since 0.1.0 @category models */
export interface Permissions {
  /** `notifications/claude/channel/permission_request` from Claude Code. */
  readonly request: (params: unknown) => Effect.Effect<void>
  /** A console's verdict arrived on a link. */
  readonly verdict: (server: string, frame: Frames.ServerFrameOf<"permission_verdict">) => Effect.Effect<void>
  /**
   * The session's own `submit_permission`: always sent (SPEC §4.5.3), and the request counts as
   * answered, so a console's later verdict for it is dropped.
   */
  readonly answer: (requestId: string, behavior: Frames.PermissionBehavior) => Effect.Effect<void>
}

/** @since 0.1.0 @category models */
export interface Dependencies {
  readonly links: Links
  readonly delivery: Delivery
  readonly outbound: McpOutbound["Type"]
  /** Owns the relay fibers. */
  readonly fibers: FiberSet.FiberSet<void, never>
  /** `permission_relay` of config.toml (default on). */
  readonly relay: boolean
}

/** @since 0.1.0 @category constructors */
export const make = (deps: Dependencies): Effect.Effect<Permissions> =>
  Effect.gen(function*() {
    // pending: relayed and not yet answered; answered: answered, so a later verdict is dropped
    interface State {
      readonly pending: Set<string>
      readonly answered: Set<string>
    }
    const state = yield* Ref.make<State>({ pending: new Set(), answered: new Set() })

    const remember = (set: Set<string>, id: string): Set<string> => {
      const next = new Set(set)
      next.delete(id)
      next.add(id)
      if (next.size > PENDING_CAP) next.delete(next.values().next().value!)
      return next
    }

    const relayOn = (url: string, frame: Frames.ClientFrameOf<"permission_request">) =>
      Effect.gen(function*() {
        const link = yield* deps.links.get(url)
        if (link._tag === "None" || link.value.generation === undefined) return
        yield* deps.links.requestOn(url, link.value.generation, frame).pipe(
          Effect.flatMap((reply) =>
            Effect.logDebug("permission request relayed").pipe(
              Effect.annotateLogs({ server: url, detail: reply.type === "ack" ? reply.detail ?? "" : "" })
            )
          ),
          Effect.catchAll((e) =>
            Effect.logWarning("permission request not relayed").pipe(
              Effect.annotateLogs({ server: url, error: e.text })
            )
          )
        )
      })

    const request = (params: unknown) =>
      Effect.gen(function*() {
        const p = typeof params === "object" && params !== null ? params as Record<string, unknown> : {}
        const str = (k: string) => (typeof p[k] === "string" ? p[k] as string : "")
        const requestId = str("request_id")
        const n = Injection.Notices.permissionRequest(
          requestId,
          str("tool_name"),
          str("description"),
          str("input_preview")
        )
        yield* deps.delivery.inject(n, `permission request ${requestId}: ${str("tool_name")}`)
        if (!deps.relay || requestId === "") return
        yield* Ref.update(state, (s) => ({ ...s, pending: remember(s.pending, requestId) }))
        const frame = {
          type: "permission_request",
          request_id: requestId,
          tool_name: str("tool_name") === "" ? "unknown" : str("tool_name"),
          description: str("description")
        } as const
        for (const link of yield* deps.links.active) {
          if (link.generation !== undefined) yield* FiberSet.run(deps.fibers, relayOn(link.url, frame))
        }
      })

    /** Claim the right to answer `requestId`: true once, false for every later verdict. */
    const claim = (requestId: string, onlyPending: boolean) =>
      Ref.modify(state, (s): [boolean, State] => {
        if (s.answered.has(requestId)) return [false, s]
        if (onlyPending && !s.pending.has(requestId)) return [false, s]
        const pending = new Set(s.pending)
        pending.delete(requestId)
        return [true, { pending, answered: remember(s.answered, requestId) }]
      })

    const answer = (requestId: string, behavior: Frames.PermissionBehavior) =>
      Effect.zipRight(claim(requestId, false), deps.outbound.permissionVerdict(requestId, behavior))

    const verdict = (server: string, frame: Frames.ServerFrameOf<"permission_verdict">) =>
      Effect.gen(function*() {
        if (!(yield* claim(frame.request_id, true))) {
          return yield* Effect.logDebug("permission verdict dropped: not pending").pipe(
            Effect.annotateLogs({ server, request_id: frame.request_id })
          )
        }
        yield* deps.outbound.permissionVerdict(frame.request_id, frame.behavior)
        yield* deps.delivery.notice(
          Injection.Notices.permissionAnswered(server, Names.renderPath(frame.from), frame.request_id, frame.behavior)
        )
      })

    return { request, verdict, answer }
  })
