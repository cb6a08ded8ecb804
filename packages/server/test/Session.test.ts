import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Option, Schedule } from "effect"
import type { AddressInfo } from "node:net"
import WebSocket, { WebSocketServer } from "ws"
import * as Session from "../src/Session.js"

/** A real server-side socket wrapped by `makeLink`, and the client end. */
const pair = (options: { readonly inboxCapacity: number; readonly outboxCapacity: number }) =>
  Effect.gen(function*() {
    const wss = yield* Effect.acquireRelease(
      Effect.async<WebSocketServer>((resume) => {
        const s: WebSocketServer = new WebSocketServer({ host: "127.0.0.1", port: 0 }, () => {
          resume(Effect.succeed(s))
        })
      }),
      (s) => Effect.sync(() => s.close())
    )
    const accepted = yield* Deferred.make<Session.LinkState>()
    wss.on("connection", (ws) => Deferred.unsafeDone(accepted, Exit.succeed(Session.makeLink(ws, options))))
    const client = yield* Effect.acquireRelease(
      Effect.sync(() => new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`)),
      (c) => Effect.sync(() => c.terminate())
    )
    yield* Effect.async<void>((resume) => {
      client.once("open", () => resume(Effect.void))
    })
    const link = yield* Deferred.await(accepted)
    return { client, link }
  })

const eventually = (check: () => boolean, what: string) =>
  Effect.suspend(() => (check() ? Effect.void : Effect.fail(what))).pipe(
    Effect.retry(Schedule.intersect(Schedule.spaced("10 millis"), Schedule.recurs(300))),
    Effect.orDieWith((w) => new Error(`timed out waiting for ${w}`))
  )

describe("Session link", () => {
  it.scopedLive("reads at most inboxCapacity frames ahead, then pauses the socket until drained (D-11)", () =>
    Effect.gen(function*() {
      const { client, link } = yield* pair({ inboxCapacity: 4, outboxCapacity: 16 })
      for (let i = 0; i < 10; i++) client.send(`m${i}`)
      yield* eventually(() => link.ws.isPaused, "the socket to pause")
      const got: Array<string> = []
      for (let i = 0; i < 10; i++) {
        const raw = yield* link.take
        got.push(String(Option.getOrThrow(raw)))
      }
      assert.deepStrictEqual(got, Array.from({ length: 10 }, (_, i) => `m${i}`))
      assert.isFalse(link.ws.isPaused)
      // after the peer closes, take answers none
      client.close()
      yield* Deferred.await(link.closed)
      assert.isTrue(Option.isNone(yield* link.take))
    }))

  it.scopedLive("send reports overflow once outboxCapacity frames are in flight; a kill wakes the reader", () =>
    Effect.gen(function*() {
      const { link } = yield* pair({ inboxCapacity: 4, outboxCapacity: 2 })
      link.established = true
      assert.isTrue(link.conn.send("a"))
      assert.isTrue(link.conn.send("b"))
      assert.isFalse(link.conn.send("c"))
      yield* eventually(() => link.conn.send("d"), "the in-flight writes to complete")
      const reader = yield* Effect.fork(link.take)
      link.conn.kill("first")
      link.conn.kill("second")
      assert.isTrue(Option.isNone(yield* reader.await.pipe(Effect.flatMap((e) => e))))
      assert.strictEqual(link.killReason, "first")
    }))
})
