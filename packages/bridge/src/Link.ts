/**
 * One link per selected server (SPEC §4.10 with D-26/D-27): dial + handshake (bounded by
 * `Connection`), same-server dedupe through a process-wide claim map, keepalive pings while up,
 * pumping unsolicited frames into the dispatcher, and reconnecting with exponential backoff that
 * resets only after a stable link.
 *
 * @since 0.1.0
 */
import { Backoff, Connection, type Identity } from "@conclave/client"
import { Limits } from "@conclave/protocol"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { Dispatcher } from "./Dispatcher.js"

/** Instance id → the URL that claimed it first (SPEC §4.10.3). @since 0.1.0 @category models */
export interface Claims {
  readonly claim: (instanceId: string, url: string) => Effect.Effect<void, Connection.DuplicateServer>
}

/** @since 0.1.0 @category constructors */
export const makeClaims = (): Claims => {
  const owners = new Map<string, string>()
  return {
    claim: (instanceId, url) =>
      Effect.suspend(() => {
        const owner = owners.get(instanceId)
        if (owner === undefined) {
          owners.set(instanceId, url)
          return Effect.void
        }
        return owner === url
          ? Effect.void
          : Effect.fail(new Connection.DuplicateServer({ url, canonical: owner, instanceId }))
      })
  }
}

/** The dial function (a `Connection.connect`, or a test double). @since 0.1.0 @category models */
export type Connect = (
  options: Connection.ConnectOptions
) => Effect.Effect<Connection.Connection, Connection.ConnectError, Scope.Scope>

/** @since 0.1.0 @category models */
export interface LinkOptions {
  readonly url: string
  readonly identity: Identity.Identity
  readonly dispatcher: Dispatcher
  readonly claims: Claims
  readonly connect?: Connect
  readonly keepaliveMs?: number
}

/**
 * Run one link forever (until interrupted, or until a refused claim disables it).
 *
 * @since 0.1.0
 * @category constructors
 */
export const run = (options: LinkOptions): Effect.Effect<void> =>
  Effect.gen(function*() {
    const { claims, dispatcher, identity, url } = options
    const connect = options.connect ?? Connection.connect
    const keepaliveMs = options.keepaliveMs ?? Limits.KEEPALIVE_INTERVAL_MS
    let attempt = 0
    for (;;) {
      const handle = yield* dispatcher.currentHandle
      const outcome = yield* Effect.scoped(
        Effect.gen(function*() {
          const connection = yield* connect({
            url,
            handle,
            client: "bridge",
            identity,
            onInstanceId: (instanceId) => claims.claim(instanceId, url)
          })
          const upAt = yield* Clock.currentTimeMillis
          yield* Effect.logInfo("link up").pipe(Effect.annotateLogs({ server: url, handle }))
          yield* dispatcher.linkUp(url, connection, handle)
          // Keepalive: only while up, never queued while down (D-26).
          yield* connection.send({ type: "ping" }).pipe(
            Effect.ignore,
            Effect.repeat(Schedule.spaced(keepaliveMs)),
            Effect.forkScoped
          )
          yield* connection.unsolicited.pipe(
            Stream.takeWhile((frame) => frame.type !== "shutdown"),
            Stream.runForEach((frame) => dispatcher.inbound(url, frame))
          )
          return upAt
        })
      ).pipe(Effect.either)
      if (Either.isRight(outcome)) {
        yield* Effect.logInfo("link down").pipe(Effect.annotateLogs({ server: url }))
        yield* dispatcher.linkDown(url)
        const now = yield* Clock.currentTimeMillis
        if (now - outcome.right >= Limits.STABILITY_WINDOW_MS) attempt = 0
      } else if (outcome.left._tag === "DuplicateServer") {
        yield* Effect.logWarning("duplicate server; link disabled").pipe(
          Effect.annotateLogs({ server: url, canonical: outcome.left.canonical })
        )
        return yield* dispatcher.linkDuplicate(url, outcome.left.canonical)
      } else {
        yield* Effect.logWarning("connect failed").pipe(
          Effect.annotateLogs({ server: url, error: outcome.left.message })
        )
      }
      yield* Effect.sleep(Backoff.delay(Backoff.bridge, attempt))
      attempt += 1
    }
  }).pipe(Effect.annotateLogs({ actor: "Link" }))
