/**
 * One fiber per connection (SPEC §2.6, §3.3, DECISIONS D-19): the handshake, then the established
 * session, then its detachment from presence. The transport forks it into the server's scope when
 * the socket is accepted, so interrupting the server's scope ends every connection; the graceful
 * drain closes the sockets first and lets each fiber end on its own.
 *
 * @since 0.1.0
 */
import { Names } from "@conclave/protocol"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
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

    const establish = (link: Link.Link, authenticated: Handshake.Authenticated) => {
      const { hello, machine, user } = authenticated
      const path = Names.makePath(user, machine, hello.session)
      return Effect.gen(function*() {
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
        if (superseded) yield* Effect.logInfo("session superseded by a newer connection")
        yield* Effect.logInfo("session established").pipe(Effect.annotateLogs({ user, machine }))
        Session.greet(link, path, isAdmin)
        yield* Session.serve({
          link,
          entry,
          caller,
          hub,
          requests,
          maxFrameBytes: config.maxFrameBytes,
          clock,
          debugOn
        })
          .pipe(Effect.ensuring(Effect.zipRight(hub.detach(entry), Effect.logDebug("session detached"))))
      }).pipe(Effect.annotateLogs("path", Names.renderPath(path)))
    }

    return (link, info) =>
      Effect.gen(function*() {
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
        yield* establish(link, outcome.right)
      }).pipe(
        Effect.catchAllCause((cause) => Link.fail(link, cause)),
        Effect.annotateLogs("remote", info.remoteAddress)
      )
  })
