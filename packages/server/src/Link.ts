/**
 * The socket adapter of a session (SPEC §2.6, §2.9, DECISIONS D-11, D-19): one accepted `ws`
 * WebSocket seen as a stream of inbound events for the session's fiber and a synchronous outbound
 * `send` for the hub.
 *
 * Inbound: a bounded read-ahead (the socket is paused when `inboxCapacity` frames wait) read by
 * `next`, which yields the next frame — or, with priority, that the session was killed, that the
 * socket closed, or that the handshake deadline passed — or, once established, wakes the session
 * (`onWake`), which then reads with `poll`. Outbound: frames handed to `send` since the
 * socket's send buffer was last empty are counted (an upper bound of what has not reached the
 * kernel, without a per-send callback); past `outboxCapacity` — or past `outboxMaxBytes` of bytes the
 * kernel has not taken — `send` answers `false` and the session
 * is dropped as a slow consumer. Frames sent to one socket within an event-loop turn leave in one
 * write (`Corking`). Listeners are attached synchronously when the socket is accepted, so nothing
 * is lost before the session's fiber starts.
 *
 * @since 0.1.0
 */
import { Codec, Errors, type Frames } from "@conclave/protocol"
import type * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type { RawData, WebSocket } from "ws"
import type { Conn } from "./Hub.js"
import type { Corking } from "./internal/corking.js"
import * as Wire from "./internal/wire.js"

/** WebSocket close codes the server uses. @since 0.1.0 @category constants */
export const CloseCodes = {
  /** Graceful drain (D-19). */
  goingAway: 1001,
  /** Handshake refusal, protocol violation or force-drop. */
  policy: 1008,
  /** The session failed (a defect). */
  internalError: 1011
} as const

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

/**
 * What `next` yields: an inbound frame, or why there is none — the session was force-dropped
 * (`killed`, established sessions only), the socket closed, the handshake deadline passed, or
 * (`idle`) the wait was released by `release` because nothing came for a while.
 *
 * @since 0.1.0
 * @category models
 */
export type Inbound = RawData | "killed" | "closed" | "expired" | "idle"

/** @since 0.1.0 @category models */
export interface LinkOptions {
  /** Frames read ahead before the socket is paused (D-11). */
  readonly inboxCapacity: number
  /** Frames waiting behind a non-empty send buffer before `send` reports overflow. */
  readonly outboxCapacity: number
  /** Bytes the kernel has not taken yet before `send` reports overflow (whatever the frame count). */
  readonly outboxMaxBytes?: number | undefined
  /** The socket under `ws`; when given, frames sent in one event-loop turn are coalesced. */
  readonly socket?: Corkable | undefined
  /** The server's write coalescing. */
  readonly corking?: Corking | undefined
}

const shutdownFrame = Codec.encodeFrame({ type: "shutdown", reason: "server shutting down" })
const textFrame = { binary: false } as const

/**
 * One accepted WebSocket. Plain synchronous code: it is built inside the `ws` upgrade callback.
 *
 * @since 0.1.0
 * @category models
 */
export class Link implements Conn {
  /** In presence: from now on a kill ends the session ahead of any buffered frame. */
  established = false
  killReason: string | undefined = undefined
  isClosed = false
  /** The handshake deadline passed. */
  expired = false
  // Made when first asked for: most sockets of a pre-auth flood close without anyone waiting, and a
  // Deferred costs microseconds to make (issue 22).
  private closedSignal: Deferred.Deferred<void> | undefined = undefined

  private readonly buffer: Array<RawData> = []
  private waiter: ((inbound: Effect.Effect<Inbound>) => void) | undefined = undefined
  // Frames handed to `send` since the socket's send buffer was last empty (see the module comment).
  private queued = 0
  private counting = true
  private corked = false
  private readonly socket: Corkable | undefined
  private readonly corking: Corking | undefined

  /** The next inbound event; waits while there is none. Never fails. */
  readonly next: Effect.Effect<Inbound>
  /**
   * Called when an inbound event arrives while nobody waits in `next` (an established session holds
   * no fiber while idle: this starts one).
   */
  onWake: (() => void) | undefined = undefined

  constructor(readonly ws: WebSocket, private readonly options: LinkOptions) {
    this.socket = options.socket
    this.corking = options.corking
    this.next = Effect.async<Inbound>((resume) => {
      const inbound = this.poll()
      if (inbound !== undefined) return resume(Effect.succeed(inbound))
      this.waiter = resume
      return Effect.sync(() => {
        this.waiter = undefined
      })
    })
    ws.on("error", ignore)
    ws.on("message", (data) => {
      this.buffer.push(data)
      if (this.buffer.length >= options.inboxCapacity && !ws.isPaused) ws.pause()
      this.wake()
    })
    ws.on("close", () => {
      this.isClosed = true
      if (this.closedSignal !== undefined) Deferred.unsafeDone(this.closedSignal, Exit.void)
      this.wake()
    })
  }

  /** Resolved once the socket has closed. */
  get closed(): Deferred.Deferred<void> {
    if (this.closedSignal === undefined) {
      this.closedSignal = Deferred.unsafeMake<void>(FiberId.none)
      if (this.isClosed) Deferred.unsafeDone(this.closedSignal, Exit.void)
    }
    return this.closedSignal
  }

  /** Whether `poll` has something (a frame, or that the session ended). */
  ready(): boolean {
    return this.buffer.length > 0 || this.isClosed || this.expired ||
      (this.established && this.killReason !== undefined)
  }

