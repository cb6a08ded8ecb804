/**
 * A lean protocol client for the suites and the soak: `ws` + `@conclave/protocol` only, so the
 * server is exercised exactly as a foreign client would (no shared client code that could mask a
 * server defect). Replies are matched by request id (D-2); everything else goes to `frames`.
 *
 * @since 0.1.0
 */
import { Auth, Base64Url, Codec, type Frames } from "@conclave/protocol"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type * as Crypto from "node:crypto"
import WebSocket from "ws"

/** @since 0.1.0 @category errors */
export class WireError extends Data.TaggedError("WireError")<{ readonly message: string }> {}

/** @since 0.1.0 @category models */
export interface Identity {
  readonly privateKey: Crypto.KeyObject
  readonly publicKey: Uint8Array
  readonly pubkey: string
  readonly seed: Uint8Array
}

/** A fresh Ed25519 identity. @since 0.1.0 @category identities */
export const newIdentity = (): Identity => {
  const seed = Auth.generateSeed()
  const pair = Either.getOrThrow(Auth.keyPairFromSeed(seed))
  return { ...pair, seed, pubkey: Base64Url.encode(pair.publicKey) }
}

/** @since 0.1.0 @category models */
export interface Closed {
  readonly code: number
  readonly reason: string
}

/** @since 0.1.0 @category models */
export interface Client {
  readonly ws: WebSocket
  readonly url: string
  /** Unsolicited frames (and, before the handshake ends, every frame). */
  readonly frames: Queue.Queue<Frames.ServerFrame>
  /** Called synchronously for every unsolicited frame instead of queueing it, when set. */
  onFrame: ((frame: Frames.ServerFrame) => void) | undefined
  /**
   * Called with every text frame before it is decoded, when set; returning `true` means the frame was
   * handled and is not decoded (the soak's subscribers count deliveries this way, like the bench's
   * raw subscriber, so the load generator is not what saturates).
   */
  onRaw: ((text: string) => boolean) | undefined
  /** Frames that did not decode as server frames (a server defect if ever non-zero). */
  readonly undecodable: () => number
  readonly send: (frame: unknown) => void
  readonly next: (timeout?: Duration.DurationInput) => Effect.Effect<Frames.ServerFrame, WireError>
  readonly request: (frame: Record<string, unknown>, timeout?: Duration.DurationInput) => Effect.Effect<
    Frames.Reply,
    WireError
  >
  readonly closed: Deferred.Deferred<Closed>
  readonly isOpen: () => boolean
  readonly close: () => void
}

let ids = 0

