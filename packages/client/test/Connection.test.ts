import { Connection, Identity } from "@conclave/client"
import { Auth, Base64Url, Codec, Errors, type Frames, Limits } from "@conclave/protocol"
import * as Kit from "@conclave/testkit"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Net from "node:net"
import { type WebSocket, WebSocketServer } from "ws"

// ---------------------------------------------------------------------------------------------
// A small fake server playing the server side of SPEC §2.6 with D-3 over a real `ws` server.
// ---------------------------------------------------------------------------------------------

interface Behaviour {
  readonly instanceId?: string
  /** Answer the `auth` with this error instead of `established`. */
  readonly rejectAuth?: Frames.ProtocolError
  /** Never answer anything (the upgrade still completes). */
  readonly silent?: boolean
  /** Send these raw messages right after the upgrade, before reading `hello`. */
  readonly preamble?: ReadonlyArray<string | Buffer>
  /** Replace the challenge frame. */
  readonly challenge?: string
  readonly admin?: boolean
  /** Skip the `server_info` after `established`. */
  readonly noServerInfo?: boolean
  /** Post-handshake: reply to a decoded request; default answers ping/join/leave. */
  readonly onRequest?: (frame: Frames.ClientFrame, socket: WebSocket, server: FakeServer) => void
}

interface FakeServer {
  readonly url: string
  readonly port: number
  /** Every decoded client frame, in arrival order (all connections). */
  readonly received: Array<Frames.ClientFrame>
  /** Verification result of each `auth`. */
  readonly verified: Array<boolean>
  readonly closes: Array<number>
  readonly sockets: Array<WebSocket>
}

const send = (socket: WebSocket, frame: Frames.ServerFrame) => socket.send(Codec.encodeFrame(frame))

const defaultReply = (frame: Frames.ClientFrame, socket: WebSocket) => {
  const id = "id" in frame ? frame.id : undefined
  switch (frame.type) {
    case "ping":
      return send(socket, { type: "pong", ...(id === undefined ? {} : { id }) })
    case "join":
      return send(socket, { type: "joined", ...(id === undefined ? {} : { id }), channel: frame.channel })
    case "leave":
      return send(socket, { type: "ack", ...(id === undefined ? {} : { id }), detail: frame.channel, seq: null })
    default:
      return send(socket, { type: "error", ...(id === undefined ? {} : { id }), error: Errors.notFound("nope") })
  }
}

const startServer = (behaviour: Behaviour = {}): Effect.Effect<FakeServer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ wss: WebSocketServer; server: FakeServer }>((resume) => {
      const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 })
      const server: FakeServer = {
        url: "",
        port: 0,
        received: [],
        verified: [],
        closes: [],
        sockets: []
      }
      wss.on("headers", (headers) => {
        if (behaviour.instanceId !== undefined) headers.push(`${Limits.INSTANCE_ID_HEADER}: ${behaviour.instanceId}`)
      })
      wss.on("connection", (socket) => {
        server.sockets.push(socket)
        socket.on("error", () => undefined)
        socket.on("close", (code) => server.closes.push(code))
        for (const raw of behaviour.preamble ?? []) socket.send(raw)
        let stage: "hello" | "auth" | "open" = "hello"
        let hello: Frames.ClientFrameOf<"hello"> | undefined
        const nonce = Auth.randomNonce()
        socket.on("message", (data) => {
          const decoded = Codec.decodeClientFrame(data as Buffer, Limits.MAX_FRAME_BYTES_CEILING)
          if (Either.isLeft(decoded)) return
          const frame = decoded.right
          server.received.push(frame)
          if (behaviour.silent === true) return
          if (stage === "hello" && frame.type === "hello") {
            hello = frame
            stage = "auth"
            socket.send(behaviour.challenge ?? Codec.encodeFrame({ type: "challenge", nonce: Base64Url.encode(nonce) }))
          } else if (stage === "auth" && frame.type === "register") {
            return
          } else if (stage === "auth" && frame.type === "auth" && hello !== undefined) {
            const pubkey = Base64Url.decode(frame.pubkey) ?? new Uint8Array()
            const signature = Base64Url.decode(frame.signature) ?? new Uint8Array()
            const ok = Either.isRight(
              Auth.verify(pubkey, Auth.authMessage(hello.host ?? "", hello.session, nonce), signature)
            )
            server.verified.push(ok)
            if (behaviour.rejectAuth !== undefined) {
              send(socket, { type: "error", error: behaviour.rejectAuth })
              socket.close()
              return
            }
            if (!ok) {
              send(socket, { type: "error", error: Errors.unauthorized(Errors.Messages.badSignature) })
              socket.close()
              return
            }
            stage = "open"
            send(socket, { type: "established", path: { user: "aaron", machine: "laptop", session: hello.session } })
            if (behaviour.noServerInfo !== true) send(socket, { type: "server_info", admin: behaviour.admin ?? false })
          } else if (stage === "open") {
            ;(behaviour.onRequest ?? defaultReply)(frame, socket, server)
          }
        })
      })
      wss.on("listening", () => {
        const address = wss.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        resume(Effect.succeed({ wss, server: { ...server, url: `ws://127.0.0.1:${port}`, port } }))
      })
    }),
    ({ wss }) =>
      Effect.async<void>((resume) => {
        for (const client of wss.clients) client.terminate()
        wss.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ server }) => server))

