/**
 * One actor per WebSocket connection (SPEC §2.6, §2.9, §3.3, DECISIONS D-2, D-3, D-8, D-11, D-15):
 * the handshake, then strictly sequential processing of the session's frames — one reply per
 * request, in order — with a bounded read-ahead (the socket is paused when 64 frames wait) and a
 * bounded outbox (frames handed to `ws.send` whose callback has not fired; overflow force-drops the
 * session as a slow consumer).
 *
 * @since 0.1.0
 */
import { Auth, Base64Url, Codec, Errors, type Frames, Limits, Names, Validate } from "@conclave/protocol"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as DateTime from "effect/DateTime"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type { RawData, WebSocket } from "ws"
import * as Admins from "./Admins.js"
import { type Conn, Hub } from "./Hub.js"
import { makeTokenBucket, RegisterLimiter } from "./RateLimit.js"
import { Requests } from "./Requests.js"
import { ServerConfig } from "./ServerConfig.js"
import { Store } from "./Store.js"

/** WebSocket close codes the server uses. @since 0.1.0 @category constants */
export const CloseCodes = {
  /** Graceful drain (D-19). */
  goingAway: 1001,
  /** Handshake refusal, protocol violation or force-drop. */
  policy: 1008
} as const

/**
 * The connection side of a session: listeners are attached synchronously when the socket is
 * accepted, so no message is lost before the actor fiber starts.
 *
 * @since 0.1.0
 * @category models
 */
export interface Link {
  readonly ws: WebSocket
  /** Tell the client the server is draining and close with 1001 (D-19). */
  readonly shutdown: () => void
  /** Resolved once the socket has closed. */
  readonly closed: Deferred.Deferred<void>
  /** Close immediately without a handshake (end of a bounded drain). */
  readonly terminate: () => void
}

/** @since 0.1.0 @category models */
export interface LinkState extends Link {
  /** The next inbound message; none once the socket closed (or, after a kill, at once). */
  readonly take: Effect.Effect<Option.Option<RawData>>
  readonly conn: Conn
  established: boolean
  killReason: string | undefined
  isClosed: boolean
}

const shutdownFrame = Codec.encodeFrame({ type: "shutdown", reason: "server shutting down" })

/**
 * Wrap an accepted socket. `inboxCapacity` frames are read ahead before the socket is paused;
 * `outboxCapacity` frames may be in flight before `send` reports overflow. Plain synchronous code:
 * it runs inside the `ws` upgrade callback.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeLink = (
  ws: WebSocket,
  options: { readonly inboxCapacity: number; readonly outboxCapacity: number }
): LinkState => {
  const closed = Deferred.unsafeMake<void>(FiberId.none)
  const buffer: Array<RawData> = []
  let waiter: ((raw: RawData | undefined) => void) | undefined
  let inFlight = 0
  const wake = () => {
    const w = waiter
    waiter = undefined
    w?.(undefined)
  }
  const stopped = () => state.isClosed || (state.established && state.killReason !== undefined)
  const take = Effect.async<Option.Option<RawData>>((resume) => {
    const raw = buffer.shift()
    if (raw !== undefined) {
      if (ws.isPaused && buffer.length < options.inboxCapacity && !state.isClosed) ws.resume()
      return resume(Effect.succeed(Option.some(raw)))
    }
    if (stopped()) return resume(Effect.succeed(Option.none()))
    waiter = (next) => resume(Effect.succeed(Option.fromNullable(next)))
    return Effect.sync(() => {
      waiter = undefined
    })
  })
  const state: LinkState = {
    ws,
    take,
    closed,
    established: false,
    killReason: undefined,
    isClosed: false,
    conn: {
      send: (frame) => {
        if (state.isClosed) return true
        if (inFlight >= options.outboxCapacity) return false
        inFlight++
        ws.send(frame, () => {
          inFlight--
        })
        return true
      },
      kill: (reason) => {
        if (state.killReason !== undefined) return
        state.killReason = reason
        wake()
      }
    },
    shutdown: () => {
      if (state.isClosed) return
      if (state.established) ws.send(shutdownFrame)
      ws.close(CloseCodes.goingAway, "server shutting down")
    },
    terminate: () => ws.terminate()
  }
  ws.on("error", () => {
    // Oversized or invalid WebSocket frames: `ws` closes the socket itself; the close event follows.
  })
  ws.on("message", (data) => {
    if (waiter !== undefined) {
      const w = waiter
      waiter = undefined
      return w(data)
    }
    buffer.push(data)
    if (buffer.length >= options.inboxCapacity && !ws.isPaused) ws.pause()
  })
  ws.on("close", () => {
    state.isClosed = true
    Deferred.unsafeDone(closed, Exit.void)
    wake()
  })
  return state
}

/** What the transport knows about the connection. @since 0.1.0 @category models */
export interface ConnectionInfo {
  readonly remoteAddress: string
  /** The request's `Host` header, lowercased ("" when absent). */
  readonly hostHeader: string
  /** Called once the handshake is over (either way): frees the per-address pending slot. */
  readonly handshakeDone: () => void
}