  /** The next inbound event if one is ready (see `Inbound` for the priorities). */
  poll(): Inbound | undefined {
    if (this.established && this.killReason !== undefined) return "killed"
    const raw = this.buffer.shift()
    if (raw !== undefined) {
      if (this.ws.isPaused && this.buffer.length < this.options.inboxCapacity && !this.isClosed) this.ws.resume()
      return raw
    }
    if (this.isClosed) return "closed"
    if (this.expired) return "expired"
    return undefined
  }

  private wake(): void {
    const waiter = this.waiter
    if (waiter === undefined) return this.onWake?.()
    const inbound = this.poll()
    if (inbound === undefined) return
    this.waiter = undefined
    waiter(Effect.succeed(inbound))
  }

  /** End a wait in `next` with `idle` if nothing is ready (a lingering session run gives up its fiber). */
  release(): void {
    const waiter = this.waiter
    if (waiter === undefined || this.ready()) return
    this.waiter = undefined
    waiter(Effect.succeed("idle"))
  }

  /** The handshake deadline passed: `next` says so once the buffered frames are read. */
  expire(): void {
    this.expired = true
    this.wake()
  }

  send(frame: string | Wire.Shared): boolean {
    if (this.isClosed) return true
    const { ws, socket } = this
    if (!this.corked) {
      // Everything handed over earlier has reached the kernel once the socket's buffer is empty.
      const backlogged = ws.bufferedAmount > 0
      if (!backlogged) this.queued = 0
      this.counting = true
      if (socket !== undefined && this.corking !== undefined && !socket.destroyed) {
        socket.cork()
        this.corked = true
        // Frames of a turn that began with an empty buffer leave together at the uncork; they count
        // only if they are still there when a later turn begins.
        this.counting = backlogged
        this.corking.uncorkLater(this.uncork)
      }
    }
    if (this.counting) {
      if (this.queued >= this.options.outboxCapacity) return false
      this.queued++
    }
    // A few huge frames to a reader that stopped reading: bounded in bytes too.
    if (this.options.outboxMaxBytes !== undefined && ws.bufferedAmount > this.options.outboxMaxBytes) return false
    // While the socket is open, the whole frame goes straight to it (`ws` would frame it again for each
    // recipient); its own writes (pings, the close) are whole frames too, so none interleave.
    if (socket !== undefined && !socket.destroyed && ws.readyState === ws.OPEN) {
      socket.write(typeof frame === "string" ? Wire.textFrame(frame) : frame.wire)
    } else {
      ws.send(typeof frame === "string" ? frame : frame.payload, textFrame)
    }
    return true
  }

  private readonly uncork = () => {
    this.corked = false
    this.socket?.uncork()
  }

  /** Force-drop the session with a reason (the first reason wins). */
  kill(reason: string): void {
    if (this.killReason !== undefined) return
    this.killReason = reason
    this.wake()
  }

  /** Tell the client the server is draining and close with 1001 (D-19). */
  shutdown(): void {
    if (this.isClosed) return
    if (this.established) this.ws.send(shutdownFrame)
    this.ws.close(CloseCodes.goingAway, "server shutting down")
  }

  /** Close immediately without a closing handshake (the end of a bounded drain). */
  terminate(): void {
    this.ws.terminate()
  }

  /**
   * Send a last frame (unless the peer is gone; an `error` frame is logged either way), close with
   * `code`, and wait (bounded) for the close.
   */
  finish(frame: Frames.ServerFrame | undefined, code: number): Effect.Effect<void> {
    const close = this.close(frame, code)
    return frame?.type === "error" ? Effect.zipRight(logErrorFrame(frame.error), close) : close
  }

  /** `finish` without the log line. */
  close(frame: Frames.ServerFrame | undefined, code: number): Effect.Effect<void> {
    return Effect.suspend(() => {
      // Closed already (the peer went first): nothing to wait for, and no timer to start.
      if (this.isClosed) return Effect.void
      // the last frame and the close frame leave in one write
      const socket = this.socket !== undefined && !this.socket.destroyed ? this.socket : undefined
      socket?.cork()
      if (frame !== undefined) this.ws.send(Codec.encodeFrame(frame))
      this.ws.close(code)
      socket?.uncork()
      return Deferred.await(this.closed).pipe(
        Effect.timeoutOption("2 seconds"),
        Effect.flatMap(
          Option.match({ onNone: () => Effect.sync(() => this.ws.terminate()), onSome: () => Effect.void })
        )
      )
    })
  }
}

const ignore = () => {
  // Oversized or invalid WebSocket frames: `ws` closes the socket itself; the close event follows.
}

// SPEC §2.5: kind and message only. A decode failure's detail may quote frame content (a body), so
// that one message is not logged.
const errorFrameAnnotations = (error: Frames.ProtocolError): Record<string, unknown> =>
  "message" in error && !(error.kind === "malformed_frame" && error.message.startsWith("invalid `"))
    ? { kind: error.kind, message: error.message }
    : { kind: error.kind }

/**
 * The warn line of every `error` frame the server sends.
 *
 * @since 0.1.0
 * @category logging
 */
export const logErrorFrame = (error: Frames.ProtocolError): Effect.Effect<void> =>
  Effect.logWarning("error frame emitted").pipe(Effect.annotateLogs(errorFrameAnnotations(error)))

/**
 * The last resort of a failed session: log the cause, tell the client, close with 1011 — never leave
 * the socket open (it would hold the connection forever).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fail = (link: Link, cause: Cause.Cause<unknown>): Effect.Effect<void> =>
  Effect.zipRight(
    Effect.logWarning("session failed", cause),
    link.close({ type: "error", error: Errors.internal("session failed") }, CloseCodes.internalError)
  )
