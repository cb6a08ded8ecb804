/**
 * The one protocol client of the tests, the reliability suites and the soak: `ws` +
 * `@conclave/protocol` only, so the server is exercised exactly as a foreign client would (no shared
 * client code that could mask a server defect).
 *
 * A reply is handed to the `request` that carries its id (D-2); every other frame is queued in
 * arrival order for `next` / `nextMatching`, or given to `onFrame` when that is set.
 *
 * @since 0.1.0
 */
import { Auth, Base64Url, Codec, type Frames } from "@conclave/protocol"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import type * as Crypto from "node:crypto"
import WebSocket from "ws"

/**
 * A client-side failure: a dial refused or timed out, a handshake refused, a frame or reply or close
 * that did not come in time, a connection closed under a request.
 *
 * @since 0.1.0
 * @category errors
 */
export class WireError extends Data.TaggedError("WireError")<{ readonly message: string }> {}

/** @since 0.1.0 @category models */
export interface Identity {
  readonly privateKey: Crypto.KeyObject
  readonly publicKey: Uint8Array
  /** The public key, base64url (as on the wire). */
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
  /** The headers of the server's upgrade response. */
  readonly headers: Record<string, string | Array<string> | undefined>
  /** Send a frame as JSON, or raw text, or bytes (a binary message); nothing once the socket is not open. */
  readonly send: (frame: string | Uint8Array | object) => Effect.Effect<void>
  /** The next unsolicited frame (anything not a reply to a `request`), in arrival order. */
  readonly next: (timeout?: Duration.DurationInput) => Effect.Effect<Frames.ServerFrame, WireError>
  /** The next unsolicited frame that matches; the frames it passes over stay queued, in order, for `next`. */
  readonly nextMatching: <A extends Frames.ServerFrame>(
    predicate: (f: Frames.ServerFrame) => f is A,
    timeout?: Duration.DurationInput
  ) => Effect.Effect<A, WireError>
  /** Send a request with a fresh id (replacing any) and wait for the reply carrying that id. */
  readonly request: (
    frame: Record<string, unknown>,
    timeout?: Duration.DurationInput
  ) => Effect.Effect<Frames.Reply, WireError>
  /**
   * Fail unless nothing has been sent to this session: a round trip (`who`) comes back with no frame
   * queued before its reply, which the server queues after anything it had queued for this session —
   * a positive marker, not a silence window.
   */
  readonly expectNothingQueued: () => Effect.Effect<void, WireError>
  /** The close of the socket (code and reason), waited for at most 10 s. */
  readonly closed: Effect.Effect<Closed, WireError>
  readonly isClosed: () => boolean
  /** Start a normal close. */
  readonly close: Effect.Effect<void>
  /** Called synchronously for every unsolicited frame instead of queueing it, when set. */
  onFrame: ((frame: Frames.ServerFrame) => void) | undefined
  /**
   * Called with every text frame before it is decoded, when set; returning `true` means the frame was
   * handled and is not decoded (the soak's subscribers count deliveries this way, so the load
   * generator is not what saturates).
   */
  onRaw: ((text: string) => boolean) | undefined
  /** Frames that did not decode as server frames (a server defect if ever non-zero). */
  readonly undecodable: () => number
}

interface Waiter {
  readonly predicate: (f: Frames.ServerFrame) => boolean
  readonly got: Deferred.Deferred<Frames.ServerFrame>
}

let ids = 0

const within = (timeout: Duration.DurationInput, what: () => string) =>
  Effect.timeoutFail({ duration: timeout, onTimeout: () => new WireError({ message: what() }) })

const shown = (timeout: Duration.DurationInput) => Duration.format(Duration.decode(timeout))