class HandshakeRefused extends Data.TaggedError("HandshakeRefused")<{ readonly error: Frames.ProtocolError }> {}
class PeerClosed extends Data.TaggedError("PeerClosed") {}

const refuse = (error: Frames.ProtocolError) => Effect.fail(new HandshakeRefused({ error }))

const stripDefaultPort = (host: string) => host.replace(/:(80|443)$/, "")

/** The `id` (1–64 characters, D-2) of a JSON request that failed to decode, if it has one. */
const requestIdOf = (raw: RawData): string | undefined => {
  const bytes = Array.isArray(raw) ? Buffer.concat(raw) : Buffer.from(raw as ArrayBuffer)
  const parsed = Either.try(() => JSON.parse(bytes.toString("utf8")) as unknown)
  if (Either.isLeft(parsed) || typeof parsed.right !== "object" || parsed.right === null) return undefined
  const id = (parsed.right as { readonly id?: unknown }).id
  return typeof id === "string" && id.length >= 1 && id.length <= 64 ? id : undefined
}

// SPEC §2.5: kind and message only. A decode failure's detail may quote frame content (a body), so
// that one message is not logged.
const logErrorFrame = (error: Frames.ProtocolError) =>
  Effect.logWarning("error frame emitted").pipe(
    Effect.annotateLogs(
      "message" in error && !(error.kind === "malformed_frame" && error.message.startsWith("invalid `"))
        ? { kind: error.kind, message: error.message }
        : { kind: error.kind }
    )
  )

/**
 * Run the session actor until the connection ends. Never fails.
 *
 * @since 0.1.0
 * @category actors
 */
