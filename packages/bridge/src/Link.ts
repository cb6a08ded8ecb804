/**
 * One link per selected server (SPEC §4.10 with D-26/D-27): dial + handshake (bounded by
 * `Connection`), same-server dedupe through a process-wide claim map, keepalive pings while up,
 * pumping unsolicited frames into the dispatcher, and reconnecting with exponential backoff that
 * resets only after a stable link.
 *
 * @since 0.1.0
 */
import { Backoff, Connection, History, type Identity, Reconnect } from "@conclave/client"
import { Errors, Limits } from "@conclave/protocol"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
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
  /**
   * Before the first dial, look (with a throwaway session) for a live session already holding the
   * handle, so that the newcomer is the one renamed, once, instead of two sessions superseding
   * each other (issue 23, item 2). Off for `--as` and test doubles.
   */
  readonly probeHandles?: boolean
}

const PROBE_TIMEOUT_MS = 5_000

/** A failed dial as whoami and the tools show it: the error, then what to do (issue 23, item 4). */
const describeFailure = (error: Connection.ConnectError): string => {
  if (
    error._tag === "AuthRejected" && error.error.kind === "unauthorized" &&
    error.error.message === Errors.Messages.unknownKey
  ) {
    return `not registered on ${error.url}: run \`conclave register --server ${error.url} --username <you>\` in a terminal (the bridge retries in the background)`
  }
  const fix = Connection.fixFor(error)
  return fix === undefined ? error.message : `${error.message}: ${fix} (the bridge retries in the background)`
}

/** How one attempt ended, when the loop goes on. */
type Ended = "down" | "connect failed"

/**
 * Run one link forever (until interrupted, or until a refused claim disables it).
 *
 * @since 0.1.0
 * @category constructors
 */
export const run = (options: LinkOptions): Effect.Effect<void> => {
  const { claims, dispatcher, identity, url } = options
  const connect = options.connect ?? Connection.connect
  const keepaliveMs = options.keepaliveMs ?? Limits.KEEPALIVE_INTERVAL_MS
  let probed = options.probeHandles !== true
  const probe = Effect.scoped(
    Effect.gen(function*() {
      const connection = yield* connect({
        url,
        handle: `bridge-probe-${process.pid}`,
        client: "bridge",
        identity
      })
      const reply = yield* connection.request({ type: "who", channel: null }, { timeoutMs: PROBE_TIMEOUT_MS })
      if (reply.type !== "presence") return
      const mine = reply.sessions.filter((p) =>
        p.user === connection.path.user && p.machine === connection.path.machine
      )
      yield* dispatcher.handlesInUse(url, new Set(mine.map((p) => p.session)))
      probed = true
    })
  ).pipe(
    Effect.catchAll((e) =>
      Effect.logDebug("handle probe failed").pipe(Effect.annotateLogs({ server: url, error: e.message }))
    )
  )
  const session = (up: Effect.Effect<void>): Effect.Effect<Ended, Connection.DuplicateServer> =>
    Effect.gen(function*() {
      if (!probed) yield* probe
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
          yield* up
          yield* Effect.logInfo("link up").pipe(Effect.annotateLogs({ server: url, handle }))
          yield* dispatcher.linkUp(url, connection, handle)
          yield* Reconnect.keepalive(connection.send({ type: "ping" }), keepaliveMs)
          yield* connection.unsolicited.pipe(
            Stream.takeWhile((frame) => frame.type !== "shutdown"),
            Stream.runForEach((frame) => dispatcher.inbound(url, frame))
          )
          return yield* connection.closeCode
        })
      ).pipe(Effect.either)
      if (Either.isRight(outcome)) {
        yield* Effect.logInfo("link down").pipe(Effect.annotateLogs({ server: url, code: outcome.right ?? null }))
        // 1009: a frame over this client's limit, not a flapping link (issue 22)
        yield* dispatcher.linkDown(url, outcome.right === History.TOO_BIG ? "too_large" : undefined)
        return "down"
      }
      if (outcome.left._tag === "DuplicateServer") return yield* outcome.left
      yield* Effect.logWarning("connect failed").pipe(Effect.annotateLogs({ server: url, error: outcome.left.message }))
      yield* dispatcher.linkFailed(url, describeFailure(outcome.left))
      return "connect failed"
    })
  return Reconnect.forever({ backoff: Backoff.bridge, session, onRetry: () => Effect.void }).pipe(
    Effect.catchTag("DuplicateServer", (e) =>
      Effect.logWarning("duplicate server; link disabled").pipe(
        Effect.annotateLogs({ server: url, canonical: e.canonical }),
        Effect.zipRight(dispatcher.linkDuplicate(url, e.canonical))
      )),
    Effect.annotateLogs({ actor: "Link" })
  )
}
