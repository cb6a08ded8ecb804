/**
 * One actor per WebSocket connection (SPEC §2.6, §2.9, §3.3, DECISIONS D-2, D-3, D-8, D-11, D-15):
 * the handshake, then strictly sequential processing of the session's frames — one reply per
 * request, in order — with a bounded read-ahead (the socket is paused when 64 frames wait) and a
 * bounded outbox (frames handed to `ws.send` since the socket's send buffer was last empty;
 * overflow force-drops the session as a slow consumer). The handshake runs in the socket's
 * callbacks while it goes the common way (a valid `hello`; an `auth` that verifies, with a key the
 * store finds synchronously) and hands over to a fiber for anything else. An established session
 * holds no fiber while idle: one is started when a frame, a kill or the close arrives, and ends when
 * nothing is left to do. Without tracing or debug logging, a whisper that will be delivered, a ping,
 * a join to a public channel read synchronously and the peer's close are handled in the socket's
 * callback instead (no fiber); every other frame and every refusal goes through the fiber. Frames
 * sent to one socket within an event-loop turn leave in one write.
 *
 * @since 0.1.0
 */
import { Auth, Base64Url, Codec, Errors, type Frames, Limits, Names, Validate } from "@conclave/protocol"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as DateTime from "effect/DateTime"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as HashMap from "effect/HashMap"
import * as HashSet from "effect/HashSet"
import * as Inspectable from "effect/Inspectable"
import type * as List from "effect/List"
import type * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import type * as LogSpan from "effect/LogSpan"
import * as Option from "effect/Option"
import type * as Runtime from "effect/Runtime"
import type { RawData, WebSocket } from "ws"
import * as Admins from "./Admins.js"
import { type Conn, Hub, type SessionEntry } from "./Hub.js"
import * as Corking from "./internal/corking.js"
import * as Wire from "./internal/wire.js"
import { RegisterLimiter, unsafeMakeTokenBucket } from "./RateLimit.js"
import { type Caller, type PostOutcome, Requests } from "./Requests.js"
import { ServerConfig, type ServerConfigShape } from "./ServerConfig.js"
import { Store, type StoreShape } from "./Store.js"

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
  /** The next buffered inbound message, if any (resumes a paused socket once below the bound). */
  readonly poll: () => RawData | undefined
  /** The next buffered inbound message, left in the buffer. */
  readonly peek: () => RawData | undefined
  /**
   * Called after a message was buffered, a kill or the close, once set (an established session
   * holds no fiber while idle: this starts one).
   */
  onWake: (() => void) | undefined
  readonly conn: Conn
  established: boolean
  killReason: string | undefined
  isClosed: boolean
}

const shutdownFrame = Codec.encodeFrame({ type: "shutdown", reason: "server shutting down" })

/** Buffers are sent as text frames: the hub encodes a delivery to UTF-8 once for all recipients. */
const textFrame = { binary: false } as const

/**
 * The part of the underlying TCP socket used to coalesce writes and to write whole frames.
 *
 * @since 0.1.0
 * @category models
 */
export interface Corkable {
  readonly cork: () => void
  readonly uncork: () => void
  readonly write: (chunk: Buffer) => boolean
  readonly destroyed: boolean
}

// The whole wire frame of the payload last written (`Wire.textFrame`): the hub hands the same
// bytes to every recipient of a fan-out, so the frame is built once per fan-out, not per socket.
// Keyed by the Buffer's identity: a Buffer handed to `send` must never be changed afterwards (the
// hub allocates a fresh one per fan-out, see `Conn.send`).
let lastPayload: Buffer | undefined
let lastFrame: Buffer | undefined
const wireFrame = (payload: string | Buffer): Buffer => {
  if (typeof payload === "string") return Wire.textFrame(payload)
  if (payload !== lastPayload || lastFrame === undefined) {
    lastFrame = Wire.textFrame(payload)
    lastPayload = payload
  }
  return lastFrame
}

