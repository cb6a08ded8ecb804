/**
 * Embedding as a first-class use (D-40): the example application (examples/embed.ts) hosting conclave
 * on an `@effect/platform` HTTP server, a mount on a Node `http.Server`, configuration read through
 * Effect's `Config`, `layerTest`, and two servers in one process sharing nothing.
 */
import { expectType, op, plain, register } from "@conclave/testkit"
import * as HttpServer from "@effect/platform/HttpServer"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Either, Exit, Layer, Logger, LogLevel, Scope } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { AppLive } from "../examples/embed.js"
import * as ServerConfig from "../src/ServerConfig.js"
import * as ServerLive from "../src/ServerLive.js"
import * as SqliteStore from "../src/SqliteStore.js"

const quiet = Logger.withMinimumLogLevel(LogLevel.None)

/** Two registered sessions on `url`, both joined to `lobby`; the first posts and the second receives it. */
const roundTrip = (url: string, text: string) =>
  Effect.gen(function*() {
    const a = yield* register(url, "aaron")
    const b = yield* register(url, "bob")
    yield* a.request(op({ kind: "create_channel", name: "lobby", visibility: "public" }))
    for (const s of [a, b]) expectType(yield* s.request({ type: "join", channel: "lobby", token: null }), "joined")
    expectType(yield* a.request({ type: "channel_msg", channel: "lobby", payload: plain(text) }), "ack")
    const got = expectType(yield* b.next(), "channel_msg")
    assert.deepStrictEqual(got.payload, plain(text))
    return { a, b }
  })

describe("embedding", () => {
  it.scopedLive("the example app serves its own routes and conclave at /conclave, and drains on close", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        AppLive({ port: 0, store: SqliteStore.layerMemory }),
        scope
      )
      const address = Context.get(context, HttpServer.HttpServer).address
      assert.strictEqual(address._tag, "TcpAddress")
      const port = address._tag === "TcpAddress" ? address.port : 0
      const home = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/`).then((r) => r.text()))
      assert.include(home, "hosts conclave")
      const plainGet = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/conclave`))
      assert.strictEqual(plainGet.status, 426)
      const { a } = yield* roundTrip(`ws://127.0.0.1:${port}/conclave`, "hello from an embedded conclave")
      // closing the application's scope drains conclave's sessions (D-19)
      yield* Scope.close(scope, Exit.void)
      expectType(yield* a.next(), "shutdown")
      assert.strictEqual((yield* a.closed).code, 1001)
    }).pipe(quiet))

  it.scopedLive("mounted on a Node http.Server: upgrades to the path are sessions, the rest stays the app's", () =>
    Effect.gen(function*() {
      const server = Http.createServer((_req, res) => res.writeHead(200).end("the app"))
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => {
          server.listen(0, "127.0.0.1", () => resume(Effect.void))
        }),
        () =>
          Effect.async<void>((resume) => {
            server.close(() => resume(Effect.void))
            server.closeAllConnections()
          })
      )
      const port = (server.address() as AddressInfo).port
      yield* Layer.build(
        ServerLive.layerMount({ server, path: "/chat" }).pipe(
          Layer.provide(ServerConfig.layer({ ratePerSecond: 0 })),
          Layer.provide(SqliteStore.layerMemory)
        )
      )
      const body = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/`).then((r) => r.text()))
      assert.strictEqual(body, "the app")
      yield* roundTrip(`ws://127.0.0.1:${port}/chat`, "through a mount")
    }).pipe(quiet))

  it.scopedLive("two servers in one process share nothing: users, channels and deliveries stay apart", () =>
    Effect.gen(function*() {
      const one = Context.get(yield* Layer.build(ServerLive.layerTest()), ServerLive.ServerAddress)
      const two = Context.get(yield* Layer.build(ServerLive.layerTest()), ServerLive.ServerAddress)
      assert.notStrictEqual(one.url, two.url)
      const { b } = yield* roundTrip(one.url, "on one")
      // the same names register on the other server: its store is its own
      const other = yield* roundTrip(two.url, "on two")
      // neither server's fan-out reached the other's sessions
      yield* b.expectNothingQueued()
      yield* other.b.expectNothingQueued()
    }).pipe(quiet))

  it.effect("ServerConfig.config reads CONCLAVE_* through Effect's Config and refuses bad values by name", () =>
    Effect.gen(function*() {
      const read = (env: Record<string, string>) =>
        Effect.either(
          Effect.withConfigProvider(ServerConfig.config, ConfigProvider.fromMap(new Map(Object.entries(env))))
        )
      const defaults = yield* read({})
      assert.isTrue(Either.isRight(defaults))
      if (Either.isRight(defaults)) assert.deepStrictEqual(defaults.right, ServerConfig.defaults)
      const set = yield* read({
        CONCLAVE_BIND: "127.0.0.1:5000",
        CONCLAVE_RATE: "0.5",
        CONCLAVE_BURST: "3",
        CONCLAVE_PUBLIC_URLS: "wss://chat.example.com, ws://10.0.0.2:4390",
        CONCLAVE_ADMINS: "root"
      })
      assert.isTrue(Either.isRight(set))
      if (Either.isRight(set)) {
        assert.strictEqual(set.right.host, "127.0.0.1")
        assert.strictEqual(set.right.port, 5000)
        assert.strictEqual(set.right.ratePerSecond, 0.5)
        assert.strictEqual(set.right.rateBurst, 3)
        assert.deepStrictEqual(set.right.publicUrls, ["wss://chat.example.com", "ws://10.0.0.2:4390"])
        assert.deepStrictEqual(set.right.admins.map((a) => a.user), ["root"])
      }
      for (
        const [name, value] of [
          ["CONCLAVE_BIND", "4390"],
          ["CONCLAVE_BIND", "127.0.0.1:99999"],
          ["CONCLAVE_RATE", "fast"],
          ["CONCLAVE_BURST", "0"],
          ["CONCLAVE_MAX_FRAME_BYTES", "12"],
          ["CONCLAVE_PUBLIC_URLS", "not a url"],
          ["CONCLAVE_ADMINS", "Bad Name"]
        ] as const
      ) {
        const bad = yield* read({ [name]: value })
        assert.isTrue(Either.isLeft(bad), `${name}=${value} is refused`)
        if (Either.isLeft(bad)) assert.include(String(bad.left), name, `the error names ${name}`)
      }
    }))
})
