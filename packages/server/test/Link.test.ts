import * as Kit from "@conclave/testkit"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber } from "effect"
import type { AddressInfo } from "node:net"
import WebSocket, { WebSocketServer } from "ws"
import { Corking } from "../src/internal/corking.js"
import * as Wire from "../src/internal/wire.js"
import { Link } from "../src/Link.js"

/** A real server-side socket wrapped by a `Link`, and the client end. */
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
    const accepted = yield* Deferred.make<Link>()
    wss.on("connection", (ws, req) =>
      Deferred.unsafeDone(
        accepted,
        Exit.succeed(new Link(ws, coalesce ? { ...options, socket: req.socket, corking: new Corking() } : options))
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

describe("Link", () => {
  it.scopedLive("reads at most inboxCapacity frames ahead, then pauses the socket until drained (D-11)", () =>
    Effect.gen(function*() {
      const { client, link } = yield* pair({ inboxCapacity: 4, outboxCapacity: 16 })
      for (let i = 0; i < 10; i++) client.send(`m${i}`)
      yield* Kit.eventually("the socket to pause", () => link.ws.isPaused)
      const got: Array<string> = []
      for (let i = 0; i < 10; i++) {
        got.push(String(yield* link.next))
      }
      assert.deepStrictEqual(got, Array.from({ length: 10 }, (_, i) => `m${i}`))
      assert.isFalse(link.ws.isPaused)
      // after the peer closes, next answers that it closed
      client.close()
      yield* Deferred.await(link.closed)
      assert.strictEqual(yield* link.next, "closed")
    }))

  it.scopedLive("send reports overflow once outboxCapacity frames wait behind the socket buffer; a kill wakes the reader", () =>
    Effect.gen(function*() {
      const { client, link } = yield* pair({ inboxCapacity: 4, outboxCapacity: 2 })
      link.established = true
      // Frames the kernel took at once are not in the outbox: a fast reader is never dropped.
      for (let i = 0; i < 10; i++) assert.isTrue(link.send(`fast${i}`), `fast frame ${i}`)
      // A reader that stopped reading: one frame larger than the socket buffers stays queued.
      client.pause()
      yield* Kit.eventually("the fast frames to be flushed", () => link.ws.bufferedAmount === 0)
      assert.isTrue(link.send(new Wire.Shared("a".repeat(32 * 1024 * 1024))))
      assert.isAbove(link.ws.bufferedAmount, 0, "the large frame should not fit in the kernel buffers")
      assert.isTrue(link.send("b"))
      assert.isFalse(link.send("c"))
      client.resume()
      yield* Kit.eventually("the queued writes to be flushed", () => link.send("d"))
      const reader = yield* Effect.fork(link.next)
      link.kill("first")
      link.kill("second")
      assert.strictEqual(yield* Fiber.join(reader), "killed")
      assert.strictEqual(link.killReason, "first")
    }))

  it.scopedLive("frames sent in one turn are coalesced into one write and arrive in order as text frames", () =>
    Effect.gen(function*() {
      const { client, link } = yield* pair({ inboxCapacity: 4, outboxCapacity: 2 }, true)
      const receiving = yield* Effect.fork(collect(client, 5))
      const socket = (link.ws as unknown as { readonly _socket: { readonly writableCorked: number } })._socket
      // More frames than the outbox bound in one turn: the buffer was empty when the turn began.
      for (let i = 0; i < 5; i++) assert.isTrue(link.send(new Wire.Shared(`f${i}`)), `frame ${i}`)
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
      assert.isTrue(link.send(new Wire.Shared("a".repeat(32 * 1024 * 1024))))
      yield* nextTurn
      assert.isAbove(link.ws.bufferedAmount, 0, "the large frame should not fit in the kernel buffers")
      assert.isTrue(link.send("b"))
      assert.isTrue(link.send("c"))
      assert.isFalse(link.send("d"))
      yield* nextTurn
      assert.isFalse(link.send("e"), "the outbox stays full while the reader is paused")
      client.resume()
      yield* Kit.eventually("the queued writes to be flushed", () => link.send("f"))
    }))

  it.scopedLive("whole frames of every length form reach the peer intact, as text or as bytes", () =>
    Effect.gen(function*() {
      const { client, link } = yield* pair({ inboxCapacity: 4, outboxCapacity: 64 }, true)
      const lengths = [0, 1, 125, 126, 127, 65535, 65536, 200_000]
      // multibyte text: the length in the header is the UTF-8 length
      const texts = lengths.map((n, i) => "é".repeat(Math.floor(n / 2)) + "x".repeat(n % 2) + `#${i}`)
      const receiving = yield* Effect.fork(collect(client, texts.length + 1))
      texts.forEach((text, i) => assert.isTrue(link.send(i % 2 === 0 ? text : new Wire.Shared(text))))
      // a shared frame twice (a fan-out hands one to every recipient; it is framed once)
      const shared = new Wire.Shared(texts[3]!)
      assert.isTrue(link.send(shared))
      assert.strictEqual(shared.wire, shared.wire)
      const got = yield* Fiber.join(receiving)
      assert.deepStrictEqual(got.map((g) => g.isBinary), texts.map(() => false).concat(false))
      assert.deepStrictEqual(got.map((g) => g.text), [...texts, texts[3]!])
    }))

  it.scopedLive("once the close has begun, a send writes nothing after the close frame", () =>
    Effect.gen(function*() {
      const { client, link } = yield* pair({ inboxCapacity: 4, outboxCapacity: 4 }, true)
      const messages: Array<string> = []
      client.on("message", (data) => void messages.push(String(data)))
      // every byte the server wrote (the client's parser would ignore frames after the close frame)
      const raw: Array<Buffer> = []
      const clientSocket =
        (client as unknown as { readonly _socket: { on: (e: "data", f: (b: Buffer) => void) => void } })
          ._socket
      clientSocket.on("data", (chunk) => void raw.push(chunk))
      const closed = yield* Deferred.make<number>()
      client.once("close", (code) => Deferred.unsafeDone(closed, Exit.succeed(code)))
      assert.isTrue(link.send("before"))
      link.ws.close(1000)
      link.send("after")
      link.send(new Wire.Shared("after too"))
      assert.strictEqual(yield* Deferred.await(closed), 1000)
      assert.deepStrictEqual(messages, ["before"])
      const bytes = Buffer.concat(raw)
      assert.deepStrictEqual(
        [...bytes.subarray(bytes.length - 4)],
        [0x88, 2, 0x03, 0xe8],
        "the close frame is the last"
      )
    }))

  it("Wire.textFrame: FIN + text opcode, the shortest length form, no mask", () => {
    const header = (
      n: number
    ) => [...Wire.textFrame(Buffer.alloc(n, 0x61)).subarray(0, n < 126 ? 2 : n < 65536 ? 4 : 10)]
    assert.deepStrictEqual(header(0), [0x81, 0])
    assert.deepStrictEqual(header(125), [0x81, 125])
    assert.deepStrictEqual(header(126), [0x81, 126, 0, 126])
    assert.deepStrictEqual(header(65535), [0x81, 126, 0xff, 0xff])
    assert.deepStrictEqual(header(65536), [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0])
    const text = Wire.textFrame("hé")
    assert.deepStrictEqual([...text], [0x81, 3, 0x68, 0xc3, 0xa9])
    assert.strictEqual(Wire.textFrame(Buffer.alloc(70_000)).length, 70_010)
  })

  it.scopedLive("a shared frame is delivered as a text frame", () =>
    Effect.gen(function*() {
      const { client, link } = yield* pair({ inboxCapacity: 4, outboxCapacity: 4 })
      const received = yield* Deferred.make<{ readonly text: string; readonly isBinary: boolean }>()
      client.once("message", (data, isBinary) => {
        Deferred.unsafeDone(received, Exit.succeed({ text: String(data), isBinary }))
      })
      assert.isTrue(link.send(new Wire.Shared("{\"type\":\"pong\"}")))
      const got = yield* Deferred.await(received)
      assert.deepStrictEqual(got, { text: "{\"type\":\"pong\"}", isBinary: false })
    }))
})