/**
 * Wrap an accepted socket. `inboxCapacity` frames are read ahead before the socket is paused;
 * `outboxCapacity` frames may wait behind a non-empty socket send buffer before `send` reports
 * overflow. Plain synchronous code: it runs inside the `ws` upgrade callback.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeLink = (
  ws: WebSocket,
  options: {
    readonly inboxCapacity: number
    readonly outboxCapacity: number
    /** The socket under `ws`; when given, frames sent in one event-loop turn are coalesced. */
    readonly socket?: Corkable
  }
): LinkState => {
  const socket = options.socket
  let corked = false
  const uncork = () => {
    corked = false
    socket?.uncork()
  }
  const closed = Deferred.unsafeMake<void>(FiberId.none)
  const buffer: Array<RawData> = []
  let waiter: ((raw: RawData | undefined) => void) | undefined
  // Frames handed to `ws.send` since the socket's send buffer was last empty: an upper bound of the
  // frames not yet written to the kernel, counted without a per-send callback.
  let queued = 0
  let counting = true
  const wake = () => {
    const w = waiter
    waiter = undefined
    w?.(undefined)
  }
  const stopped = () => state.isClosed || (state.established && state.killReason !== undefined)
  const poll = () => {
    const raw = buffer.shift()
    if (raw !== undefined && ws.isPaused && buffer.length < options.inboxCapacity && !state.isClosed) ws.resume()
    return raw
  }
  const take = Effect.async<Option.Option<RawData>>((resume) => {
    const raw = poll()
    if (raw !== undefined) return resume(Effect.succeed(Option.some(raw)))
    if (stopped()) return resume(Effect.succeed(Option.none()))
    waiter = (next) => resume(Effect.succeed(Option.fromNullable(next)))
    return Effect.sync(() => {
      waiter = undefined
    })
  })
  const state: LinkState = {
    ws,
    take,
    poll,
    peek: () => buffer[0],
    onWake: undefined,
    closed,
    established: false,
    killReason: undefined,
    isClosed: false,
    conn: {
      send: (frame) => {
        if (state.isClosed) return true
        if (!corked) {
          // Everything handed over earlier has reached the kernel once the socket's buffer is empty.
          const backlogged = ws.bufferedAmount > 0
          if (!backlogged) queued = 0
          counting = true
          if (socket !== undefined && !socket.destroyed) {
            socket.cork()
            corked = true
            // Frames of a turn that began with an empty buffer leave together at the uncork; they
            // count only if they are still there when a later turn begins.
            counting = backlogged
            Corking.uncorkLater(uncork)
          }
        }
        if (counting) {
          if (queued >= options.outboxCapacity) return false
          queued++
        }
        // While the socket is open, the whole frame goes straight to it (`ws` would frame it again for
        // each recipient); its own writes (pings, the close) are whole frames too, so none interleave.
        if (socket !== undefined && !socket.destroyed && ws.readyState === ws.OPEN) socket.write(wireFrame(frame))
        else ws.send(frame, textFrame)
        return true
      },
      kill: (reason) => {
        if (state.killReason !== undefined) return
        state.killReason = reason
        wake()
        state.onWake?.()
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
    state.onWake?.()
  })
  ws.on("close", () => {
    state.isClosed = true
    Deferred.unsafeDone(closed, Exit.void)
    wake()
    state.onWake?.()
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
  /**
   * Arm the handshake deadline (`handshakeTimeout` from now): `expire` is called once it passes,
   * unless the returned function was called first.
   */
  readonly armDeadline: (expire: () => void) => () => void
  /**
   * Start a fiber owned by the transport's scope (not started at once: scheduled). An established
   * session runs one only while it has frames (or a kill, or the close) to process.
   */
  readonly fork: (effect: Effect.Effect<void>) => void
}

class HandshakeRefused extends Data.TaggedError("HandshakeRefused")<{ readonly error: Frames.ProtocolError }> {}
class PeerClosed extends Data.TaggedError("PeerClosed") {}
// One instance: it carries nothing, and building an Error (its stack) per closed connection showed in
// the handshake profile.
const peerClosed = new PeerClosed()

const refuse = (error: Frames.ProtocolError) => Effect.fail(new HandshakeRefused({ error }))

const stripDefaultPort = (host: string) => host.replace(/:(80|443)$/, "")

/** What `run` derives from the configuration, once per configuration rather than per connection. */
interface Derived {
  readonly admins: Admins.Allowlist
  /** The authorities of the public URLs (D-3). */
  readonly authorities: ReadonlyArray<string>
  /** How the public URLs are named in a host refusal. */
  readonly named: ReadonlyArray<string>
}
const derivedCache = new WeakMap<ServerConfigShape, Derived>()
const derive = (config: ServerConfigShape): Derived => {
  let derived = derivedCache.get(config)
  if (derived === undefined) {
    const parsed = config.publicUrls.map((url) => Auth.authorityOf(url))
    derived = {
      admins: Admins.allowlist(config.admins),
      authorities: parsed.filter((a) => a !== undefined),
      named: parsed.map((a, i) => a ?? config.publicUrls[i]!)
    }
    derivedCache.set(config, derived)
  }
  return derived
}

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
const errorFrameAnnotations = (error: Frames.ProtocolError): Record<string, unknown> =>
  "message" in error && !(error.kind === "malformed_frame" && error.message.startsWith("invalid `"))
    ? { kind: error.kind, message: error.message }
    : { kind: error.kind }
const logErrorFrame = (error: Frames.ProtocolError) =>
  Effect.logWarning("error frame emitted").pipe(Effect.annotateLogs(errorFrameAnnotations(error)))

/** Send a final frame, close, and wait (bounded) for the close to complete. */
const finishLink = (state: LinkState, frame: Frames.ServerFrame | undefined, code: number) =>
  Effect.gen(function*() {
    if (frame !== undefined) {
      if (frame.type === "error") yield* logErrorFrame(frame.error)
      if (!state.isClosed) state.ws.send(Codec.encodeFrame(frame))
    }
    // Closed already (the peer went first): nothing to wait for, and no timer to start.
    if (state.isClosed) return
    state.ws.close(code)
    yield* Deferred.await(state.closed).pipe(
      Effect.timeoutOption("2 seconds"),
      Effect.flatMap(Option.match({ onNone: () => Effect.sync(() => state.ws.terminate()), onSome: () => Effect.void }))
    )
  })

/** The last resort of a failed actor: never leave the socket open (it would hold the connection forever). */
const failLink = (state: LinkState, cause: Cause.Cause<unknown>) =>
  Effect.zipRight(
    Effect.logWarning("session failed", cause),
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

type Step = "killed" | "closed" | "idle" | "flush" | { readonly raw: RawData }

const pong: Frames.Reply = { type: "pong" }

/** Posts a session may have queued for commit before it waits for their acks (pipelining). */
export const MAX_PIPELINED_POSTS = 64

/**
 * The established phase (SPEC §2.9, D-11): no fiber while idle. A message, a kill or the close
 * starts one processor fiber (never two: `running`), which handles the buffered frames strictly in
 * order and ends when none is left — or ends the session (detach) after a kill or the close.
 */
const serveEstablished = (
  state: LinkState,
  input: {
    readonly entry: SessionEntry
    readonly caller: Caller
    readonly hub: Hub
    readonly requests: Requests
    readonly maxFrameBytes: number
    readonly debugOn: boolean
    /** Whether requests make spans (then every frame takes the processor, which makes them). */
    readonly tracing: boolean
    readonly clock: Clock.Clock
    /** The log annotations of every line the session logs (path and remote address). */
    readonly annotations: HashMap.HashMap<string, unknown>
    readonly fork: (effect: Effect.Effect<void>) => void
    /** Write a line annotated as the session's from plain code (`logNow`). */
    readonly log: (level: LogLevel.LogLevel, message: string, annotations: Record<string, unknown>) => void
  }
) => {
  const { caller, clock, debugOn, entry, hub, maxFrameBytes, requests } = input
  let running = false
  let done = false
  // The last frame decoded by the synchronous path and left to the processor (decoded once).
  let predecodedRaw: RawData | undefined
  let predecoded: ReturnType<typeof Codec.decodeClientFrame> | undefined
  const decode = (raw: RawData) => {
    if (raw === predecodedRaw && predecoded !== undefined) {
      const decoded = predecoded
      predecodedRaw = predecoded = undefined
      return decoded
    }
    return Codec.decodeClientFrame(raw as Codec.RawMessage, maxFrameBytes)
  }
  // Replies still owed, in request order: posts queued for commit whose acks wait for their COMMIT
  // (D-5). A session keeps reading its frames meanwhile, so one group commit takes many of its posts;
  // any other frame waits until they are answered, so replies stay in request order.
  const owed: Array<Effect.Effect<Frames.Reply>> = []

  const reply = (frame: Frames.ServerFrame) =>
    Effect.suspend(() => {
      const logged = frame.type === "error" ? logErrorFrame(frame.error) : Effect.void
      return state.conn.send(Codec.encodeFrame(frame))
        ? logged
        : Effect.zipRight(logged, hub.kill(entry, Errors.KillReasons.slowConsumer))
    })

  const flushOwed = Effect.suspend(() =>
    owed.length === 0
      ? Effect.void
      : Effect.forEach(owed.splice(0), (pending) => Effect.flatMap(pending, reply), { discard: true })
  )

  // One synchronous step, so `running` is cleared in the same turn that found nothing to do.
  const nextStep = Effect.sync((): Step => {
    if (state.killReason !== undefined) return "killed"
    if (state.isClosed) return "closed"
    const raw = state.poll()
    if (raw !== undefined) return { raw }
    if (owed.length > 0) return "flush"
    running = false
    return "idle"
  })

  /** Handle one frame; true when the session was closed (malformed frame, D-8). */
  const handleFrame = (raw: RawData) =>
    Effect.gen(function*() {
      entry.lastSeen = clock.unsafeCurrentTimeMillis()
      const decoded = decode(raw)
      if (Either.isRight(decoded) && decoded.right.type === "channel_msg") {
        const post = decoded.right
        if (Either.isRight(Validate.validateClientFrame(post))) {
          if (debugOn) yield* Effect.logDebug("frame").pipe(Effect.annotateLogs({ kind: post.type }))
          owed.push(yield* requests.beginPost(caller, post))
          if (owed.length >= MAX_PIPELINED_POSTS) yield* flushOwed
          return false
        }
      }
      yield* flushOwed
      if (Either.isLeft(decoded)) {
        const t = decoded.left.frameType
        if (t !== undefined && Codec.isKnownType(t) && !Codec.isClientFrameType(t)) {
          // A server→client kind from a client: refused, but the session stays (SPEC §2.9).
          yield* reply({ type: "error", error: Errors.malformed(Errors.Messages.unexpectedFrame) })
          return false
        }
        // D-8 / G-26: say why, then close. A request kind that carried a usable id gets it back (D-2).
        const badId = t !== undefined && Codec.isClientFrameType(t) ? requestIdOf(raw) : undefined
        const error = Errors.malformed(decoded.left.detail)
        yield* finishLink(
          state,
          badId === undefined ? { type: "error", error } : { type: "error", id: badId, error },
          CloseCodes.policy
        )
        return true
      }
      const frame = decoded.right
      if (frame.type === "hello" || frame.type === "register" || frame.type === "auth") {
        yield* reply({ type: "error", error: Errors.malformed(Errors.Messages.unexpectedFrame) })
        return false
      }
      if (debugOn) {
        yield* Effect.logDebug("frame").pipe(
          Effect.annotateLogs({ kind: frame.type === "admin" ? frame.op.kind : frame.type })
        )
      }
      const valid = Validate.validateClientFrame(frame)
      if (Either.isLeft(valid)) {
        const error: Frames.Reply = { type: "error", error: Errors.malformed(valid.left.detail) }
        yield* reply("id" in frame && frame.id !== undefined ? { ...error, id: frame.id } : error)
        return false
      }
      yield* reply(yield* requests.handle(caller, frame))
      return false
    })

  /** End the session (once): no more wakes, and presence no longer holds it. False when it had ended. */
  const endNow = (): boolean => {
    if (done) return false
    done = true
    state.onWake = undefined
    hub.unsafe.detach(entry)
    return true
  }
  const end = Effect.suspend(() => endNow() ? Effect.logDebug("session detached") : Effect.void)

  // Each run is a fiber of its own that ends with the run: its annotations are set, not scoped
  // (`annotateLogs` would cost a scoped FiberRef change per wake).
  const annotate = FiberRef.set(FiberRef.currentLogAnnotations, input.annotations)
  const processor = Effect.gen(function*() {
    yield* annotate
    while (true) {
      const step = yield* nextStep
      if (step === "idle") return
      if (step === "flush") {
        yield* flushOwed
        continue
      }
      if (step === "closed") return yield* end
      if (step === "killed") {
        yield* Effect.logInfo("session force-dropped").pipe(Effect.annotateLogs({ reason: state.killReason }))
        yield* finishLink(
          state,
          { type: "error", error: Errors.unauthorized(state.killReason ?? "") },
          CloseCodes.policy
        )
        return yield* end
      }
      if (yield* handleFrame(step.raw)) return yield* end
    }
  }).pipe(
    Effect.onInterrupt(() => end),
    Effect.catchAllCause((cause) => Effect.zipRight(failLink(state, cause), end))
  )

  // The synchronous path: while no fiber runs for the session, a post (started: queued for commit), a
  // whisper that will be delivered, a join to a public channel, or a ping, is answered right here in
  // the socket's callback — no fiber, no Effect steps (STACK.md "Fan-out speed"). Anything else, including every
  // refusal, is left to the processor, which answers it (and logs) as it answers every frame; order
  // is kept because the processor is not running. Off with debug logging (a line per frame) or
  // tracing (a span per request).
  const synchronous = !debugOn && !input.tracing
  /** A defect in plain code costs the session (`failLink`, as in the processor), not the process. */
  const failNow = (defect: unknown): void => {
    if (running || done) return
    running = true
    input.fork(Effect.zipRight(annotate, Effect.zipRight(failLink(state, Cause.die(defect)), end)))
  }
  // Posts queued for commit here whose replies wait for their COMMIT (D-5), oldest first. The session
  // keeps reading posts meanwhile (one group commit takes many); any other frame waits until they are
  // answered. A post's outcome can come before an older one's (a row refused alone while the rest of
  // its batch is retried), so replies leave from the front only, in request order. When the last owed
  // reply leaves, or a slot frees under the pipelining cap, the session is woken again.
  const owedNow: Array<{ outcome: PostOutcome | undefined }> = []
  // Inside `answerNow`'s call to `postNow` (a closed store answers at once): no wake from there.
  let starting = false
  const sendOwed = (outcome: PostOutcome): void => {
    if (outcome.failure !== undefined) {
      input.log(LogLevel.Warning, "store failure", outcome.failure)
      if (outcome.reply.type === "error") {
        input.log(LogLevel.Warning, "error frame emitted", errorFrameAnnotations(outcome.reply.error))
      }
    }
    if (outcome.fanOutDefect !== undefined) {
      input.log(LogLevel.Warning, "after-commit action failed", { cause: String(outcome.fanOutDefect) })
    }
    if (!state.conn.send(Codec.encodeFrame(outcome.reply))) hub.unsafe.kill(entry, Errors.KillReasons.slowConsumer)
  }
  const postAnswered = (slot: { outcome: PostOutcome | undefined }) => (outcome: PostOutcome): void => {
    slot.outcome = outcome
    const before = owedNow.length
    try {
      while (owedNow.length > 0 && owedNow[0]!.outcome !== undefined) sendOwed(owedNow.shift()!.outcome!)
    } catch (defect) {
      // Called from the store's writer: a defect costs this session (as in `wake`), never the writer.
      return failNow(defect)
    }
    if (starting || owedNow.length === before) return
    if (owedNow.length === 0 || before === MAX_PIPELINED_POSTS) wake()
  }
  /** Answer (or, for a post, start) the first buffered frame here; false when it is left to the processor. */
  const answerNow = (): boolean => {
    const raw = state.peek()
    if (raw === undefined) return false
    const decoded = Codec.decodeClientFrame(raw as Codec.RawMessage, maxFrameBytes)
    const frame = Either.isRight(decoded) ? decoded.right : undefined
    let answer: Frames.Reply | undefined
    const now = clock.unsafeCurrentTimeMillis()
    if (frame !== undefined && Either.isRight(Validate.validateClientFrame(frame))) {
      if (frame.type === "channel_msg") {
        if (owedNow.length < MAX_PIPELINED_POSTS) {
          const slot: { outcome: PostOutcome | undefined } = { outcome: undefined }
          owedNow.push(slot)
          starting = true
          let started = false
          try {
            started = requests.postNow(caller, frame, now, postAnswered(slot))
          } finally {
            starting = false
          }
          if (started) {
            state.poll()
            entry.lastSeen = now
            return true
          }
          owedNow.pop()
        }
      } else if (owedNow.length > 0) {
        // answered once the posts before it are
      } else if (frame.type === "whisper") answer = requests.whisperNow(caller, frame, now)
      else if (frame.type === "join") answer = requests.joinNow(caller, frame)
      else if (frame.type === "ping") answer = frame.id === undefined ? pong : { type: "pong", id: frame.id }
    }
    if (answer === undefined) {
      predecodedRaw = raw
      predecoded = decoded
      return false
    }
    state.poll()
    entry.lastSeen = now
    if (!state.conn.send(Codec.encodeFrame(answer))) hub.unsafe.kill(entry, Errors.KillReasons.slowConsumer)
    return true
  }

  /**
   * The synchronous part of `wake`; true when nothing is left for the processor. Only called while no
   * processor runs (the processor answers its owed posts before it goes idle); posts started here may
   * be owed, and every other frame then waits behind them (`answerNow`).
   */
  const handleHere = (): boolean => {
    while (state.killReason === undefined && !state.isClosed && answerNow()) {
      // a slow-consumer kill above woke the session again and started the processor
      if (running || done) return true
    }
    if (state.killReason !== undefined) return false
    if (state.isClosed) {
      // The peer went: the session ends here (`end` without its debug line, which is off).
      endNow()
      return true
    }
    return state.peek() === undefined
  }

  const wake = () => {
    if (running || done) return
    if (synchronous) {
      // This runs in a socket callback, outside any fiber: a defect here must cost the session (as in
      // the processor, `failLink`), not the process. The frame is not retried (it may have been delivered).
      try {
        if (handleHere()) return
      } catch (defect) {
        return failNow(defect)
      }
    }
    // What is left (a frame for the processor, a kill) waits for the acks still owed: the last wakes the session.
    if (owedNow.length > 0) return
    running = true
    input.fork(processor)
  }

  /** `reply` where nothing is owed and the frame is not an error (the `established` greeting). */
  const replyNow = (frame: Frames.ServerFrame): void => {
    if (!state.conn.send(Codec.encodeFrame(frame))) hub.unsafe.kill(entry, Errors.KillReasons.slowConsumer)
  }
  return { reply, replyNow, wake }
}

/** What a session needs of the server, read once per server rather than per connection. */
interface Env {
  readonly config: ServerConfigShape
  readonly derived: Derived
  readonly hub: Hub
  readonly requests: Requests
  readonly store: StoreShape
  readonly registerLimiter: RegisterLimiter
  readonly runtime: Runtime.Runtime<never>
  readonly clock: Clock.Clock
  /** Requests make spans. */
  readonly tracing: boolean
  /** The log annotations every session line starts from. */
  readonly annotations: HashMap.HashMap<string, unknown>
  /** The runtime's logging, for lines written from plain code (`logNow`). */
  readonly logging: {
    readonly minimumLevel: LogLevel.LogLevel
    readonly loggers: HashSet.HashSet<Logger.Logger<unknown, unknown>>
    readonly spans: List.List<LogSpan.LogSpan>
    readonly fiberId: FiberId.FiberId
  }
}

/**
 * Write a log line from plain code (a socket callback) through the runtime's loggers, as `Effect.log`
 * does in a fiber — same minimum level, loggers and message shape — without running an effect
 * (`Runtime.runSync` of a log line cost about 100 µs a handshake).
 */
const logNow = (
  env: Env,
  logLevel: LogLevel.LogLevel,
  message: string,
  annotations: HashMap.HashMap<string, unknown>
): void => {
  const { fiberId, loggers, minimumLevel, spans } = env.logging
  if (LogLevel.greaterThan(minimumLevel, logLevel) || HashSet.size(loggers) === 0) return
  const context = env.runtime.fiberRefs
  const date = new Date(env.clock.unsafeCurrentTimeMillis())
  Inspectable.withRedactableContext(context, () => {
    for (const logger of loggers) {
      logger.log({ fiberId, logLevel, message: [message], cause: Cause.empty, context, spans, annotations, date })
    }
  })
}

/** The handshake's state, shared by its synchronous part and the fiber that takes over from it. */
interface Handshake {
  /** The handshake deadline passed. */
  expired: boolean
  /** Wakes the fiber's pending `next`, if one waits. */
  pendingWake: (() => void) | undefined
  /** The accepted `hello` and the nonce of the challenge sent for it. */
  greeted: { readonly hello: Frames.ClientFrameOf<"hello">; readonly nonce: Uint8Array } | undefined
  /** Cancel the deadline, stop the wakes and free the pending slot: the handshake is over (idempotent). */
  readonly over: () => void
}

interface Authenticated {
  readonly hello: Frames.ClientFrameOf<"hello">
  readonly user: string
  readonly machine: string
}

/** D-3: `hello.host` must be an authority this server answers as; the refusal, or `undefined`. */
const hostProblem = (
  env: Env,
  info: ConnectionInfo,
  hello: Frames.ClientFrameOf<"hello">
): Frames.ProtocolError | undefined => {
  if (hello.host === null) return undefined
  const signed = hello.host.toLowerCase()
  if (
    signed === info.hostHeader || signed === stripDefaultPort(info.hostHeader) ||
    env.derived.authorities.includes(signed)
  ) return undefined
  const answersAs = [...new Set([info.hostHeader, ...env.derived.named])]
    .filter((h) => h.length > 0)
    .map((h) => `\`${h}\``)
    .join(" or ")
  return Errors.unauthorized(`signed for host \`${hello.host}\` but this server answers as ${answersAs}`)
}

/** The signature over the challenge; the refusal, or `undefined` when it verifies. */
const signatureProblem = (
  info: ConnectionInfo,
  greeted: NonNullable<Handshake["greeted"]>,
  auth: Frames.ClientFrameOf<"auth">
): Frames.ProtocolError | undefined => {
  const { hello, nonce } = greeted
  const key = Base64Url.decode(auth.pubkey) ?? new Uint8Array()
  const sig = Base64Url.decode(auth.signature) ?? new Uint8Array()
  const verified = Auth.verify(key, Auth.authMessage(hello.host ?? info.hostHeader, hello.session, nonce), sig)
  if (Either.isRight(verified)) return undefined
  return verified.left._tag === "MalformedKey"
    ? Errors.malformed(verified.left.message)
    : Errors.unauthorized(verified.left.message)
}

/**
 * The established session: registered in presence (superseding a live one on its path), greeted
 * with `established` and `server_info`, and from then on woken by its frames. Plain synchronous code.
 */
const establish = (env: Env, state: LinkState, info: ConnectionInfo, outcome: Authenticated): void => {
  const { config, hub } = env
  const { hello, machine, user } = outcome
  const path = Names.makePath(user, machine, hello.session)
  const now = env.clock.unsafeCurrentTimeMillis()
  const { entry, superseded } = hub.unsafe.attach({
    path,
    origin: hello.client === "bridge" ? "agent" : "human",
    conn: state.conn,
    now
  })
  state.established = true
  const isAdmin = env.derived.admins.isAdmin(user)
  const caller: Caller = { entry, isAdmin, bucket: unsafeMakeTokenBucket(config.ratePerSecond, config.rateBurst, now) }
  const annotations = HashMap.set(HashMap.set(env.annotations, "remote", info.remoteAddress), "path", entry.key)
  const session = serveEstablished(state, {
    entry,
    caller,
    hub,
    requests: env.requests,
    maxFrameBytes: config.maxFrameBytes,
    // a per-frame debug line must cost nothing when debug logging is off
    debugOn: LogLevel.lessThanEqual(env.logging.minimumLevel, LogLevel.Debug),
    tracing: env.tracing,
    clock: env.clock,
    annotations,
    fork: info.fork,
    log: (level, message, extra) => {
      let merged = annotations
      for (const key in extra) merged = HashMap.set(merged, key, extra[key])
      logNow(env, level, message, merged)
    }
  })
  if (superseded) logNow(env, LogLevel.Info, "session superseded by a newer connection", annotations)
  logNow(
    env,
    LogLevel.Info,
    "session established",
    HashMap.set(HashMap.set(annotations, "user", user), "machine", machine)
  )
  session.replyNow({ type: "established", path })
  session.replyNow({ type: "server_info", admin: isAdmin })
  // From here on frames, a kill or the close wake the session; what came meanwhile is handled now.
  state.onWake = session.wake
  session.wake()
}

/**
 * The handshake in a fiber, from wherever the synchronous part left it (`hs.greeted`): every
 * refusal, registration, a store without synchronous reads, an expired deadline. It re-reads the
 * frame the synchronous part declined, so each refusal is made (and logged) here only.
 */
const handshakeFiber = (env: Env, state: LinkState, info: ConnectionInfo, hs: Handshake): Effect.Effect<void> => {
  const { config, registerLimiter, store } = env
  const timedOut = () => new HandshakeRefused({ error: Errors.unauthorized(Errors.Messages.handshakeTimedOut) })
  // The deadline without a fiber of its own: the transport's sweeper marks it expired and wakes a
  // waiting `next`; a step still running at the deadline (the store) is refused once it ends.
  const next = Effect.async<RawData, PeerClosed | HandshakeRefused>((resume) => {
    const attempt = () => {
      const raw = state.poll()
      if (raw !== undefined) resume(Effect.succeed(raw))
      else if (state.isClosed) resume(Effect.fail(peerClosed))
      else if (hs.expired) resume(Effect.fail(timedOut()))
      else return false
      return true
    }
    if (attempt()) return
    hs.pendingWake = () => {
      if (attempt()) hs.pendingWake = undefined
    }
    return Effect.sync(() => {
      hs.pendingWake = undefined
    })
  })
  const decode = (raw: RawData) =>
    Either.match(Codec.decodeClientFrame(raw as Codec.RawMessage, config.maxFrameBytes), {
      onLeft: (e) => refuse(Errors.malformed(e.detail)),
      onRight: (frame) => Effect.succeed(frame)
    })
  const nextFrame = Effect.flatMap(next, decode)
  const check = (problem: Frames.ProtocolError | undefined) => problem === undefined ? Effect.void : refuse(problem)
  const storeFailure = (operation: string) => (e: { readonly cause: unknown }) =>
    Effect.logWarning("store failure").pipe(
      Effect.annotateLogs({ operation, cause: String(e.cause) }),
      Effect.zipRight(refuse(Errors.internal(Errors.Messages.storageFailure(operation))))
    )

  const greet = Effect.gen(function*() {
    const hello = yield* nextFrame
    if (hello.type !== "hello") return yield* refuse(Errors.malformed(Errors.Messages.expectedHello))
    if (hello.protocol_version !== Limits.PROTOCOL_VERSION) {
      return yield* refuse(Errors.versionMismatch(hello.protocol_version))
    }
    const nonce = Auth.randomNonce()
    if (!state.isClosed) state.ws.send(Codec.encodeFrame({ type: "challenge", nonce: Base64Url.encode(nonce) }))
    return { hello, nonce }
  })

  const handshake = Effect.gen(function*() {
    const greeted = hs.greeted ?? (yield* greet)
    const { hello } = greeted
    // D-3 (host) is checked with the signature, after the client's auth, so every refusal comes where
    // SPEC §2.6 puts auth failures; SPEC §2.6 step 5 (the handle), moved before any write (G-18), once
    // possession is proven.
    const checkHandle = Effect.suspend(() => {
      const problem = Validate.validateClientFrame(hello)
      return Either.isLeft(problem) ? refuse(Errors.malformed(problem.left.detail)) : Effect.void
    })
    const second = yield* nextFrame
    if (second.type === "register") {
      if (!(yield* registerLimiter.attempt(info.remoteAddress))) {
        return yield* refuse(Errors.rateLimited("too many registration attempts from this address", 60_000))
      }
      const auth = yield* nextFrame
      if (auth.type !== "auth") return yield* refuse(Errors.malformed(Errors.Messages.expectedAuthAfterRegister))
      if (auth.pubkey !== second.pubkey) return yield* refuse(Errors.unauthorized(Errors.Messages.authKeyMismatch))
      yield* check(hostProblem(env, info, hello))
      yield* check(signatureProblem(info, greeted, auth))
      const nameProblem = Validate.validateClientFrame(second)
      if (Either.isLeft(nameProblem)) return yield* refuse(Errors.malformed(nameProblem.left.detail))
      yield* checkHandle
      const pin = env.derived.admins.pinOf(second.username)
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
      yield* check(hostProblem(env, info, hello))
      yield* check(signatureProblem(info, greeted, second))
      const machine = yield* store.findMachineByKey(second.pubkey).pipe(
        Effect.catchTag("StoreError", storeFailure("authenticate"))
      )
      if (Option.isNone(machine)) return yield* refuse(Errors.unauthorized(Errors.Messages.unknownKey))
      yield* checkHandle
      return { hello, user: machine.value.user, machine: machine.value.name }
    }
    return yield* refuse(Errors.malformed(Errors.Messages.expectedRegisterOrAuth))
  })

  return handshake.pipe(
    Effect.filterOrFail(() => !hs.expired, timedOut),
    Effect.ensuring(Effect.sync(hs.over)),
    Effect.matchEffect({
      onFailure: (e) =>
        finishLink(state, e._tag === "PeerClosed" ? undefined : { type: "error", error: e.error }, CloseCodes.policy),
      onSuccess: (outcome) => Effect.sync(() => establish(env, state, info, outcome))
    }),
    Effect.catchAllCause((cause) => failLink(state, cause)),
    Effect.annotateLogs({ remote: info.remoteAddress })
  )
}

/**
 * Start a connection's session (SPEC §2.6): called synchronously when the socket is accepted.
 *
 * The handshake runs in the socket's callbacks, without a fiber, while it goes the common way — a
 * valid `hello` is answered with its challenge; an `auth` whose host and signature check out and
 * whose key the store finds with a synchronous read establishes the session. Anything else (a
 * refusal, `register`, an expired deadline, a store without synchronous reads) hands the handshake
 * to a fiber at the frame in question, which answers it as a fully effectful handshake would. A
 * peer that leaves during the handshake costs nothing more.
 *
 * @since 0.1.0
 * @category models
 */
export type Accept = (state: LinkState, info: ConnectionInfo) => void

/**
 * The server's `Accept`, over the services in context (read once).
 *
 * @since 0.1.0
 * @category actors
 */
export const acceptor: Effect.Effect<Accept, never, Hub | Requests | Store | ServerConfig | RegisterLimiter> = Effect
  .gen(function*() {
    const config = yield* ServerConfig
    const env: Env = {
      config,
      derived: derive(config),
      hub: yield* Hub,
      requests: yield* Requests,
      store: yield* Store,
      registerLimiter: yield* RegisterLimiter,
      runtime: yield* Effect.runtime<never>(),
      clock: yield* Effect.clock,
      tracing: yield* FiberRef.get(FiberRef.currentTracerEnabled),
      annotations: yield* FiberRef.get(FiberRef.currentLogAnnotations),
      logging: {
        minimumLevel: yield* FiberRef.get(FiberRef.currentMinimumLogLevel),
        loggers: yield* FiberRef.get(FiberRef.currentLoggers),
        spans: yield* FiberRef.get(FiberRef.currentLogSpan),
        // one id for the lines the transport's callbacks write
        fiberId: FiberId.unsafeMake()
      }
    }
    return (state, info) => accept(env, state, info)
  })

const accept = (env: Env, state: LinkState, info: ConnectionInfo): void => {
  const { config, store } = env
  let phase: "hello" | "second" | "fiber" | "done" = "hello"
  const hs: Handshake = {
    expired: false,
    pendingWake: undefined,
    greeted: undefined,
    over: () => {
      cancelDeadline()
      state.onWake = undefined
      hs.pendingWake = undefined
      info.handshakeDone()
    }
  }
  const cancelDeadline = info.armDeadline(() => {
    hs.expired = true
    state.onWake?.()
  })
  const toFiber = () => {
    phase = "fiber"
    state.onWake = () => hs.pendingWake?.()
    info.fork(handshakeFiber(env, state, info, hs))
  }
  /** The `auth` that completes the handshake here, or `undefined` when the fiber must take it. */
  const authenticated = (auth: Frames.ClientFrameOf<"auth">): Authenticated | undefined => {
    const greeted = hs.greeted
    const reads = store.syncReads
    if (greeted === undefined || reads === undefined) return undefined
    if (hostProblem(env, info, greeted.hello) !== undefined) return undefined
    if (signatureProblem(info, greeted, auth) !== undefined) return undefined
    const machine = reads.findMachineByKey(auth.pubkey)
    if (machine === undefined || Option.isNone(machine)) return undefined
    if (Either.isLeft(Validate.validateClientFrame(greeted.hello))) return undefined
    return { hello: greeted.hello, user: machine.value.user, machine: machine.value.name }
  }
  const step = (): void => {
    while (phase === "hello" || phase === "second") {
      const raw = state.peek()
      if (raw === undefined) {
        if (state.isClosed) {
          // The peer left mid-handshake: nothing to answer.
          phase = "done"
          return hs.over()
        }
        if (hs.expired) toFiber()
        return
      }
      if (hs.expired) return toFiber()
      const decoded = Codec.decodeClientFrame(raw as Codec.RawMessage, config.maxFrameBytes)
      if (Either.isLeft(decoded)) return toFiber()
      const frame = decoded.right
      if (phase === "hello") {
        if (frame.type !== "hello" || frame.protocol_version !== Limits.PROTOCOL_VERSION) return toFiber()
        state.poll()
        const nonce = Auth.randomNonce()
        hs.greeted = { hello: frame, nonce }
        phase = "second"
        if (!state.isClosed) state.ws.send(Codec.encodeFrame({ type: "challenge", nonce: Base64Url.encode(nonce) }))
        continue
      }
      const outcome = frame.type === "auth" ? authenticated(frame) : undefined
      if (outcome === undefined) return toFiber()
      state.poll()
      phase = "done"
      hs.over()
      return establish(env, state, info, outcome)
    }
  }
  state.onWake = () => {
    // A socket callback, outside any fiber: a defect costs the connection (`failLink`), not the process.
    try {
      step()
    } catch (defect) {
      if (phase !== "done") {
        phase = "done"
        hs.over()
      }
      info.fork(failLink(state, Cause.die(defect)).pipe(Effect.annotateLogs({ remote: info.remoteAddress })))
    }
  }
  state.onWake()
}

const DateTimeIso = (ms: number): string => DateTime.formatIso(DateTime.unsafeMake(ms))