/** A TCP listener that accepts connections and optionally ends them after the first bytes. */
const startTcp = (onData: "silent" | "close"): Effect.Effect<number, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<Net.Server>((resume) => {
      const sockets = new Set<Net.Socket>()
      const server = Net.createServer((socket) => {
        sockets.add(socket)
        socket.on("error", () => undefined)
        socket.on("close", () => sockets.delete(socket))
        socket.on("data", () => {
          if (onData === "close") socket.destroy()
        })
      })
      server.on("close", () => undefined)
      ;(server as Net.Server & { conclaveSockets?: Set<Net.Socket> }).conclaveSockets = sockets
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.async<void>((resume) => {
        for (const s of (server as Net.Server & { conclaveSockets?: Set<Net.Socket> }).conclaveSockets ?? []) {
          s.destroy()
        }
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map((server) => (server.address() as Net.AddressInfo).port))

const identity = Identity.generate()

const options = (url: string, extra: Partial<Connection.ConnectOptions> = {}): Connection.ConnectOptions => ({
  url,
  handle: "razel",
  client: "cli",
  identity,
  ...extra
})

const flipExit = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) => Effect.flip(Effect.scoped(effect))

// ---------------------------------------------------------------------------------------------

describe("Connection", () => {
  it.scopedLive("authenticates per D-3 and reports path, admin and instance id", () =>
    Effect.gen(function*() {
      const server = yield* startServer({ instanceId: "inst-1", admin: true })
      let seenBeforeHello: number | undefined
      const conn = yield* Connection.connect(options(server.url, {
        onInstanceId: (id) =>
          Effect.sync(() => {
            assert.strictEqual(id, "inst-1")
            seenBeforeHello = server.received.length
          })
      }))
      assert.strictEqual(seenBeforeHello, 0, "onInstanceId ran before hello was sent")
      assert.deepStrictEqual(conn.path, { user: "aaron", machine: "laptop", session: "razel" })
      assert.isTrue(conn.admin)
      assert.deepStrictEqual(conn.instanceId, Option.some("inst-1"))
      const hello = server.received[0]
      assert.deepStrictEqual(hello, {
        type: "hello",
        protocol_version: 1,
        session: "razel",
        host: `127.0.0.1:${server.port}`,
        client: "cli"
      })
      assert.strictEqual(server.received[1]?.type, "auth")
      const auth = server.received[1] as Frames.ClientFrameOf<"auth">
      assert.strictEqual(auth.pubkey, identity.publicKeyText)
      assert.deepStrictEqual(server.verified, [true])
    }))

  it.scopedLive("instance id is none without the header; admin false from server_info", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const conn = yield* Connection.connect(options(server.url, { onInstanceId: () => Effect.die("not called") }))
      assert.isTrue(Option.isNone(conn.instanceId))
      assert.isFalse(conn.admin)
    }))

  it.scopedLive("a failing onInstanceId aborts the attempt before hello", () =>
    Effect.gen(function*() {
      const server = yield* startServer({ instanceId: "inst-1" })
      const error = yield* flipExit(Connection.connect(options(server.url, {
        onInstanceId: (instanceId) =>
          Effect.fail(new Connection.DuplicateServer({ url: server.url, canonical: "ws://other", instanceId }))
      })))
      assert.strictEqual(error._tag, "DuplicateServer")
      assert.strictEqual(
        error.message,
        `\`${server.url}\` is the same server as \`ws://other\`; target \`ws://other\` instead`
      )
      yield* Kit.eventually("server saw the socket close", () => server.closes.length === 1)
      assert.deepStrictEqual(server.received, [])
    }))

  it.scopedLive("register is sent before auth with the same key", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      yield* Connection.connect(options(server.url, { register: { username: "aaron", machine: "laptop" } }))
      assert.deepStrictEqual(server.received.map((f) => f.type), ["hello", "register", "auth"])
      assert.deepStrictEqual(server.received[1], {
        type: "register",
        username: "aaron",
        machine: "laptop",
        pubkey: identity.publicKeyText
      })
    }))

  it.scopedLive("an error answer to auth is AuthRejected with the rendered error", () =>
    Effect.gen(function*() {
      const server = yield* startServer({ rejectAuth: Errors.unauthorized(Errors.Messages.unknownKey) })
      const error = yield* flipExit(Connection.connect(options(server.url)))
      assert.strictEqual(error._tag, "AuthRejected")
      assert.strictEqual(error.message, "authentication rejected: unauthorized: unknown machine key")
      const registering = yield* flipExit(
        Connection.connect(options(server.url, { register: { username: "aaron", machine: "m" } }))
      )
      assert.strictEqual(
        registering.message,
        "registration rejected: unauthorized: unknown machine key"
      )
    }))

  it.scopedLive("an error instead of the challenge (version mismatch) is rejected", () =>
    Effect.gen(function*() {
      const server = yield* startServer({
        challenge: Codec.encodeFrame({ type: "error", error: Errors.versionMismatch(2) })
      })
      const error = yield* flipExit(Connection.connect(options(server.url)))
      assert.strictEqual(error._tag, "AuthRejected")
      assert.include(error.message, "incompatible protocol version")
    }))

  it.scopedLive("an unexpected frame during the handshake fails the connect", () =>
    Effect.gen(function*() {
      const server = yield* startServer({
        challenge: Codec.encodeFrame({ type: "server_info", admin: true })
      })
      const error = yield* flipExit(Connection.connect(options(server.url)))
      assert.strictEqual(error._tag, "ConnectFailed")
      assert.include(error.message, `failed to connect to \`${server.url}\``)
      assert.include(error.message, "expected `challenge`, got `server_info`")
    }))

  it.scopedLive("a signature by another key is refused by the verifying server", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const other = Identity.generate()
      const forged: Identity.Identity = {
        ...other,
        publicKey: identity.publicKey,
        publicKeyText: identity.publicKeyText
      }
      const error = yield* flipExit(Connection.connect(options(server.url, { identity: forged })))
      assert.deepStrictEqual(server.verified, [false])
      assert.strictEqual(error.message, "authentication rejected: unauthorized: signature verification failed")
    }))

  it.scopedLive("undecodable frames are skipped, during and after the handshake", () =>
    Effect.gen(function*() {
      const server = yield* startServer({
        preamble: ["not json", "{\"type\":\"warp\"}", Buffer.from([0xff, 0xfe]), "[1,2]"],
        onRequest: (frame, socket) => {
          socket.send("{\"type\":\"joined\"}")
          socket.send("garbage")
          defaultReply(frame, socket)
        }
      })
      const conn = yield* Connection.connect(options(server.url))
      const reply = yield* conn.request({ type: "join", channel: "ops", token: null })
      assert.deepStrictEqual(reply, { type: "joined", id: "1", channel: "ops" })
    }))

  it.scopedLive("requests carry fresh ids and are correlated by id, not order", () =>
    Effect.gen(function*() {
      const held: Array<Frames.ClientFrame> = []
      const server = yield* startServer({
        onRequest: (frame, socket) => {
          held.push(frame)
          if (held.length === 2) {
            // Answer in reverse order.
            defaultReply(held[1], socket)
            defaultReply(held[0], socket)
          }
        }
      })
      const conn = yield* Connection.connect(options(server.url))
      const [a, b] = yield* Effect.all([
        conn.request({ type: "join", channel: "a", token: null }),
        conn.request({ type: "join", channel: "b", token: null })
      ], { concurrency: "unbounded" })
      assert.deepStrictEqual([a.type, b.type], ["joined", "joined"])
      assert.strictEqual((a as Frames.ServerFrameOf<"joined">).channel, "a")
      assert.strictEqual((b as Frames.ServerFrameOf<"joined">).channel, "b")
      const ids = held.map((f) => ("id" in f ? f.id : undefined))
      assert.strictEqual(new Set(ids).size, 2)
      for (const id of ids) assert.isString(id)
    }))

  it.scopedLive("an error reply fails the request with Rejected (rendered message)", () =>
    Effect.gen(function*() {
      const server = yield* startServer({
        onRequest: (frame, socket) =>
          send(socket, {
            type: "error",
            id: "id" in frame && frame.id !== undefined ? frame.id : "?",
            error: Errors.notFound(Errors.Messages.channelNotFound("ops"))
          })
      })
      const conn = yield* Connection.connect(options(server.url))
      const error = yield* Effect.flip(conn.request({ type: "join", channel: "ops", token: null }))
      assert.strictEqual(error._tag, "Rejected")
      assert.strictEqual(error.message, "not found: channel `ops` not found")
      if (error._tag === "Rejected") assert.strictEqual(error.error.kind, "not_found")
    }))

  it.scopedLive("unsolicited frames stream in order; replies for unknown ids are dropped", () =>
    Effect.gen(function*() {
      const delivery: Frames.ServerFrame = {
        type: "channel_msg",
        channel: "ops",
        from: { user: "dana", machine: "desk", session: "cli-1" },
        payload: { kind: "plain", text: "hi" },
        seq: 4,
        origin: "human",
        reply_to: null
      }
      const server = yield* startServer({
        onRequest: (frame, socket) => {
          send(socket, delivery)
          send(socket, { type: "pong", id: "999" }) // no such pending request
          send(socket, { type: "pong" })
          send(socket, { type: "unsubscribed", channel: "ops", reason: "kicked", new_name: null })
          defaultReply(frame, socket)
          send(socket, { type: "shutdown", reason: "bye" })
          socket.close()
        }
      })
      const conn = yield* Connection.connect(options(server.url))
      const reply = yield* conn.request({ type: "leave", channel: "ops" })
      assert.strictEqual(reply.type, "ack")
      const frames = yield* Stream.runCollect(conn.unsolicited).pipe(Effect.timeout(5_000))
      assert.deepStrictEqual(Chunk.toReadonlyArray(frames).map((f) => f.type), [
        "channel_msg",
        "pong",
        "unsubscribed",
        "shutdown"
      ])
      assert.deepStrictEqual(Chunk.unsafeHead(frames), delivery)
      // The stream stays ended for later readers.
      const again = yield* Stream.runCollect(conn.unsolicited).pipe(Effect.timeout(1_000))
      assert.strictEqual(Chunk.size(again), 0)
    }))

  it.scopedLive("a missing server_info is bounded by the connect timeout", () =>
    Effect.gen(function*() {
      const server = yield* startServer({ noServerInfo: true })
      const error = yield* flipExit(Connection.connect(options(server.url, { connectTimeoutMs: 300 })))
      assert.strictEqual(error._tag, "ConnectTimeout")
      assert.deepStrictEqual(server.received.map((f) => f.type), ["hello", "auth"])
    }))

  it.scopedLive("send is fire-and-forget; the pong without id arrives on unsolicited", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const conn = yield* Connection.connect(options(server.url))
      yield* conn.send({ type: "ping" })
      const first = yield* conn.unsolicited.pipe(Stream.runHead, Effect.timeout(5_000))
      assert.deepStrictEqual(first, Option.some({ type: "pong" } as Frames.ServerFrame))
    }))

  it.scopedLive("no reply within the bound fails with ResponseTimeout and frees the id", () =>
    Effect.gen(function*() {
      const server = yield* startServer({ onRequest: () => undefined })
      const conn = yield* Connection.connect(options(server.url))
      const [took, error] = yield* Effect.timed(Effect.flip(conn.request({ type: "ping" }, { timeoutMs: 150 })))
      assert.isBelow(Duration.toMillis(took), 2_000)
      assert.strictEqual(error._tag, "ResponseTimeout")
      assert.strictEqual(error.message, "timed out after 150ms waiting for a server response")
      assert.strictEqual(
        new Connection.ResponseTimeout({ timeoutMs: 15_000 }).message,
        "timed out after 15s waiting for a server response"
      )
    }))

  it.scopedLive("a socket closed mid-request fails pending requests with ConnectionLost", () =>
    Effect.gen(function*() {
      const server = yield* startServer({ onRequest: (_frame, socket) => socket.terminate() })
      const conn = yield* Connection.connect(options(server.url))
      const error = yield* Effect.flip(conn.request({ type: "who", channel: null }))
      assert.strictEqual(error._tag, "ConnectionLost")
      assert.strictEqual(error.message, "connection closed before a response arrived")
      yield* conn.closed.pipe(Effect.timeout(5_000))
      assert.isTrue(yield* conn.isClosed)
      const after = yield* Effect.flip(conn.request({ type: "ping" }))
      assert.strictEqual(after._tag, "ConnectionLost")
      const sendAfter = yield* Effect.flip(conn.send({ type: "ping" }))
      assert.strictEqual(sendAfter._tag, "ConnectionLost")
    }))

  it.scopedLive("closing the scope closes the socket and ends pending work", () =>
    Effect.gen(function*() {
      const server = yield* startServer({ onRequest: () => undefined })
      const scope = yield* Scope.make()
      const conn = yield* Connection.connect(options(server.url)).pipe(Scope.extend(scope))
      const pending = yield* Effect.fork(conn.request({ type: "ping" }))
      yield* Kit.eventually("request reached the server", () => server.received.length === 3)
      yield* Scope.close(scope, Exit.void)
      const exit = yield* Fiber.await(pending)
      assert.isTrue(Exit.isFailure(exit))
      yield* Kit.eventually("server saw a normal close", () => server.closes[0] === 1000)
    }))

  it.scopedLive("an oversized inbound frame drops the connection", () =>
    Effect.gen(function*() {
      const server = yield* startServer({ onRequest: (_frame, socket) => socket.send("x".repeat(4096)) })
      const conn = yield* Connection.connect(options(server.url, { maxFrameBytes: 1024 }))
      const error = yield* Effect.flip(conn.request({ type: "ping" }))
      assert.strictEqual(error._tag, "ConnectionLost")
    }))

  describe("connect bounds (S-176, S-156)", () => {
    it.scopedLive("a TCP listener that never speaks times out within the bound", () =>
      Effect.gen(function*() {
        const port = yield* startTcp("silent")
        const url = `ws://127.0.0.1:${port}`
        const [took, error] = yield* Effect.timed(flipExit(Connection.connect(options(url, { connectTimeoutMs: 150 }))))
        assert.isBelow(Duration.toMillis(took), 2_000)
        assert.strictEqual(error._tag, "ConnectTimeout")
        assert.strictEqual(error.message, `timed out after 150ms connecting to \`${url}\``)
        assert.include(error.message, "timed out")
      }))

    it.scopedLive("a server that upgrades and goes silent times out within the bound", () =>
      Effect.gen(function*() {
        const server = yield* startServer({ silent: true })
        const error = yield* flipExit(Connection.connect(options(server.url, { connectTimeoutMs: 150 })))
        assert.strictEqual(error._tag, "ConnectTimeout")
        assert.strictEqual(server.received[0]?.type, "hello")
        yield* Kit.eventually("the abandoned socket was closed", () => server.closes.length === 1)
      }))

    it("production bounds render as 10s / 15s", () => {
      assert.strictEqual(
        new Connection.ConnectTimeout({ url: "ws://h", timeoutMs: Limits.CONNECT_TIMEOUT_MS }).message,
        "timed out after 10s connecting to `ws://h`"
      )
    })

    it.scopedLive("wss:// to a plain TCP listener fails with a TLS error within the bound (S-156)", () =>
      Effect.gen(function*() {
        const port = yield* startTcp("close")
        const url = `wss://127.0.0.1:${port}/`
        const [took, error] = yield* Effect.timed(
          flipExit(Connection.connect(options(url, { connectTimeoutMs: 10_000 })))
        )
        assert.isBelow(Duration.toMillis(took), 10_000)
        assert.strictEqual(error._tag, "ConnectFailed")
        assert.include(error.message, `failed to connect to \`${url}\``)
        assert.notInclude(error.message.toLowerCase(), "unsupported")
      }))

    it.scopedLive("a refused port fails with ConnectFailed", () =>
      Effect.gen(function*() {
        const port = yield* Effect.scoped(startTcp("silent")) // closed again: nothing listens there now
        const error = yield* flipExit(Connection.connect(options(`ws://127.0.0.1:${port}`)))
        assert.strictEqual(error._tag, "ConnectFailed")
        assert.include(error.message, "ECONNREFUSED")
      }))

    it.scopedLive("an invalid URL fails with ConnectFailed, not a crash", () =>
      Effect.gen(function*() {
        const error = yield* flipExit(Connection.connect(options("ftp://127.0.0.1:1")))
        assert.strictEqual(error._tag, "ConnectFailed")
        assert.include(error.message, "failed to connect to `ftp://127.0.0.1:1`")
      }))
  })

  it.scopedLive("Deferred helper sanity: closed resolves for a server-initiated close", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const conn = yield* Connection.connect(options(server.url))
      const done = yield* Deferred.make<void>()
      yield* Effect.fork(conn.closed.pipe(Effect.zipRight(Deferred.succeed(done, undefined))))
      for (const s of server.sockets) s.close(1001)
      yield* Deferred.await(done).pipe(Effect.timeout(5_000))
      assert.isTrue(yield* conn.isClosed)
    }))
})