/**
 * Dial a server. The socket is terminated when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const dial = (
  url: string,
  options: {
    readonly timeout?: Duration.DurationInput
    /** Upgrade request headers, e.g. a relay's own `host`. */
    readonly headers?: Readonly<Record<string, string>>
  } = {}
): Effect.Effect<Client, WireError, Scope.Scope> =>
  Effect.gen(function*() {
    const frames = yield* Queue.unbounded<Frames.ServerFrame>()
    const closed = yield* Deferred.make<Closed>()
    const opened = yield* Deferred.make<void, WireError>()
    const pending = new Map<string, Deferred.Deferred<Frames.Reply, WireError>>()
    let undecodable = 0
    const ws = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new WebSocket(
          url,
          options.headers === undefined
            ? { perMessageDeflate: false }
            : { perMessageDeflate: false, headers: { ...options.headers } }
        )
      ),
      (ws) => Effect.sync(() => ws.terminate())
    )
    const client: Client = {
      ws,
      url,
      frames,
      onFrame: undefined,
      onRaw: undefined,
      undecodable: () => undecodable,
      send: (frame) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(typeof frame === "string" ? frame : JSON.stringify(frame))
      },
      next: (timeout = "5 seconds") =>
        Queue.take(frames).pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () => new WireError({ message: `no frame within ${Duration.format(Duration.decode(timeout))}` })
          })
        ),
      request: (frame, timeout = "10 seconds") =>
        Effect.suspend(() => {
          const id = `q${++ids}`
          const reply = Deferred.unsafeMake<Frames.Reply, WireError>(undefined as never)
          pending.set(id, reply)
          client.send({ ...frame, id })
          return Deferred.await(reply).pipe(
            Effect.timeoutFail({
              duration: timeout,
              onTimeout: () => new WireError({ message: `no reply to ${String(frame.type)} within ${String(timeout)}` })
            }),
            Effect.ensuring(Effect.sync(() => pending.delete(id)))
          )
        }),
      closed,
      isOpen: () => ws.readyState === WebSocket.OPEN,
      close: () => ws.close()
    }
    ws.on("open", () => Deferred.unsafeDone(opened, Exit.void))
    ws.on("unexpected-response", (_req, res) => {
      Deferred.unsafeDone(opened, Exit.fail(new WireError({ message: `unexpected response ${res.statusCode}` })))
      res.resume()
    })
    ws.on("error", (e) => Deferred.unsafeDone(opened, Exit.fail(new WireError({ message: e.message }))))
    ws.on("message", (data, isBinary) => {
      const text = isBinary ? undefined : data.toString()
      if (text !== undefined && client.onRaw !== undefined && client.onRaw(text)) return
      const decoded = Codec.decodeServerFrame(text ?? (data as Buffer), 64 * 1024 * 1024)
      if (Either.isLeft(decoded)) {
        undecodable++
        return
      }
      const frame = decoded.right
      const id = (frame as { readonly id?: string }).id
      if (id !== undefined) {
        const waiter = pending.get(id)
        if (waiter !== undefined) {
          pending.delete(id)
          Deferred.unsafeDone(waiter, Exit.succeed(frame as Frames.Reply))
          return
        }
      }
      if (client.onFrame !== undefined) client.onFrame(frame)
      else Queue.unsafeOffer(frames, frame)
    })
    ws.on("close", (code, reason) => {
      Deferred.unsafeDone(closed, Exit.succeed({ code, reason: reason.toString() }))
      for (const waiter of pending.values()) {
        Deferred.unsafeDone(waiter, Exit.fail(new WireError({ message: `connection closed (${code})` })))
      }
      pending.clear()
    })
    yield* Deferred.await(opened).pipe(
      Effect.timeoutFail({
        duration: options.timeout ?? "10 seconds",
        onTimeout: () => new WireError({ message: `dial ${url} timed out` })
      })
    )
    return client
  })

/** @since 0.1.0 @category models */
export interface HandshakeOptions {
  readonly identity: Identity
  readonly handle: string
  readonly register?: { readonly username: string; readonly machine: string }
  /** `hello.host`; defaults to the dialed authority. */
  readonly host?: string | null
  /** The host signed over; defaults to `host`. */
  readonly signHost?: string
  /** The handle signed over; defaults to `handle`. */
  readonly signHandle?: string
  readonly client?: Frames.ClientKind
}

/** Run the handshake; returns the first frame after `auth` (`established` or `error`). @since 0.1.0 @category handshake */
export const handshake = (client: Client, options: HandshakeOptions) =>
  Effect.gen(function*() {
    const authority = Auth.authorityOf(client.url) ?? ""
    const host = options.host === undefined ? authority : options.host
    client.send({
      type: "hello",
      protocol_version: 1,
      session: options.handle,
      host,
      client: options.client ?? "bridge"
    })
    const challenge = yield* client.next()
    if (challenge.type !== "challenge") return challenge
    if (options.register !== undefined) {
      client.send({ type: "register", ...options.register, pubkey: options.identity.pubkey })
    }
    const signature = Auth.sign(
      options.identity.privateKey,
      Auth.authMessage(options.signHost ?? host ?? authority, options.signHandle ?? options.handle, challenge.nonce)
    )
    client.send({ type: "auth", pubkey: options.identity.pubkey, signature: Base64Url.encode(signature) })
    return yield* client.next()
  })