/**
 * Dial a server (`options.headers` are sent with the upgrade request). The socket is terminated when
 * the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const dial = (
  url: string,
  options: { readonly headers?: Record<string, string>; readonly timeout?: Duration.DurationInput } = {}
): Effect.Effect<Client, WireError, Scope.Scope> =>
  Effect.gen(function*() {
    const queued: Array<Frames.ServerFrame> = []
    const waiters: Array<Waiter> = []
    const pending = new Map<string, Deferred.Deferred<Frames.Reply, WireError>>()
    const closed = yield* Deferred.make<Closed>()
    const opened = yield* Deferred.make<void, WireError>()
    let headers: Record<string, string | Array<string> | undefined> = {}
    let undecodable = 0
    const ws = yield* Effect.acquireRelease(
      Effect.sync(() => new WebSocket(url, { headers: options.headers ?? {}, perMessageDeflate: false })),
      (ws) => Effect.sync(() => ws.terminate())
    )

    const unsolicited = (frame: Frames.ServerFrame) => {
      const at = waiters.findIndex((w) => w.predicate(frame))
      if (at >= 0) {
        const [waiter] = waiters.splice(at, 1)
        Deferred.unsafeDone(waiter!.got, Exit.succeed(frame))
      } else if (client.onFrame !== undefined) client.onFrame(frame)
      else queued.push(frame)
    }
    const nextMatching = <A extends Frames.ServerFrame>(
      predicate: (f: Frames.ServerFrame) => f is A,
      timeout: Duration.DurationInput = "5 seconds"
    ): Effect.Effect<A, WireError> =>
      Effect.suspend(() => {
        const at = queued.findIndex(predicate)
        if (at >= 0) return Effect.succeed(queued.splice(at, 1)[0] as A)
        const waiter: Waiter = { predicate, got: Deferred.unsafeMake(undefined as never) }
        waiters.push(waiter)
        return Deferred.await(waiter.got).pipe(
          within(timeout, () => `no frame within ${shown(timeout)}`),
          Effect.ensuring(Effect.sync(() => {
            const still = waiters.indexOf(waiter)
            if (still >= 0) waiters.splice(still, 1)
          })),
          Effect.map((f) => f as A)
        )
      })
    const send = (frame: string | Uint8Array | object) =>
      Effect.sync(() => {
        if (ws.readyState !== WebSocket.OPEN) return
        ws.send(typeof frame === "string" || frame instanceof Uint8Array ? frame : JSON.stringify(frame))
      })
    const request = (frame: Record<string, unknown>, timeout: Duration.DurationInput = "10 seconds") =>
      Effect.suspend(() => {
        const id = `q${++ids}`
        const reply = Deferred.unsafeMake<Frames.Reply, WireError>(undefined as never)
        pending.set(id, reply)
        return send({ ...frame, id }).pipe(
          Effect.zipRight(Deferred.await(reply)),
          within(timeout, () => `no reply to ${String(frame["type"])} within ${shown(timeout)}`),
          Effect.ensuring(Effect.sync(() => pending.delete(id)))
        )
      })
    const unexpected = () =>
      queued.length > 0
        ? Effect.fail(new WireError({ message: `unexpected frame ${JSON.stringify(queued[0])}` }))
        : Effect.void

    const client: Client = {
      ws,
      url,
      get headers() {
        return headers
      },
      send,
      next: (timeout) => nextMatching((_): _ is Frames.ServerFrame => true, timeout),
      nextMatching,
      request,
      expectNothingQueued: () =>
        Effect.gen(function*() {
          yield* unexpected()
          const marker = yield* request({ type: "who", channel: null })
          if (marker.type !== "presence") {
            return yield* new WireError({ message: `marker refused: ${JSON.stringify(marker)}` })
          }
          yield* unexpected()
        }),
      closed: Deferred.await(closed).pipe(within("10 seconds", () => "socket did not close within 10s")),
      isClosed: () => ws.readyState === WebSocket.CLOSED,
      close: Effect.sync(() => ws.close()),
      onFrame: undefined,
      onRaw: undefined,
      undecodable: () => undecodable
    }

    ws.on("upgrade", (res) => {
      headers = { ...res.headers }
    })
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
        // queued too, so a test reading frames meets the defect where it happened
        queued.push({ type: "error", error: { kind: "internal", message: `UNDECODABLE ${text ?? "(binary)"}` } })
        return
      }
      const frame = decoded.right
      const id = (frame as { readonly id?: string }).id
      const waiter = id === undefined ? undefined : pending.get(id)
      if (waiter !== undefined) {
        pending.delete(id!)
        Deferred.unsafeDone(waiter, Exit.succeed(frame as Frames.Reply))
      } else unsolicited(frame)
    })
    ws.on("close", (code, reason) => {
      Deferred.unsafeDone(closed, Exit.succeed({ code, reason: reason.toString() }))
      for (const waiter of pending.values()) {
        Deferred.unsafeDone(waiter, Exit.fail(new WireError({ message: `connection closed (${code})` })))
      }
      pending.clear()
    })
    const timeout = options.timeout ?? "10 seconds"
    yield* Deferred.await(opened).pipe(within(timeout, () => `dial ${url} timed out`))
    return client
  })

/** @since 0.1.0 @category models */
export interface HandshakeOptions {
  readonly identity: Identity
  readonly handle: string
  /** `register` claims a username + machine; otherwise `auth` alone. */
  readonly register?: { readonly username: string; readonly machine: string }
  /** `enroll` with this console enrollment code (D-51) before `auth`. */
  readonly enroll?: string
  /** `hello.host`; defaults to the dialed authority. */
  readonly host?: string | null
  /** The host signed over; defaults to `host`. */
  readonly signHost?: string
  /** The handle signed over; defaults to `handle`. */
  readonly signHandle?: string
  readonly client?: Frames.ClientKind
}

