// S-176 through the CLI: a server that accepts TCP and never speaks, and one that completes the
// handshake and then never answers. The bounds (10 s connect, 15 s per reply) run on the TestClock.
import { tempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Option, TestClock } from "effect"
import * as Net from "node:net"
import { WebSocketServer } from "ws"
import { ok, run } from "./support/InProcess.js"

const silentTcp = Effect.acquireRelease(
  Effect.async<Net.Server>((resume) => {
    const server = Net.createServer(() => {}) // accept, never answer
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) => Effect.sync(() => server.close())
)

/**
 * Completes the handshake (challenge → established + server_info); then ignores every request, or
 * (`closeOnRequest`) closes the socket when the first request arrives.
 */
const fakeServer = (closeOnRequest: boolean) =>
  Effect.acquireRelease(
    Effect.async<WebSocketServer>((resume) => {
      const wss: WebSocketServer = new WebSocketServer(
        { host: "127.0.0.1", port: 0 },
        () => resume(Effect.succeed(wss))
      )
      wss.on("connection", (ws) => {
        ws.on("message", (data) => {
          const frame = JSON.parse(String(data)) as { type: string }
          if (frame.type === "hello") ws.send(JSON.stringify({ type: "challenge", nonce: "A".repeat(43) }))
          else if (frame.type === "auth") {
            ws.send(JSON.stringify({ type: "established", path: { user: "u", machine: "m", session: "s" } }))
            ws.send(JSON.stringify({ type: "server_info", admin: false }))
          } else if (closeOnRequest) ws.close(1000)
        })
      })
    }),
    (wss) => Effect.sync(() => wss.close())
  )

const port = (address: unknown) => (address as Net.AddressInfo).port

/** Advance the TestClock a second at a time (letting real I/O run in between) until `fiber` ends. */
const driveUntilDone = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 120; i++) {
      const done = yield* Fiber.poll(fiber)
      if (Option.isSome(done)) break
      yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
      yield* TestClock.adjust("1 second")
    }
    return yield* Fiber.join(fiber)
  })

describe("CLI timeouts (S-176)", () => {
  it.scoped("a server that never completes the upgrade: timed out after 10s connecting", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* ok(["key"], { configDir: dir })
      const server = yield* silentTcp
      const url = `ws://127.0.0.1:${port(server.address())}`
      const fiber = yield* Effect.fork(run(["who", "--server", url], { configDir: dir }))
      const r = yield* driveUntilDone(fiber)
      assert.strictEqual(r.code, 1)
      assert.include(r.stderr, `timed out after 10s connecting to \`${url}\``)
    }))

  it.scoped("a server that never answers a request: timed out after 15s waiting for a server response", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* ok(["key"], { configDir: dir })
      const server = yield* fakeServer(false)
      const url = `ws://127.0.0.1:${port(server.address())}`
      const fiber = yield* Effect.fork(run(["who", "--server", url], { configDir: dir }))
      const r = yield* driveUntilDone(fiber)
      assert.strictEqual(r.code, 1)
      assert.include(r.stderr, "timed out after 15s waiting for a server response")
    }))

  it.scoped("a server that closes the socket instead of answering: connection closed before a response arrived", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* ok(["key"], { configDir: dir })
      const server = yield* fakeServer(true)
      const url = `ws://127.0.0.1:${port(server.address())}`
      const r = yield* run(["channel", "list", "--server", url], { configDir: dir })
      assert.strictEqual(r.code, 1)
      assert.include(r.stderr, "connection closed before a response arrived")
    }))
})