export const run = (
  state: ReturnType<typeof makeLink>,
  info: ConnectionInfo
): Effect.Effect<void, never, Hub | Requests | Store | ServerConfig | RegisterLimiter> =>
  Effect.gen(function*() {
    const { ws } = state
    const config = yield* ServerConfig
    const hub = yield* Hub
    const requests = yield* Requests
    const store = yield* Store
    const registerLimiter = yield* RegisterLimiter
    const admins = Admins.allowlist(config.admins)

    const next: Effect.Effect<RawData, PeerClosed> = Effect.flatMap(
      state.take,
      Option.match({ onNone: () => Effect.fail(new PeerClosed()), onSome: Effect.succeed })
    )

    const decode = (raw: RawData) =>
      Either.match(Codec.decodeClientFrame(raw as Codec.RawMessage, config.maxFrameBytes), {
        onLeft: (e) => refuse(Errors.malformed(e.detail)),
        onRight: (frame) => Effect.succeed(frame)
      })

    const sendDirect = (frame: Frames.ServerFrame) =>
      Effect.sync(() => {
        if (!state.isClosed) ws.send(Codec.encodeFrame(frame))
      })

    /** Send a final frame, close, and wait (bounded) for the close to complete. */
    const finish = (frame: Frames.ServerFrame | undefined, code: number) =>
      Effect.gen(function*() {
        if (frame !== undefined) {
          if (frame.type === "error") yield* logErrorFrame(frame.error)
          yield* sendDirect(frame)
        }
        if (!state.isClosed) ws.close(code)
        yield* Deferred.await(state.closed).pipe(
          Effect.timeoutOption("2 seconds"),
          Effect.flatMap(Option.match({ onNone: () => Effect.sync(() => ws.terminate()), onSome: () => Effect.void }))
        )
      })

    const verify = (pubkey: string, signature: string, host: string, handle: string, nonce: Uint8Array) => {
      const key = Base64Url.decode(pubkey) ?? new Uint8Array()
      const sig = Base64Url.decode(signature) ?? new Uint8Array()
      return Either.match(Auth.verify(key, Auth.authMessage(host, handle, nonce), sig), {
        onLeft: (e) => refuse(e._tag === "MalformedKey" ? Errors.malformed(e.message) : Errors.unauthorized(e.message)),
        onRight: () => Effect.void
      })
    }

    const storeFailure = (operation: string) => (e: { readonly cause: unknown }) =>
      Effect.logWarning("store failure").pipe(
        Effect.annotateLogs({ operation, cause: String(e.cause) }),
        Effect.zipRight(refuse(Errors.internal(`storage failure during ${operation}`)))
      )

    const handshake = Effect.gen(function*() {
      const hello = yield* Effect.flatMap(next, decode)
      if (hello.type !== "hello") return yield* refuse(Errors.malformed(Errors.Messages.expectedHello))
      if (hello.protocol_version !== Limits.PROTOCOL_VERSION) {
        return yield* refuse(Errors.versionMismatch(hello.protocol_version))
      }
      // D-3: `hello.host` must be an authority this server answers as. Checked with the signature
      // (after the client's Auth), so every refusal comes where SPEC §2.6 puts auth failures.
      const accepted = new Set<string>([info.hostHeader, stripDefaultPort(info.hostHeader)])
      for (const url of config.publicUrls) {
        const authority = Auth.authorityOf(url)
        if (authority !== undefined) accepted.add(authority)
      }
      const host = hello.host ?? info.hostHeader
      const checkHost = Effect.suspend(() => {
        if (hello.host === null || accepted.has(hello.host.toLowerCase())) return Effect.void
        const answersAs = [...new Set([info.hostHeader, ...config.publicUrls.map((u) => Auth.authorityOf(u) ?? u)])]
          .filter((h) => h.length > 0)
          .map((h) => `\`${h}\``)
          .join(" or ")
        return refuse(Errors.unauthorized(`signed for host \`${hello.host}\` but this server answers as ${answersAs}`))
      })
      // SPEC §2.6 step 5, moved before any write (G-18): the handle is checked once possession is proven.
      const checkHandle = Effect.suspend(() => {
        const problem = Validate.validateClientFrame(hello)
        return Either.isLeft(problem) ? refuse(Errors.malformed(problem.left.detail)) : Effect.void
      })

      const nonce = Auth.randomNonce()
      yield* sendDirect({ type: "challenge", nonce: Base64Url.encode(nonce) })

      const second = yield* Effect.flatMap(next, decode)
      if (second.type === "register") {
        if (!(yield* registerLimiter.attempt(info.remoteAddress))) {
          return yield* refuse(Errors.rateLimited("too many registration attempts from this address", 60_000))
        }
        const auth = yield* Effect.flatMap(next, decode)
        if (auth.type !== "auth") return yield* refuse(Errors.malformed(Errors.Messages.expectedAuthAfterRegister))
        if (auth.pubkey !== second.pubkey) return yield* refuse(Errors.unauthorized(Errors.Messages.authKeyMismatch))
        yield* checkHost
        yield* verify(auth.pubkey, auth.signature, host, hello.session, nonce)
        const nameProblem = Validate.validateClientFrame(second)
        if (Either.isLeft(nameProblem)) return yield* refuse(Errors.malformed(nameProblem.left.detail))
        yield* checkHandle
        const pin = admins.pinOf(second.username)
        if (pin !== undefined && pin !== second.pubkey) {
          return yield* refuse(Errors.unauthorized(Errors.Messages.usernameReserved(second.username)))
        }
        const now = DateTimeIso(yield* Clock.currentTimeMillis)
        yield* store.registerUser({ username: second.username, machine: second.machine, pubkey: second.pubkey, now })
          .pipe(
            Effect.catchTags({
              StoreConflict: (e) =>
                refuse(
                  e.what === "pubkey"
                    ? Errors.malformed(Errors.Messages.keyAlreadyEnrolled)
                    : Errors.unauthorized(Errors.Messages.usernameTaken(second.username))
                ),
              StoreError: storeFailure("register")
            }),
            Effect.withSpan("register", { attributes: { user: second.username, machine: second.machine } })
          )
        return { hello, user: second.username, machine: second.machine }
      }
      if (second.type === "auth") {
        yield* checkHost
        yield* verify(second.pubkey, second.signature, host, hello.session, nonce)
        const machine = yield* store.findMachineByKey(second.pubkey).pipe(
          Effect.catchTag("StoreError", storeFailure("authenticate"))
        )
        if (Option.isNone(machine)) return yield* refuse(Errors.unauthorized(Errors.Messages.unknownKey))
        yield* checkHandle
        return { hello, user: machine.value.user, machine: machine.value.name }
      }
      return yield* refuse(Errors.malformed(Errors.Messages.expectedRegisterOrAuth))
    })

    const outcome = yield* handshake.pipe(
      Effect.timeoutFail({
        duration: config.handshakeTimeout,
        onTimeout: () => new HandshakeRefused({ error: Errors.unauthorized(Errors.Messages.handshakeTimedOut) })
      }),
      Effect.either
    )
    info.handshakeDone()
    if (Either.isLeft(outcome)) {
      const e = outcome.left
      return yield* e._tag === "PeerClosed"
        ? finish(undefined, CloseCodes.policy)
        : finish({ type: "error", error: e.error }, CloseCodes.policy)
    }

    const { hello, machine, user } = outcome.right
    const path = Names.makePath(user, machine, hello.session)
    const origin: Frames.Origin = hello.client === "bridge" ? "agent" : "human"
    const { entry, superseded } = yield* hub.attach({
      path,
      origin,
      conn: state.conn,
      now: yield* Clock.currentTimeMillis
    })
    state.established = true
    const isAdmin = admins.isAdmin(user)
    const caller = { entry, isAdmin, bucket: yield* makeTokenBucket(config.ratePerSecond, config.rateBurst) }

    const reply = (frame: Frames.ServerFrame) =>
      Effect.gen(function*() {
        if (frame.type === "error") yield* logErrorFrame(frame.error)
        if (!state.conn.send(Codec.encodeFrame(frame))) yield* hub.kill(entry, Errors.KillReasons.slowConsumer)
      })

    const loop = Effect.gen(function*() {
      if (superseded) yield* Effect.logInfo("session superseded by a newer connection")
      yield* Effect.logInfo("session established").pipe(Effect.annotateLogs({ user, machine }))
      yield* reply({ type: "established", path })
      yield* reply({ type: "server_info", admin: isAdmin })
      while (state.killReason === undefined && !state.isClosed) {
        const raw = yield* Effect.option(next)
        if (Option.isNone(raw)) break
        yield* hub.touch(entry, yield* Clock.currentTimeMillis)
        const decoded = Codec.decodeClientFrame(raw.value as Codec.RawMessage, config.maxFrameBytes)
        if (Either.isLeft(decoded)) {
          const t = decoded.left.frameType
          if (t !== undefined && Codec.isKnownType(t) && !Codec.isClientFrameType(t)) {
            // A server→client kind from a client: refused, but the session stays (SPEC §2.9).
            yield* reply({ type: "error", error: Errors.malformed(Errors.Messages.unexpectedFrame) })
            continue
          }
          // D-8 / G-26: say why, then close. A request kind that carried a usable id gets it back (D-2).
          const badId = t !== undefined && Codec.isClientFrameType(t) ? requestIdOf(raw.value) : undefined
          const error = Errors.malformed(decoded.left.detail)
          return yield* finish(
            badId === undefined ? { type: "error", error } : { type: "error", id: badId, error },
            CloseCodes.policy
          )
        }
        const frame = decoded.right
        const id = "id" in frame ? frame.id : undefined
        const withId = (f: Frames.Reply): Frames.Reply => (id === undefined ? f : { ...f, id })
        if (frame.type === "hello" || frame.type === "register" || frame.type === "auth") {
          yield* reply({ type: "error", error: Errors.malformed(Errors.Messages.unexpectedFrame) })
          continue
        }
        yield* Effect.logDebug("frame").pipe(
          Effect.annotateLogs({ kind: frame.type === "admin" ? frame.op.kind : frame.type })
        )
        const valid = Validate.validateClientFrame(frame)
        if (Either.isLeft(valid)) {
          yield* reply(withId({ type: "error", error: Errors.malformed(valid.left.detail) }))
          continue
        }
        yield* reply(yield* requests.handle(caller, frame))
      }
      if (state.killReason !== undefined) {
        yield* Effect.logInfo("session force-dropped").pipe(Effect.annotateLogs({ reason: state.killReason }))
        yield* finish({ type: "error", error: Errors.unauthorized(state.killReason) }, CloseCodes.policy)
      }
    }).pipe(
      Effect.ensuring(
        Effect.zipRight(hub.detach(entry), Effect.logDebug("session detached"))
      ),
      Effect.annotateLogs({ path: entry.key })
    )
    yield* loop
  }).pipe(
    Effect.catchAllCause((cause) =>
      Effect.zipRight(
        Effect.logWarning("session failed", cause),
        // Never leave the socket open behind a failed actor (it would hold the connection forever).
        Effect.suspend(() => {
          if (state.isClosed) return Effect.void
          state.ws.send(Codec.encodeFrame({ type: "error", error: Errors.internal("session failed") }))
          state.ws.close(1011)
          return Deferred.await(state.closed).pipe(
            Effect.timeoutOption("2 seconds"),
            Effect.flatMap(Option.match({
              onNone: () => Effect.sync(() => state.ws.terminate()),
              onSome: () => Effect.void
            }))
          )
        })
      )
    ),
    Effect.annotateLogs({ remote: info.remoteAddress })
  )

const DateTimeIso = (ms: number): string => DateTime.formatIso(DateTime.unsafeMake(ms))
