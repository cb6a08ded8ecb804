/**
 * A connection's life (SPEC §2.6, §3.3, DECISIONS D-19): its fiber runs the handshake and
 * establishes the session, which from then on runs a fiber only while it has frames to handle
 * (`Session`). Every fiber is forked into the transport's scope, so interrupting the server's scope
 * ends every connection; the graceful drain closes the sockets first and lets each fiber end on its
 * own.
 *
 * @since 0.1.0
 */
import { Names } from "@conclave/protocol"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import * as FiberSet from "effect/FiberSet"
import * as HashMap from "effect/HashMap"
import * as LogLevel from "effect/LogLevel"
import * as Handshake from "./Handshake.js"
import { Hub } from "./Hub.js"
import * as Link from "./Link.js"
import { RegisterLimiter, unsafeMakeTokenBucket } from "./RateLimit.js"
import { type Caller, Requests } from "./Requests.js"
import { ServerConfig } from "./ServerConfig.js"
import * as Session from "./Session.js"
import { Store } from "./Store.js"

/** What the transport knows about an accepted connection. @since 0.1.0 @category models */
export interface ConnectionInfo extends Handshake.Peer {
  /** Called once the handshake is over (either way): frees the per-address pending slot. */
  readonly handshakeDone: () => void
  /**
   * Arm the handshake deadline (`handshakeTimeout` from now): `expire` is called once it passes,
   * unless the returned function was called first.
   */
  readonly armDeadline: (expire: () => void) => () => void
  /** The fibers of the connections (a session's runs, its posts' acks), owned by the server's scope. */
  readonly fibers: FiberSet.FiberSet<void, never>
}

/**
 * The whole life of one connection, as one effect that never fails.
 *
 * @since 0.1.0
 * @category models
 */
export type Serve = (link: Link.Link, info: ConnectionInfo) => Effect.Effect<void>

/**
 * The server's `Serve`, over the services in context (read once per server, not per connection).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Serve, never, Hub | Requests | Store | ServerConfig | RegisterLimiter> = Effect
  .gen(function*() {
    const config = yield* ServerConfig
    const hub = yield* Hub
    const requests = yield* Requests
    const env = Handshake.makeEnv({ config, store: yield* Store, registerLimiter: yield* RegisterLimiter })
    const clock = yield* Effect.clock
    const debugOn = LogLevel.lessThanEqual(yield* FiberRef.get(FiberRef.currentMinimumLogLevel), LogLevel.Debug)

    const establish = (link: Link.Link, info: ConnectionInfo, authenticated: Handshake.Authenticated) =>
      Effect.gen(function*() {
        const { hello, machine, user } = authenticated
        const path = Names.makePath(user, machine, hello.session)
        const now = clock.unsafeCurrentTimeMillis()
        const { entry, superseded } = yield* hub.attach({
          path,
          origin: hello.client === "bridge" ? "agent" : "human",
          conn: link,
          now
        })
        link.established = true
        const isAdmin = env.admins.isAdmin(user)
        const caller: Caller = {
          entry,
          isAdmin,
          bucket: unsafeMakeTokenBucket(config.ratePerSecond, config.rateBurst, now)
        }
        yield* FiberRef.update(FiberRef.currentLogAnnotations, HashMap.set<string, unknown>("path", entry.key))
        if (superseded) yield* Effect.logInfo("session superseded by a newer connection")
        yield* Effect.logInfo("session established").pipe(Effect.annotateLogs({ user, machine }))
        // The session's fibers start from this fiber's runtime: its log annotations come along.
        const runFork = yield* FiberSet.runtime(info.fibers)<never>()
        const session = new Session.Session({
          link,
          entry,
          caller,
          hub,
          requests,
          maxFrameBytes: config.maxFrameBytes,
          clock,
          debugOn,
          fork: (effect) => {
            runFork(effect)
          }
        })
        session.start(isAdmin)
      })

    return (link, info) =>
      Effect.gen(function*() {
        // set for the whole (short) life of this fiber, and inherited by the session's fibers
        yield* FiberRef.update(FiberRef.currentLogAnnotations, HashMap.set<string, unknown>("remote", info.remoteAddress))
        const cancelDeadline = info.armDeadline(() => link.expire())
        const outcome = yield* Effect.either(Handshake.run(env, link, info)).pipe(
          Effect.ensuring(Effect.sync(() => {
            cancelDeadline()
            info.handshakeDone()
          }))
        )
        if (Either.isLeft(outcome)) {
          const refused = outcome.left
          // A peer that left mid-handshake gets no answer.
          if (refused._tag === "HandshakeRefused") {
            yield* link.finish({ type: "error", error: refused.error }, Link.CloseCodes.policy)
          }
          return
        }
        yield* establish(link, info, outcome.right)
      }).pipe(Effect.catchAllCause((cause) => Link.fail(link, cause)))
  })
