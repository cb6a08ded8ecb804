import { Limits } from "@conclave/protocol"
import { connect, dial, errorOf, expectType, register, startServer, tempDir } from "@conclave/testkit"
import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Layer, Logger, LogLevel, Scope } from "effect"
import * as Http from "node:http"
import WebSocket from "ws"
import * as Broker from "../src/Broker.js"
import * as ServerConfig from "../src/ServerConfig.js"
import * as ServerLive from "../src/ServerLive.js"
import * as SqliteStore from "../src/SqliteStore.js"

const get = (url: string, path: string) =>
  Effect.async<{ status: number; body: string }, Error>((resume) => {
    const req = Http.get(url.replace("ws://", "http://") + path, (res) => {
      let body = ""
      res.on("data", (c) => (body += c))
      res.on("end", () => resume(Effect.succeed({ status: res.statusCode ?? 0, body })))
    })
    req.on("error", (e) => resume(Effect.fail(e)))
  })

describe("Transport", () => {
  it.scopedLive("GET /status names the node, each backend's kind and health, the sessions, uptime and version (D-41)", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ nodeId: "node-a", store: "file" })
      const a = yield* register(url, "aaron")
      expectType(yield* a.request({ type: "ping" }), "pong")
      const reply = yield* get(url, "/status")
      assert.strictEqual(reply.status, 200)
      const status = JSON.parse(reply.body)
      assert.deepStrictEqual(Object.keys(status).sort(), ["broker", "node", "sessions", "store", "uptime_s", "version"])
      assert.strictEqual(status.node, "node-a")
      assert.deepStrictEqual(status.store, { kind: "sqlite", ok: true })
      assert.deepStrictEqual(status.broker, { kind: "memory", ok: true })
      assert.strictEqual(status.sessions, 1)
      assert.isTrue(Number.isInteger(status.uptime_s) && status.uptime_s >= 0)
      assert.isString(status.version)
      const memory = yield* startServer({ nodeId: "node-b", store: "memory" })
      assert.deepStrictEqual(JSON.parse((yield* get(memory.url, "/status")).body).store, { kind: "memory", ok: true })
    }))

  it.scopedLive("GET /health answers 503 while a backend is unusable, 200 again once it is back (D-41)", () =>
    Effect.gen(function*() {
      let brokerOk = true
      const flaky = Layer.effect(
        Broker.Broker,
        Effect.map(Broker.makeMemory, (memory) => ({
          ...memory,
          status: Effect.sync(() => ({ kind: "memory" as const, ok: brokerOk }))
        }))
      )
      const context = yield* Layer.build(
        ServerLive.layerWithoutBroker.pipe(
          Layer.provide(flaky),
          Layer.provide(ServerConfig.layer({ host: "127.0.0.1", port: 0 })),
          Layer.provide(SqliteStore.layerMemory)
        )
      ).pipe(Logger.withMinimumLogLevel(LogLevel.None))
      const url = Context.get(context, ServerLive.ServerAddress).url
      assert.deepStrictEqual(yield* get(url, "/health"), { status: 200, body: "ok" })
      brokerOk = false
      assert.strictEqual((yield* get(url, "/health")).status, 503)
      assert.strictEqual(JSON.parse((yield* get(url, "/status")).body).broker.ok, false)
      brokerOk = true
      assert.deepStrictEqual(yield* get(url, "/health"), { status: 200, body: "ok" })
    }))

  it.scopedLive("routes: /health is ok, / without upgrade is 426, anything else 404; upgrades elsewhere are refused", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      assert.deepStrictEqual(yield* get(url, "/health"), { status: 200, body: "ok" })
      assert.strictEqual((yield* get(url, "/")).status, 426)
      assert.strictEqual((yield* get(url, "/nope")).status, 404)
      const refused = yield* Effect.either(dial(url + "/other"))
      assert.isTrue(refused._tag === "Left" && refused.left.message.includes("404"))
      // a query string still reaches `/`
      const c = yield* dial(url + "/?via=alias")
      assert.isString(c.headers[Limits.INSTANCE_ID_HEADER])
    }))

  it.scopedLive("the instance id is stable across connections and restarts (S-111)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const first = yield* Effect.scoped(
        Effect.gen(function*() {
          const { url } = yield* startServer({ store: "file" }, dir)
          const a = yield* dial(url)
          const b = yield* dial(url)
          assert.strictEqual(a.headers[Limits.INSTANCE_ID_HEADER], b.headers[Limits.INSTANCE_ID_HEADER])
          return a.headers[Limits.INSTANCE_ID_HEADER]
        })
      )
      const { url } = yield* startServer({ store: "file" }, dir)
      assert.strictEqual((yield* dial(url)).headers[Limits.INSTANCE_ID_HEADER], first)
    }))

  it.scopedLive("undecodable frames get malformed_frame then close; invalid ones keep the session (D-8, S-046)", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      const a = yield* register(url, "aaron")
      // semantically invalid: the session stays
      const bad = yield* a.request({ type: "admin", op: { kind: "create_channel", name: "a/b", visibility: "public" } })
      assert.strictEqual(errorOf(bad).kind, "malformed_frame")
      // handshake frames mid-session: unexpected, session stays
      yield* a.send({ type: "hello", protocol_version: 1, session: "x", host: null })
      assert.deepStrictEqual(errorOf(yield* a.next()), {
        kind: "malformed_frame",
        message: "unexpected frame from client"
      })
      expectType(yield* a.request({ type: "ping" }), "pong")
      // a server→client kind from a client: unexpected, session stays (SPEC §2.9)
      yield* a.send({ type: "pong" })
      assert.deepStrictEqual(errorOf(yield* a.next()), {
        kind: "malformed_frame",
        message: "unexpected frame from client"
      })
      expectType(yield* a.request({ type: "ping" }), "pong")
      // binary UTF-8 JSON is accepted
      yield* Effect.sync(() => a.ws.send(Buffer.from(JSON.stringify({ type: "ping", id: "bin" }))))
      assert.deepStrictEqual(yield* a.next(), { type: "pong", id: "bin" })
      // undecodable: error frame, then close
      yield* a.send("{not json")
      assert.strictEqual(errorOf(yield* a.next()).kind, "malformed_frame")
      yield* a.closed
      const b = yield* register(url, "bob")
      yield* b.send({ type: "teleport" })
      assert.strictEqual(errorOf(yield* b.next()).kind, "malformed_frame")
      yield* b.closed
      // a request kind that fails to decode still gets its id back (D-2), then the close
      const d = yield* register(url, "dora")
      yield* d.send(JSON.stringify({ type: "join", id: "j1", channel: 5, token: null }))
      const refused = yield* d.next()
      assert.strictEqual(errorOf(refused).kind, "malformed_frame")
      assert.strictEqual((refused as { readonly id?: string }).id, "j1")
      yield* d.closed
      // the server keeps serving
      const c = yield* register(url, "carol")
      expectType(yield* c.request({ type: "ping" }), "pong")
    }))

  it.scopedLive("the frame cap is enforced by the WebSocket layer (D-9)", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ maxFrameBytes: 4096 })
      const a = yield* register(url, "aaron")
      yield* a.send({ type: "ping", id: "x".repeat(5000) })
      const closed = yield* a.closed
      assert.strictEqual(closed.code, 1009)
      const b = yield* register(url, "bob")
      expectType(yield* b.request({ type: "ping" }), "pong")
    }))

  it.scopedLive("at most maxPendingPerIp connections sit in the handshake: a newcomer displaces the oldest silent one (D-10, issue 22)", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ maxPendingPerIp: 2, store: "file" })
      const established = yield* register(url, "aaron")
      const identity = established.identity
      const first = yield* dial(url)
      const second = yield* dial(url)
      // the cap is full of silent sockets: an enrolled user still gets in, the oldest silent one is closed
      const third = yield* connect(url, { identity, handle: "s2" })
      expectType(yield* third.request({ type: "ping" }), "pong")
      yield* first.closed
      assert.isFalse(second.isClosed())
      // a socket that has spoken is displaced only when every other one has too
      const speaking = yield* dial(url)
      yield* speaking.send({ type: "hello", protocol_version: 1, session: "x", host: null, client: "bridge" })
      assert.strictEqual((yield* speaking.next()).type, "challenge")
      yield* dial(url)
      yield* second.closed
      assert.isFalse(speaking.isClosed())
      expectType(yield* established.request({ type: "ping" }), "pong")
    }))

  it.scopedLive("--trust-proxy: the limits count under the address a trusted proxy forwards, never a header from others", () =>
    Effect.gen(function*() {
      // the test client dials from 127.0.0.1: trusted, so X-Forwarded-For names the client. The
      // pending cap is each node's own (D-10): one node, whatever the deployment (a named store)
      const { url } = yield* startServer({ store: "file", maxPendingPerIp: 1, trustProxy: ["127.0.0.0/8"] })
      const a = yield* dial(url, { headers: { "x-forwarded-for": "198.51.100.1" } })
      const b = yield* dial(url, { headers: { "x-forwarded-for": "198.51.100.2" } })
      yield* dial(url, { headers: { "x-forwarded-for": "198.51.100.1" } })
      yield* a.closed
      assert.isFalse(b.isClosed(), "another forwarded client keeps its own slot")
      // untrusted: the header is ignored, every socket counts under the peer's own address
      const direct = yield* startServer({ store: "file", maxPendingPerIp: 1 })
      const c = yield* dial(direct.url, { headers: { "x-forwarded-for": "198.51.100.1" } })
      yield* dial(direct.url, { headers: { "x-forwarded-for": "198.51.100.2" } })
      yield* c.closed
    }))

  it.scopedLive("a burst beyond the read-ahead bound is answered in order, one reply per request (D-11)", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      const a = yield* register(url, "aaron")
      const n = Limits.INBOX_CAPACITY * 4
      for (let i = 0; i < n; i++) yield* a.send({ type: "ping", id: `p${i}` })
      const ids: Array<string | undefined> = []
      for (let i = 0; i < n; i++) {
        const reply = yield* a.next()
        assert.strictEqual(reply.type, "pong")
        ids.push("id" in reply ? reply.id : undefined)
      }
      assert.deepStrictEqual(ids, Array.from({ length: n }, (_, i) => `p${i}`))
      // idle again: the next request still gets its answer
      expectType(yield* a.request({ type: "ping" }), "pong")
    }))

  it.scopedLive("graceful drain: sessions receive shutdown and close 1001; new connections are refused (D-19)", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { url } = yield* startServer().pipe(Scope.extend(scope))
      const a = yield* register(url, "aaron")
      const b = yield* register(url, "bob")
      const pending = yield* dial(url)
      const [took] = yield* Effect.timed(Scope.close(scope, Exit.void))
      assert.isBelow(Duration.toMillis(took), 5_000)
      for (const s of [a, b]) {
        assert.deepStrictEqual(yield* s.next(), { type: "shutdown", reason: "server shutting down" })
        assert.strictEqual((yield* s.closed).code, 1001)
      }
      assert.strictEqual((yield* pending.closed).code, 1001)
      const after = yield* Effect.either(Effect.scoped(dial(url)))
      assert.strictEqual(after._tag, "Left")
      assert.isTrue(a.ws.readyState === WebSocket.CLOSED)
    }))
})
