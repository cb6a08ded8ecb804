/**
 * A small typed protocol client for integration tests: `ws` + `@conclave/protocol` only.
 */
import { Auth, Base64Url, Codec, type Frames } from "@conclave/protocol"
import { Deferred, Duration, Effect, Either, Exit, Queue, type Scope } from "effect"
import type * as Crypto from "node:crypto"
import WebSocket from "ws"

export interface Identity {
  readonly privateKey: Crypto.KeyObject
  readonly publicKey: Uint8Array
  readonly pubkey: string
}

export const newIdentity = (): Identity => {
  const pair = Either.getOrThrow(Auth.keyPairFromSeed(Auth.generateSeed()))
  return { ...pair, pubkey: Base64Url.encode(pair.publicKey) }
}

export interface Closed {
  readonly code: number
  readonly reason: string
}

export interface Client {
  readonly ws: WebSocket
  readonly url: string
  readonly headers: Record<string, string | Array<string> | undefined>
  /** Send a frame (or raw text). */
  readonly send: (frame: Frames.ClientFrame | string | Record<string, unknown>) => Effect.Effect<void>
  /** The next frame in arrival order. */
  readonly next: (timeout?: Duration.DurationInput) => Effect.Effect<Frames.ServerFrame>
  /** Skip frames until one matches. */
  readonly nextMatching: <A extends Frames.ServerFrame>(
    predicate: (f: Frames.ServerFrame) => f is A,
    timeout?: Duration.DurationInput
  ) => Effect.Effect<A>
  /** Send a request with a fresh id and wait for the reply carrying that id; unsolicited frames stay queued in `others`. */
  readonly request: (frame: Record<string, unknown>, timeout?: Duration.DurationInput) => Effect.Effect<Frames.Reply>
  /** Frames skipped by `request` (deliveries, notices). */
  readonly others: Array<Frames.ServerFrame>
  /** Take the next unsolicited frame (from `others` first, then the socket). */
  readonly nextOther: (timeout?: Duration.DurationInput) => Effect.Effect<Frames.ServerFrame>
  /**
   * Assert that nothing has been sent to this session: a round trip (`who`) comes back with no frame
   * before its reply, which the server queues after anything it had queued for this session — a
   * positive marker, not a silence window.
   */
  readonly expectNothingQueued: () => Effect.Effect<void>
  readonly closed: Effect.Effect<Closed>
  readonly isClosed: () => boolean
  readonly close: Effect.Effect<void>
}

let ids = 0

