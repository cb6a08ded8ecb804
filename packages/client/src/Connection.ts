/**
 * One authenticated WebSocket connection to a conclave server: dial, instance-id capture, the client
 * side of the handshake (SPEC §2.6/§2.7 with D-3), then id-correlated requests (D-2) and a stream of
 * unsolicited frames. Bounds per D-26 and SPEC §6.1.
 *
 * @since 0.1.0
 */
import { Auth, Base64Url, Codec, type Frames, Limits, type Names } from "@conclave/protocol"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { IncomingMessage } from "node:http"
import WebSocket from "ws"
import {
  AuthRejected,
  ClosedDuringHandshake,
  type ConnectError,
  ConnectFailed,
  ConnectionLost,
  ConnectTimeout,
  Rejected,
  type RequestError,
  ResponseTimeout
} from "./ConnectionErrors.js"
import type * as Identity from "./Identity.js"

// Errors: ConnectionErrors.ts
export {
  AuthRejected,
  ClosedDuringHandshake,
  ConnectFailed,
  ConnectionLost,
  ConnectTimeout,
  DuplicateServer,
  fixFor,
  formatBound,
  isServerGoingAway,
  Rejected,
  ResponseTimeout,
  shuttingDownText
} from "./ConnectionErrors.js"
export type { ConnectError, RequestError } from "./ConnectionErrors.js"

// ---------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

/** A request frame; `connect` assigns its `id`. @since 0.1.0 @category models */
export type RequestWithoutId = DistributiveOmit<Frames.Request, "id">

/** A successful reply (an `error` reply fails the request with `Rejected` instead). @since 0.1.0 @category models */
export type Reply = Exclude<Frames.Reply, { readonly type: "error" }>

/** @since 0.1.0 @category models */
export interface ConnectOptions {
  /** `ws://` or `wss://` URL, dialed as given (TLS per scheme). */
  readonly url: string
  /** Session handle sent in `hello` and signed (D-3). */
  readonly handle: string
  readonly client: Frames.ClientKind
  readonly identity: Identity.Identity
  /** Send `register` before `auth` (a new account). */
  readonly register?: { readonly username: string; readonly machine: string }
  /** Bound on dial + upgrade + handshake; default 10 000 ms. */
  readonly connectTimeoutMs?: number
  /** Inbound frame cap, enforced by `ws` before buffering; default 16 MiB. */
  readonly maxFrameBytes?: number
  /** Default bound for `request`; default 15 000 ms. */
  readonly requestTimeoutMs?: number
  /** Called with `x-conclave-server-id` right after the upgrade, before `hello`; a failure aborts the attempt. */
  readonly onInstanceId?: (instanceId: string) => Effect.Effect<void, ConnectError>
}

/** @since 0.1.0 @category models */
export interface Connection {
  readonly url: string
  readonly handle: string
  /** The `x-conclave-server-id` upgrade header, when the server sent one. */
  readonly instanceId: Option.Option<string>
  /** This session's path, from `established`. */
  readonly path: Names.SessionPath
  /** From the `server_info` that follows `established` (false if the server sent none). */
  readonly admin: boolean
  /**
   * Send a request with a fresh `id` and wait for the reply carrying that id. An `error` reply
   * fails with `Rejected`; a closed socket with `ConnectionLost`; no reply within the bound
   * (default 15 s) with `ResponseTimeout`.
   */
  readonly request: (
    frame: RequestWithoutId,
    options?: { readonly timeoutMs?: number }
  ) => Effect.Effect<Reply, RequestError>
  /** Fire-and-forget (e.g. a keepalive `ping` without id; its `pong` arrives on `unsolicited`). */
  readonly send: (frame: Frames.ClientFrame) => Effect.Effect<void, ConnectionLost>
  /**
   * Every inbound frame that is not the reply to a pending request, in arrival order: deliveries,
   * `unsubscribed`, `shutdown`, later `server_info`, `error`/`pong` without id. Frames are buffered
   * (unbounded) from the end of the handshake until read, so nothing is lost before a consumer
   * starts. Meant for ONE consumer (frames are taken, not broadcast). Ends when the socket closes.
   */
  readonly unsolicited: Stream.Stream<Frames.ServerFrame>
  /** Succeeds once the socket has closed, for any reason. */
  readonly closed: Effect.Effect<void>
  /** Whether the socket has closed. */
  readonly isClosed: Effect.Effect<boolean>
  /**
   * The socket's close code once it has closed (1009: a frame from the server was over
   * `maxFrameBytes`, so asking again for the same thing cannot succeed), else `undefined`.
   */
  readonly closeCode: Effect.Effect<number | undefined>
}

