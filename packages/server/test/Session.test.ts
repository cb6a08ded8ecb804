import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Option, Schedule } from "effect"
import type { AddressInfo } from "node:net"
import WebSocket, { WebSocketServer } from "ws"
import * as Session from "../src/Session.js"

/** A real server-side socket wrapped by `makeLink`, and the client end. */
const pair = (
  options: { readonly inboxCapacity: number; readonly outboxCapacity: number },
  coalesce = false
) =>
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
    wss.on("connection", (ws, req) =>
      Deferred.unsafeDone(
        accepted,
        Exit.succeed(Session.makeLink(ws, coalesce ? { ...options, socket: req.socket } : options))
      ))
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

/** The end of the current event-loop turn (when corked sockets are flushed). */
const nextTurn = Effect.async<void>((resume) => {
  setImmediate(() => resume(Effect.void))
})

/** Collect the next `n` messages the client receives, with their binary flag. */
const collect = (client: WebSocket, n: number) =>
  Effect.async<Array<{ readonly text: string; readonly isBinary: boolean }>>((resume) => {
    const got: Array<{ readonly text: string; readonly isBinary: boolean }> = []
    const onMessage = (data: WebSocket.RawData, isBinary: boolean) => {
      got.push({ text: String(data), isBinary })
      if (got.length === n) {
        client.off("message", onMessage)
        resume(Effect.succeed(got))
      }
    }
    client.on("message", onMessage)
  }).pipe(
    Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error(`timed out waiting for ${n} messages`) }),
    Effect.orDie
  )

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

  it.scopedLive("send reports overflow once outboxCapacity frames wait behind the socket buffer; a kill wakes the reader", () =>
    Effect.gen(function*() {
      const { client, link } = yield* pair({ inboxCapacity: 4, outboxCapacity: 2 })
      link.established = true
      // Frames the kernel took at once are not in the outbox: a fast reader is never dropped.
      for (let i = 0; i < 10; i++) assert.isTrue(link.conn.send(`fast${i}`), `fast frame ${i}`)
      // A reader that stopped reading: one frame larger than the socket buffers stays queued.
      client.pause()
      yield* eventually(() => link.ws.bufferedAmount === 0, "the fast frames to be flushed")
      assert.isTrue(link.conn.send(Buffer.alloc(32 * 1024 * 1024, 0x61)))
      assert.isAbove(link.ws.bufferedAmount, 0, "the large frame should not fit in the kernel buffers")
      assert.isTrue(link.conn.send("b"))
      assert.isFalse(link.conn.send("c"))
      client.resume()
      yield* eventually(() => link.conn.send("d"), "the queued writes to be flushed")
      const reader = yield* Effect.fork(link.take)
      link.conn.kill("first")
      link.conn.kill("second")
      assert.isTrue(Option.isNone(yield* reader.await.pipe(Effect.flatMap((e) => e))))
      assert.strictEqual(link.killReason, "first")
    }))

  it.scopedLive("frames sent in one turn are coalesced into one write and arrive in order as text frames", () =>
    Effect.gen(function*() {
      const { client, link } = yield* pair({ inboxCapacity: 4, outboxCapacity: 2 }, true)
      const receiving = yield* Effect.fork(collect(client, 5))
      const socket = (link.ws as unknown as { readonly _socket: { readonly writableCorked: number } })._socket
      // More frames than the outbox bound in one turn: the buffer was empty when the turn began.
      for (let i = 0; i < 5; i++) assert.isTrue(link.conn.send(Buffer.from(`f${i}`)), `frame ${i}`)
      assert.isAbove(socket.writableCorked, 0, "the socket should be corked until the turn ends")
      yield* nextTurn
      assert.strictEqual(socket.writableCorked, 0)
      const got = yield* Fiber.join(receiving)
      assert.deepStrictEqual(got, Array.from({ length: 5 }, (_, i) => ({ text: `f${i}`, isBinary: false })))
    }))

  it.scopedLive("with coalescing, a reader that stopped reading overflows once a turn begins backlogged", () =>
    Effect.gen(function*() {
      const { client, link } = yield* pair({ inboxCapacity: 4, outboxCapacity: 2 }, true)
      link.established = true
      client.pause()
      assert.isTrue(link.conn.send(Buffer.alloc(32 * 1024 * 1024, 0x61)))
      yield* nextTurn
      assert.isAbove(link.ws.bufferedAmount, 0, "the large frame should not fit in the kernel buffers")
      assert.isTrue(link.conn.send("b"))
      assert.isTrue(link.conn.send("c"))
      assert.isFalse(link.conn.send("d"))
      yield* nextTurn
      assert.isFalse(link.conn.send("e"), "the outbox stays full while the reader is paused")
      client.resume()
      yield* eventually(() => link.conn.send("f"), "the queued writes to be flushed")
    }))

  it.scopedLive("a Buffer is delivered as a text frame", () =>
    Effect.gen(function*() {
      const { client, link } = yield* pair({ inboxCapacity: 4, outboxCapacity: 4 })
      const received = yield* Deferred.make<{ readonly text: string; readonly isBinary: boolean }>()
      client.once("message", (data, isBinary) => {
        Deferred.unsafeDone(received, Exit.succeed({ text: String(data), isBinary }))
      })
      assert.isTrue(link.conn.send(Buffer.from("{\"type\":\"pong\"}", "utf8")))
      const got = yield* Deferred.await(received)
      assert.deepStrictEqual(got, { text: "{\"type\":\"pong\"}", isBinary: false })
    }))
})
