/**
 * A connection's life (SPEC §2.6, §3.3, DECISIONS D-19): its fiber runs the handshake's last step,
 * establishes the session and goes on as the session's first run; from then on the session runs a
 * fiber only while it has frames to handle (`Session`). Every fiber is forked into the transport's scope, so interrupting the server's scope
 * ends every connection; the graceful drain closes the sockets first and lets each fiber end on its
 * own.
 *
 * @since 0.1.0
 */
import { Names } from "@conclave/protocol"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as HashMap from "effect/HashMap"
import * as LogLevel from "effect/LogLevel"
import type * as Runtime from "effect/Runtime"
import * as Enrollments from "./Enrollments.js"
import * as Handshake from "./Handshake.js"
import { Hub } from "./Hub.js"
import type { Authorities } from "./internal/authorities.js"
import type { Lingering } from "./internal/lingering.js"
import * as Link from "./Link.js"
import { RegisterLimiter, unsafeMakeTokenBucket } from "./RateLimit.js"
import { type Caller, Requests } from "./Requests.js"
import { ServerConfig } from "./ServerConfig.js"
import * as Session from "./Session.js"
import { Store } from "./Store.js"

const runLater: Runtime.RunForkOptions = { immediate: false }

/** What the transport knows about an accepted connection. @since 0.1.0 @category models */
export interface ConnectionInfo extends Handshake.Peer {
  /** Called once the handshake is over (either way): frees the per-address pending slot. */
  readonly handshakeDone: () => void
  /**
   * Arm the handshake deadline (`handshakeTimeout` from now): `expire` is called once it passes,
   * unless the returned function was called first.
   */
  readonly armDeadline: (expire: () => void) => () => void
  /**
   * Fork a fiber of the connections (a session's runs, its posts' acks) into the set the server's
   * scope owns, from the server's runtime.
   */
  readonly fork: (effect: Effect.Effect<void>, options?: Runtime.RunForkOptions) => void
  /** The server's lingering session runs. */
  readonly lingering: Lingering
}

/**
 * A connection accepted: the function to call whenever its link has news during the handshake. It
 * answers `undefined` while the handshake waits for frames, then once with the effect (never
 * failing) that completes it — establishing the session, or refusing it — to run in a fiber owned by
 * the server's scope.
 *
 * @since 0.1.0
 * @category models
 */
export type Serve = (link: Link.Link, info: ConnectionInfo) => () => Effect.Effect<void> | undefined

/**
 * The server's `Serve`, over the services in context (read once per server, not per connection).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  authorities: Authorities
): Effect.Effect<Serve, never, Hub | Requests | Store | ServerConfig | RegisterLimiter | Enrollments.Enrollments> =>
  Effect.gen(function*() {
    const config = yield* ServerConfig
    const hub = yield* Hub
    const requests = yield* Requests
    const clock = yield* Effect.clock
    const store = yield* Store
    const env = Handshake.makeEnv({
      config,
      store,
      enroll: Enrollments.complete(yield* Enrollments.Enrollments, store),
      registerLimiter: yield* RegisterLimiter,
      clock,
      authorities
    })
    const debugOn = LogLevel.lessThanEqual(yield* FiberRef.get(FiberRef.currentMinimumLogLevel), LogLevel.Debug)
    const establish = (
      link: Link.Link,
      info: ConnectionInfo,
      authenticated: Handshake.Authenticated
    ): Effect.Effect<void> => {
      const { hello, machine, user } = authenticated
      const now = clock.unsafeCurrentTimeMillis()
      const attach = hub.attach({
        path: Names.makePath(user, machine, hello.session),
        origin: hello.client === "bridge" ? "agent" : "human",
        console: hello.client === "console",
        conn: link,
        now
      })
      return Effect.flatMap(attach, ({ entry, superseded }) => {
        link.established = true
        const isAdmin = env.admins.isAdmin(user)
        const caller: Caller = {
          entry,
          isAdmin,
          bucket: unsafeMakeTokenBucket(config.ratePerSecond, config.rateBurst, now)
        }
        const established = Effect.logInfo("session established")
        // the session's lines (this fiber's, and those of every fiber it starts) carry its remote
        // address, path, user and machine
        const annotations = HashMap.mutate(HashMap.empty<string, unknown>(), (m) => {
          HashMap.set(m, "remote", info.remoteAddress)
          HashMap.set(m, "path", entry.key)
          HashMap.set(m, "user", user)
          HashMap.set(m, "machine", machine)
        })
        // Merged once with the server runtime's own annotations (this fiber's, since it was forked
        // from that runtime): each later run sets the result instead of merging again per fork.
        return Effect.flatMap(FiberRef.get(FiberRef.currentLogAnnotations), (inherited) => {
          const annotate = FiberRef.set(FiberRef.currentLogAnnotations, HashMap.union(inherited, annotations))
          const start = Effect.suspend(() =>
            new Session.Session({
              link,
              entry,
              caller,
              hub,
              requests,
              maxFrameBytes: config.maxFrameBytes,
              clock,
              debugOn,
              // a later run starts from the server's runtime with the session's annotations: an idle
              // session keeps its annotations, not a copy of every fiber ref of this fiber
              fork: (effect, later) =>
                info.fork(Effect.zipRight(annotate, effect), later === true ? runLater : undefined),
              lingering: info.lingering
            }).start(isAdmin)
          )
          return Effect.zipRight(
            annotate,
            Effect.zipRight(
              superseded
                ? Effect.zipRight(Effect.logInfo("session superseded by a newer connection"), established)
                : established,
              start
            )
          )
        })
      })
    }

    return (link, info) => {
      const cancelDeadline = info.armDeadline(() => link.expire())
      // dropped once the handshake is over: an idle session keeps none of its state (the nonce, hello)
      let step: ReturnType<typeof Handshake.machine> | undefined = Handshake.machine(env, link, info)
      const done = Effect.sync(() => {
        cancelDeadline()
        info.handshakeDone()
      })
      const completed = (
        outcome: Effect.Effect<Handshake.Authenticated, Handshake.HandshakeRefused | Handshake.PeerClosed>
      ): Effect.Effect<void> =>
        Effect.matchEffect(outcome, {
          onFailure: (refused) =>
            Effect.zipRight(
              done,
              // a peer that left mid-handshake gets no answer
              refused._tag === "HandshakeRefused"
                ? link.finish({ type: "error", error: refused.error }, Link.CloseCodes.policy).pipe(
                  Effect.annotateLogs("remote", info.remoteAddress)
                )
                : Effect.void
            ),
          onSuccess: (authenticated) => Effect.zipRight(done, establish(link, info, authenticated))
        }).pipe(
          Effect.catchAllCause((cause) =>
            Effect.zipRight(done, Link.fail(link, cause).pipe(Effect.annotateLogs("remote", info.remoteAddress)))
          )
        )
      // The handshake's frames are handled in the socket's callbacks; its last step, with effects, in
      // one fiber owned by the server's scope.
      return (): Effect.Effect<void> | undefined => {
        const outcome = step?.()
        if (outcome === undefined) return undefined
        step = undefined
        link.onWake = undefined
        // a peer that left mid-handshake gets no answer: nothing to run
        if (outcome === Handshake.peerLeft) {
          cancelDeadline()
          info.handshakeDone()
          return undefined
        }
        return completed(outcome)
      }
    }
  })