/**
 * Run the handshake and return the first frame after `auth` (`established` or `error`).
 *
 * @since 0.1.0
 * @category handshake
 */
export const handshake = (
  client: Client,
  options: HandshakeOptions
): Effect.Effect<Frames.ServerFrame, WireError> =>
  Effect.gen(function*() {
    const authority = Auth.authorityOf(client.url) ?? ""
    const host = options.host === undefined ? authority : options.host
    yield* client.send({
      type: "hello",
      protocol_version: 1,
      session: options.handle,
      host,
      client: options.client ?? "bridge"
    })
    const challenge = yield* client.next()
    if (challenge.type !== "challenge") return challenge
    if (options.register !== undefined) {
      yield* client.send({ type: "register", ...options.register, pubkey: options.identity.pubkey })
    }
    if (options.enroll !== undefined) {
      yield* client.send({ type: "enroll", code: options.enroll, pubkey: options.identity.pubkey })
    }
    const signature = Auth.sign(
      options.identity.privateKey,
      Auth.authMessage(options.signHost ?? host ?? authority, options.signHandle ?? options.handle, challenge.nonce)
    )
    yield* client.send({ type: "auth", pubkey: options.identity.pubkey, signature: Base64Url.encode(signature) })
    return yield* client.next()
  })

/** @since 0.1.0 @category models */
export interface Session extends Client {
  readonly path: Frames.ServerFrameOf<"established">["path"]
  /** `user/machine/session`. */
  readonly key: string
  readonly admin: boolean
  readonly identity: Identity
}

/**
 * Dial and complete the handshake; fails unless `established` and `server_info` arrive.
 *
 * @since 0.1.0
 * @category constructors
 */
export const connect = (url: string, options: HandshakeOptions): Effect.Effect<Session, WireError, Scope.Scope> =>
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
    const path = first.path
    // the same object, so `onFrame` / `onRaw` set on the session are the ones the socket calls
    return Object.assign(client, {
      path,
      key: `${path.user}/${path.machine}/${path.session}`,
      admin: info.admin,
      identity: options.identity
    })
  })

/**
 * Register a fresh identity as `user/machine/handle` and connect.
 *
 * @since 0.1.0
 * @category constructors
 */
export const register = (
  url: string,
  user: string,
  machine = "box",
  handle = "s1",
  client?: Frames.ClientKind
): Effect.Effect<Session, WireError, Scope.Scope> =>
  connect(url, {
    identity: newIdentity(),
    handle,
    register: { username: user, machine },
    ...(client === undefined ? {} : { client })
  })

/** A further session of an already registered identity. @since 0.1.0 @category constructors */
export const reconnect = (
  url: string,
  identity: Identity,
  handle: string
): Effect.Effect<Session, WireError, Scope.Scope> => connect(url, { identity, handle })

/**
 * Send `ping` every `every` for the life of the scope (clients must send something at least every
 * 60 s or the reaper drops them, SPEC §2.10).
 *
 * @since 0.1.0
 * @category lifecycle
 */
export const keepAlive = (
  client: Client,
  every: Duration.DurationInput = "20 seconds"
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.forever(Effect.zipRight(Effect.sleep(every), client.send({ type: "ping" }))).pipe(
    Effect.forkScoped,
    Effect.asVoid
  )

/** A plain-text payload. @since 0.1.0 @category frames */
export const plain = (text: string): Frames.Payload => ({ kind: "plain", text })

/** An `admin` frame carrying `o`. @since 0.1.0 @category frames */
export const op = (o: Record<string, unknown>) => ({ type: "admin", op: o })