// ---------------------------------------------------------------------------------------------
// Implementation
// ---------------------------------------------------------------------------------------------

type SocketEvent =
  | { readonly _tag: "Upgrade"; readonly instanceId: string | undefined }
  | { readonly _tag: "Open" }
  | { readonly _tag: "Message"; readonly data: WebSocket.RawData }
  | { readonly _tag: "Error"; readonly error: Error }
  | { readonly _tag: "Close"; readonly code: number }

const instanceIdOf = (response: IncomingMessage): string | undefined => {
  const value = response.headers[Limits.INSTANCE_ID_HEADER]
  const text = Array.isArray(value) ? value[0] : value
  return text === undefined || text === "" ? undefined : text
}

const CLOSE_GRACE_MS = 1_000

class HandshakeProblem extends Data.TaggedError("HandshakeProblem")<{ readonly detail: string }> {
  override get message() {
    return this.detail
  }
}

/**
 * Dial `url`, claim the instance id, authenticate, and return the established connection.
 * Closing the scope closes the socket (a `1000` close, terminated after 1 s without an answer).
 * A failed attempt releases its socket immediately.
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (options: ConnectOptions): Effect.Effect<Connection, ConnectError, Scope.Scope> =>
  Effect.gen(function*() {
    const outer = yield* Effect.scope
    const scope = yield* Scope.fork(outer, ExecutionStrategy.sequential)
    return yield* establish(options).pipe(
      Scope.extend(scope),
      Effect.onExit((exit) => (Exit.isFailure(exit) ? Scope.close(scope, exit) : Effect.void))
    )
  })

const establish = (options: ConnectOptions): Effect.Effect<Connection, ConnectError, Scope.Scope> =>
  Effect.gen(function*() {
    const { url } = options
    const connectTimeoutMs = options.connectTimeoutMs ?? Limits.CONNECT_TIMEOUT_MS
    const maxFrameBytes = options.maxFrameBytes ?? Limits.MAX_FRAME_BYTES_CEILING
    const requestTimeoutMs = options.requestTimeoutMs ?? Limits.RESPONSE_TIMEOUT_MS
    const failed = (cause: unknown) => new ConnectFailed({ url, cause })

    const events = yield* Queue.unbounded<SocketEvent>()
    const closedSignal = yield* Deferred.make<void>()
    const unsolicited = yield* Queue.unbounded<Option.Option<Frames.ServerFrame>>()
    const pending = new Map<string, Deferred.Deferred<Reply, Rejected | ConnectionLost>>()
    let isClosed = false
    let closeCode: number | undefined

    const markClosed = Effect.suspend(() => {
      isClosed = true
      const waiting = [...pending.values()]
      pending.clear()
      return Effect.forEach(waiting, (d) => Deferred.fail(d, new ConnectionLost()), { discard: true }).pipe(
        Effect.zipRight(Queue.offer(unsolicited, Option.none())),
        Effect.zipRight(Deferred.succeed(closedSignal, undefined))
      )
    })

    const ws = yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          const socket = new WebSocket(url, { maxPayload: maxFrameBytes, followRedirects: false })
          socket.on("error", (error) => {
            // a frame over `maxPayload`: `ws` closes with 1009, whatever the peer answers
            if ((error as { readonly code?: unknown }).code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") closeCode = 1009
            Queue.unsafeOffer(events, { _tag: "Error", error })
          })
          socket.on(
            "upgrade",
            (response) => Queue.unsafeOffer(events, { _tag: "Upgrade", instanceId: instanceIdOf(response) })
          )
          socket.on("open", () => Queue.unsafeOffer(events, { _tag: "Open" }))
          socket.on("message", (data) => Queue.unsafeOffer(events, { _tag: "Message", data }))
          socket.on("close", (code) => {
            closeCode ??= code
            Queue.unsafeOffer(events, { _tag: "Close", code })
            Deferred.unsafeDone(closedSignal, Exit.void)
          })
          return socket
        },
        catch: failed
      }),
      (socket) => closeSocket(socket, closedSignal).pipe(Effect.zipRight(markClosed))
    )

    const sendText = (text: string): Effect.Effect<void, ConnectionLost> =>
      Effect.async<void, ConnectionLost>((resume) => {
        if (ws.readyState !== WebSocket.OPEN) return resume(Effect.fail(new ConnectionLost()))
        ws.send(
          text,
          (error) => resume(error === undefined || error === null ? Effect.void : Effect.fail(new ConnectionLost()))
        )
      })
    const sendFrame = (frame: Frames.ClientFrame) => sendText(Codec.encodeFrame(frame))

    const decode = (data: WebSocket.RawData): Effect.Effect<Option.Option<Frames.ServerFrame>> => {
      const decoded = Codec.decodeServerFrame(data, maxFrameBytes)
      return decoded._tag === "Right"
        ? Effect.succeed(Option.some(decoded.right))
        : Effect.logDebug("skipping undecodable frame from server").pipe(
          Effect.annotateLogs({ url, reason: decoded.left.reason, frameType: decoded.left.frameType ?? "" }),
          Effect.as(Option.none())
        )
    }

    // ---- handshake ----------------------------------------------------------------------------

    const handshake = Effect.gen(function*() {
      let instanceId: string | undefined
      // Wait for the upgrade to complete.
      for (;;) {
        const event = yield* Queue.take(events)
        if (event._tag === "Upgrade") instanceId = event.instanceId
        else if (event._tag === "Open") break
        else if (event._tag === "Error") return yield* Effect.fail(failed(event.error))
        else if (event._tag === "Close") {
          return yield* Effect.fail(failed(new ClosedDuringHandshake({ phase: "upgrade", code: event.code })))
        }
      }
      if (instanceId !== undefined && options.onInstanceId !== undefined) {
        yield* options.onInstanceId(instanceId)
      }

      const nextFrame = Effect.gen(function*() {
        for (;;) {
          const event = yield* Queue.take(events)
          if (event._tag === "Message") {
            const frame = yield* decode(event.data)
            if (Option.isSome(frame)) return frame.value
          } else if (event._tag === "Close") {
            return yield* Effect.fail(failed(new ClosedDuringHandshake({ phase: "handshake", code: event.code })))
          } else if (event._tag === "Error") {
            yield* Effect.logDebug("socket error during the handshake").pipe(
              Effect.annotateLogs({ url, error: event.error.message })
            )
          }
        }
      })
      const registering = options.register !== undefined
      const rejectedOr = (
        frame: Frames.ServerFrame,
        expected: string
      ): Effect.Effect<never, AuthRejected | ConnectFailed> =>
        frame.type === "error"
          ? Effect.fail(new AuthRejected({ url, error: frame.error, registering }))
          : frame.type === "shutdown"
          ? Effect.fail(failed(new ClosedDuringHandshake({ phase: "handshake", code: null, reason: frame.reason })))
          : Effect.fail(failed(new HandshakeProblem({ detail: `expected \`${expected}\`, got \`${frame.type}\`` })))

      const host = Auth.authorityOf(url) ?? ""
      // A send that fails means the socket closed: what the server said last (an `error`, a
      // `shutdown`) or its close code explains why better than the failed send.
      const send = (frame: Frames.ClientFrame): Effect.Effect<void, AuthRejected | ConnectFailed> =>
        sendFrame(frame).pipe(
          Effect.catchAll(() =>
            nextFrame.pipe(
              Effect.flatMap((said) =>
                said.type === "error" || said.type === "shutdown"
                  ? rejectedOr(said, "challenge")
                  : Effect.fail(failed("connection closed during the handshake"))
              )
            )
          )
        )
      yield* send({
        type: "hello",
        protocol_version: Limits.PROTOCOL_VERSION,
        session: options.handle,
        host,
        client: options.client
      })
      const challenge = yield* nextFrame
      if (challenge.type !== "challenge") return yield* rejectedOr(challenge, "challenge")
      const nonce = Base64Url.decode(challenge.nonce)
      if (nonce === undefined) {
        return yield* Effect.fail(failed(new HandshakeProblem({ detail: "challenge nonce is not base64url" })))
      }
      const pubkey = options.identity.publicKeyText
      if (options.register !== undefined) {
        yield* send({
          type: "register",
          username: options.register.username,
          machine: options.register.machine,
          pubkey
        })
      }
      const signature = options.identity.sign(Auth.authMessage(host, options.handle, nonce))
      yield* send({ type: "auth", pubkey, signature: Base64Url.encode(signature) })
      const established = yield* nextFrame
      if (established.type !== "established") return yield* rejectedOr(established, "established")
      const info = yield* nextFrame
      let admin = false
      if (info.type === "server_info") admin = info.admin
      else yield* Queue.offer(unsolicited, Option.some(info))
      return { instanceId, path: established.path, admin }
    })

    const result = yield* handshake.pipe(
      Effect.timeoutFail({
        duration: connectTimeoutMs,
        onTimeout: () => new ConnectTimeout({ url, timeoutMs: connectTimeoutMs })
      })
    )

    // ---- frame loop -----------------------------------------------------------------------------

    const route = (frame: Frames.ServerFrame): Effect.Effect<void> => {
      const id = "id" in frame ? frame.id : undefined
      if (id === undefined) return Queue.offer(unsolicited, Option.some(frame))
      const deferred = pending.get(id)
      if (deferred === undefined) {
        return Effect.logDebug("dropping a reply for no pending request").pipe(
          Effect.annotateLogs({ url, id, frameType: frame.type })
        )
      }
      pending.delete(id)
      return frame.type === "error"
        ? Deferred.fail(deferred, new Rejected({ error: frame.error }))
        : Deferred.succeed(deferred, frame as Reply)
    }

    yield* Effect.gen(function*() {
      for (;;) {
        const event = yield* Queue.take(events)
        if (event._tag === "Message") {
          const frame = yield* decode(event.data)
          if (Option.isSome(frame)) yield* route(frame.value)
        } else if (event._tag === "Error") {
          yield* Effect.logDebug("socket error").pipe(Effect.annotateLogs({ url, error: event.error.message }))
        } else if (event._tag === "Close") {
          yield* Effect.logDebug("connection closed").pipe(Effect.annotateLogs({ url, code: event.code }))
          return yield* markClosed
        }
      }
    }).pipe(Effect.forkScoped)

    let counter = 0
    const request = (
      frame: RequestWithoutId,
      requestOptions?: { readonly timeoutMs?: number }
    ): Effect.Effect<Reply, RequestError> => {
      const timeoutMs = requestOptions?.timeoutMs ?? requestTimeoutMs
      return Effect.acquireUseRelease(
        Effect.suspend(() => {
          if (isClosed) return Effect.fail(new ConnectionLost())
          counter += 1
          const id = String(counter)
          return Deferred.make<Reply, Rejected | ConnectionLost>().pipe(
            Effect.tap((deferred) => Effect.sync(() => pending.set(id, deferred))),
            Effect.map((deferred) => ({ id, deferred }))
          )
        }),
        ({ deferred, id }) =>
          sendFrame({ ...frame, id } as Frames.Request).pipe(
            Effect.zipRight(Deferred.await(deferred)),
            Effect.timeoutFail({ duration: timeoutMs, onTimeout: () => new ResponseTimeout({ timeoutMs }) })
          ),
        ({ id }) => Effect.sync(() => pending.delete(id))
      )
    }

    const stream: Stream.Stream<Frames.ServerFrame> = Stream.repeatEffectOption(
      Queue.take(unsolicited).pipe(
        Effect.flatMap(Option.match({
          // Put the end marker back so every later read of the stream ends too.
          onNone: () => Queue.offer(unsolicited, Option.none()).pipe(Effect.zipRight(Effect.fail(Option.none()))),
          onSome: Effect.succeed
        }))
      )
    )

    return {
      url,
      handle: options.handle,
      instanceId: Option.fromNullable(result.instanceId),
      path: result.path,
      admin: result.admin,
      request,
      send: sendFrame,
      unsolicited: stream,
      closed: Deferred.await(closedSignal),
      isClosed: Effect.sync(() => isClosed),
      closeCode: Effect.sync(() => closeCode)
    } satisfies Connection
  })

const closeSocket = (ws: WebSocket, closed: Deferred.Deferred<void>): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (ws.readyState === WebSocket.CLOSED) return Effect.void
    if (ws.readyState === WebSocket.CONNECTING) return Effect.sync(() => ws.terminate())
    if (ws.readyState === WebSocket.OPEN) ws.close(1000)
    return Effect.interruptible(Deferred.await(closed)).pipe(
      Effect.timeout(CLOSE_GRACE_MS),
      Effect.ignore,
      Effect.zipRight(Effect.sync(() => ws.terminate()))
    )
  })