/** @since 0.1.0 @category models */
export interface Session extends Client {
  readonly path: Frames.ServerFrameOf<"established">["path"]
  readonly key: string
  readonly admin: boolean
  readonly identity: Identity
}

/** Dial and authenticate; fails unless `established` + `server_info` arrive. @since 0.1.0 @category constructors */
export const connect = (
  url: string,
  options: HandshakeOptions
): Effect.Effect<Session, WireError, Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* dial(url)
    const first = yield* handshake(client, options)
    if (first.type !== "established") {
      return yield* new WireError({ message: `handshake failed: ${JSON.stringify(first)}` })
    }
    const info = yield* client.next()
    if (info.type !== "server_info") {
      return yield* new WireError({ message: `expected server_info: ${JSON.stringify(info)}` })
    }
    const p = first.path
    return {
      ...client,
      // keep the mutable hook on the original object
      get onFrame() {
        return client.onFrame
      },
      set onFrame(f) {
        client.onFrame = f
      },
      get onRaw() {
        return client.onRaw
      },
      set onRaw(f) {
        client.onRaw = f
      },
      path: p,
      key: `${p.user}/${p.machine}/${p.session}`,
      admin: info.admin,
      identity: options.identity
    }
  })

/** Register a fresh identity as `user/machine/handle`. @since 0.1.0 @category constructors */
export const register = (url: string, user: string, handle = "s1", machine = "box") =>
  connect(url, { identity: newIdentity(), handle, register: { username: user, machine } })

/** @since 0.1.0 @category frames */
export const plain = (text: string): Frames.Payload => ({ kind: "plain", text })

/** @since 0.1.0 @category frames */
export const op = (o: Record<string, unknown>) => ({ type: "admin", op: o })

/** Fail unless the reply has the expected type. @since 0.1.0 @category assertions */
export const expect = <T extends Frames.ServerFrameType>(
  reply: Frames.ServerFrame,
  type: T
): Effect.Effect<Frames.ServerFrameOf<T>, WireError> =>
  reply.type === type
    ? Effect.succeed(reply as Frames.ServerFrameOf<T>)
    : Effect.fail(new WireError({ message: `expected ${type}, got ${JSON.stringify(reply).slice(0, 300)}` }))

/** Wait for the socket to close, bounded. @since 0.1.0 @category lifecycle */
export const awaitClosed = (client: Client, timeout: Duration.DurationInput = "5 seconds") =>
  Deferred.await(client.closed).pipe(
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () => new WireError({ message: `socket did not close within ${String(timeout)}` })
    })
  )

/** Poll `Option` until some, bounded. @since 0.1.0 @category lifecycle */
export const eventually = <A, E, R>(
  what: string,
  probe: Effect.Effect<Option.Option<A>, E, R>,
  timeout: Duration.DurationInput = "5 seconds",
  every: Duration.DurationInput = "50 millis"
): Effect.Effect<A, E | WireError, R> =>
  Effect.gen(function*() {
    const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(Duration.decode(timeout))
    for (;;) {
      const got = yield* probe
      if (Option.isSome(got)) return got.value
      if ((yield* Clock.currentTimeMillis) > deadline) {
        return yield* new WireError({ message: `timed out waiting for ${what}` })
      }
      yield* Effect.sleep(every)
    }
  })

/**
 * Send `ping` every `every` for the life of the scope (clients must send something at least every
 * 60 s or the reaper drops them, SPEC §2.10).
 *
 * @since 0.1.0
 * @category lifecycle
 */
export const keepAlive = (client: Client, every: Duration.DurationInput = "20 seconds") =>
  Effect.forever(Effect.zipRight(Effect.sleep(every), Effect.sync(() => client.send({ type: "ping" })))).pipe(
    Effect.forkScoped,
    Effect.asVoid
  )