export const dial = (
  url: string,
  options: { readonly headers?: Record<string, string> } = {}
): Effect.Effect<Client, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const inbox = yield* Queue.unbounded<Frames.ServerFrame>()
    const closed = yield* Deferred.make<Closed>()
    const opened = yield* Deferred.make<Record<string, string | Array<string> | undefined>, Error>()
    const ws = yield* Effect.acquireRelease(
      Effect.sync(() => new WebSocket(url, { headers: options.headers ?? {} })),
      (ws) => Effect.sync(() => ws.terminate())
    )
    ws.on("upgrade", (res) => Deferred.unsafeDone(opened, Exit.succeed({ ...res.headers })))
    ws.on("unexpected-response", (_req, res) =>
      Deferred.unsafeDone(opened, Exit.fail(new Error(`unexpected response ${res.statusCode}`))))
    ws.on("error", (e) =>
      Deferred.unsafeDone(opened, Exit.fail(e)))
    ws.on("message", (data, isBinary) => {
      const decoded = Codec.decodeServerFrame(isBinary ? (data as Buffer) : data.toString())
      if (Either.isRight(decoded)) Queue.unsafeOffer(inbox, decoded.right)
      else Queue.unsafeOffer(inbox, { type: "error", error: { kind: "internal", message: `UNDECODABLE ${data}` } })
    })
    ws.on("close", (code, reason) => Deferred.unsafeDone(closed, Exit.succeed({ code, reason: reason.toString() })))
    const headers = yield* Deferred.await(opened).pipe(
      Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error(`dial ${url} timed out`) })
    )
    ws.on("error", () => {})

    const next = (timeout: Duration.DurationInput = "5 seconds") =>
      Queue.take(inbox).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => new Error(`no frame within ${Duration.format(Duration.decode(timeout))}`)
        }),
        Effect.orDie
      )
    const others: Array<Frames.ServerFrame> = []
    const nextMatching = <A extends Frames.ServerFrame>(
      predicate: (f: Frames.ServerFrame) => f is A,
      timeout: Duration.DurationInput = "5 seconds"
    ): Effect.Effect<A> =>
      Effect.gen(function*() {
        for (;;) {
          const frame = yield* next(timeout)
          if (predicate(frame)) return frame
          others.push(frame)
        }
      })
    const send = (frame: Frames.ClientFrame | string | Record<string, unknown>) =>
      Effect.sync(() => ws.send(typeof frame === "string" ? frame : JSON.stringify(frame)))
    const request = (frame: Record<string, unknown>, timeout?: Duration.DurationInput) =>
      Effect.gen(function*() {
        const id = `r${++ids}`
        yield* send({ ...frame, id })
        return yield* nextMatching(
          (f): f is Frames.Reply => "id" in f && (f as { readonly id?: string }).id === id,
          timeout
        )
      })
    const nextOther = (timeout?: Duration.DurationInput) =>
      others.length > 0 ? Effect.succeed(others.shift()!) : next(timeout)
    const expectNothingQueued = () =>
      Effect.gen(function*() {
        if (others.length > 0) return yield* Effect.dieMessage(`unexpected frame ${JSON.stringify(others[0])}`)
        const marker = yield* request({ type: "who", channel: null })
        if (marker.type !== "presence") return yield* Effect.dieMessage(`marker refused: ${JSON.stringify(marker)}`)
        if (others.length > 0) return yield* Effect.dieMessage(`unexpected frame ${JSON.stringify(others[0])}`)
      })
    return {
      ws,
      url,
      headers,
      send,
      next,
      nextMatching,
      request,
      others,
      nextOther,
      expectNothingQueued,
      closed: Deferred.await(closed).pipe(
        Effect.timeoutFail({ duration: "8 seconds", onTimeout: () => new Error("socket did not close") }),
        Effect.orDie
      ),
      isClosed: () => ws.readyState === WebSocket.CLOSED,
      close: Effect.sync(() => ws.close())
    }
  })

export interface HandshakeOptions {
  readonly identity: Identity
  readonly handle: string
  /** `register` claims a username + machine; otherwise `auth`. */
  readonly register?: { readonly username: string; readonly machine: string }
  /** `enroll` with this console enrollment code (D-51) before `auth`. */
  readonly enroll?: string
  /** `hello.host`; defaults to the dialed authority. */
  readonly host?: string | null
  /** The host the signature is made for; defaults to `host`. */
  readonly signHost?: string
  readonly client?: Frames.ClientKind
}

/** Run the handshake and return the first frame after it (`established` or `error`). */
export const handshake = (client: Client, options: HandshakeOptions) =>
  Effect.gen(function*() {
    const authority = Auth.authorityOf(client.url)!
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
      Auth.authMessage(options.signHost ?? host ?? authority, options.handle, challenge.nonce)
    )
    yield* client.send({ type: "auth", pubkey: options.identity.pubkey, signature: Base64Url.encode(signature) })
    return yield* client.next()
  })

export interface Session extends Client {
  readonly path: Frames.ServerFrameOf<"established">["path"]
  readonly admin: boolean
  readonly identity: Identity
}

/** Dial and complete the handshake; dies unless `established` + `server_info` arrive. */
export const connect = (url: string, options: HandshakeOptions): Effect.Effect<Session, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const client = yield* dial(url)
    const first = yield* handshake(client, options)
    if (first.type !== "established") return yield* Effect.dieMessage(`handshake failed: ${JSON.stringify(first)}`)
    const info = yield* client.next()
    if (info.type !== "server_info") return yield* Effect.dieMessage(`expected server_info: ${JSON.stringify(info)}`)
    return { ...client, path: first.path, admin: info.admin, identity: options.identity }
  })

/** Register a fresh identity as `user/machine/handle`. */
export const register = (url: string, user: string, machine = "box", handle = "s1", client?: Frames.ClientKind) =>
  connect(url, {
    identity: newIdentity(),
    handle,
    register: { username: user, machine },
    ...(client === undefined ? {} : { client })
  })

/** A further session of an already registered identity. */
export const reconnect = (url: string, identity: Identity, handle: string) => connect(url, { identity, handle })

export const plain = (text: string): Frames.Payload => ({ kind: "plain", text })
