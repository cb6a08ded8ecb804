/**
 * Hostile input that costs the server (the hardening issue): deeply nested JSON is refused before it
 * is parsed, before and after the handshake, and a large frame is refused before the handshake.
 */
import { Codec, Limits } from "@conclave/protocol"
import {
  dial,
  errorOf,
  eventually,
  expectType,
  handshake,
  newIdentity,
  op,
  plain,
  register,
  startServer
} from "@conclave/testkit"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Either, Layer, Logger, LogLevel, Option } from "effect"
import * as ServerConfig from "../src/ServerConfig.js"
import * as ServerLive from "../src/ServerLive.js"
import * as SqliteStore from "../src/SqliteStore.js"
import { Store, StoreError } from "../src/Store.js"

const nested = (depth: number) => `{"type":"ping","x":${"[".repeat(depth)}${"]".repeat(depth)}}`

describe("hardening", () => {
  it("the codec refuses nesting past MAX_JSON_DEPTH before parsing, and takes brackets inside strings as text", () => {
    const deep = Codec.decodeClientFrame(Buffer.from(nested(Limits.MAX_JSON_DEPTH + 1)))
    assert.isTrue(Either.isLeft(deep))
    if (Either.isLeft(deep)) assert.include(deep.left.detail, `deeper than ${Limits.MAX_JSON_DEPTH} levels`)
    // 400 000 nested brackets: refused at once (a parse of it took ~150 ms)
    const hostile = Codec.decodeClientFrame(Buffer.from(nested(400_000)), 16 * 1024 * 1024)
    assert.isTrue(Either.isLeft(hostile))
    // depth up to the limit is fine, and brackets in a body are text
    const body = "[".repeat(10_000) + "{".repeat(10_000)
    const ok = Codec.decodeClientFrame(
      Buffer.from(JSON.stringify({ type: "channel_msg", channel: "c", payload: { kind: "plain", text: body } }))
    )
    assert.isTrue(Either.isRight(ok))
    assert.isTrue(
      Either.isRight(Codec.decodeClientFrame(Buffer.from(`{"type":"ping","x":${"[".repeat(30)}${"]".repeat(30)}}`)))
    )
  })

  it.scopedLive("before the handshake: deep nesting and frames over the pre-auth cap are refused, then closed", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const deep = yield* dial(server.url)
      yield* deep.send(nested(100_000))
      assert.strictEqual(errorOf(yield* deep.next()).kind, "malformed_frame")
      assert.strictEqual((yield* deep.closed).code, 1008)
      const large = yield* dial(server.url)
      yield* large.send(JSON.stringify({ type: "hello", pad: "x".repeat(Limits.PREAUTH_MAX_FRAME_BYTES) }))
      const error = errorOf(yield* large.next())
      assert.strictEqual(error.kind, "malformed_frame")
      assert.include(error.message ?? "", `${Limits.PREAUTH_MAX_FRAME_BYTES}-byte cap`)
      assert.strictEqual((yield* large.closed).code, 1008)
    }))

  it.scopedLive("after it: a deeply nested frame is malformed_frame and closes the session", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const a = yield* register(server.url, "aaron")
      expectType(yield* a.request({ type: "ping" }), "pong")
      yield* a.send(nested(Limits.MAX_JSON_DEPTH + 5))
      const error = errorOf(yield* a.next())
      assert.strictEqual(error.kind, "malformed_frame")
      assert.include(error.message ?? "", "deeper than")
      assert.strictEqual((yield* a.closed).code, 1008)
    }))

  it.scopedLive("history pages are capped in bytes as well as rows: `more` carries on to the end", () =>
    Effect.gen(function*() {
      const server = yield* startServer({ maxBodyBytes: 64 * 1024, ratePerSecond: 0 })
      const a = yield* register(server.url, "aaron")
      yield* a.request(op({ kind: "create_channel", name: "big", visibility: "public" }))
      expectType(yield* a.request({ type: "join", channel: "big", token: null }), "joined")
      // control characters: each escapes to 6 bytes, so a 64 KiB body is ~393 KB on the wire
      const body = (i: number) => String.fromCharCode(1).repeat(64 * 1024 - 8) + `#${i}`.padStart(8, "0")
      const total = 12
      for (let i = 0; i < total; i++) {
        expectType(yield* a.request({ type: "channel_msg", channel: "big", payload: plain(body(i)) }), "ack")
      }
      let since = 0
      let pages = 0
      const seen: Array<number> = []
      for (;;) {
        const page = expectType(yield* a.request({ type: "read_since", channel: "big", since_seq: since }), "history")
        pages++
        assert.isAtMost(
          Buffer.byteLength(JSON.stringify(page.messages)),
          Limits.HISTORY_PAGE_MAX_BYTES + 400 * 1024,
          "a page stays within the byte cap (plus one row)"
        )
        assert.isAbove(page.messages.length, 0)
        for (const m of page.messages) seen.push(m.seq)
        since = page.messages[page.messages.length - 1]!.seq
        if (!page.more) break
      }
      assert.strictEqual(seen.length, total, "every message is read, none twice")
      assert.isAbove(pages, 3, "the pages were cut by bytes, not by the 500-row cap")
    }))

  it.scopedLive("a reader that stops reading is dropped once its unsent bytes pass the outbox budget", () =>
    Effect.gen(function*() {
      const server = yield* startServer({ maxBodyBytes: 64 * 1024, ratePerSecond: 0, outboxMaxBytes: 512 * 1024 })
      const a = yield* register(server.url, "aaron")
      const watcher = yield* register(server.url, "wendy")
      yield* a.request(op({ kind: "create_channel", name: "big", visibility: "public" }))
      expectType(yield* a.request({ type: "join", channel: "big", token: null }), "joined")
      const body = String.fromCharCode(1).repeat(60 * 1024)
      for (let i = 0; i < 40; i++) {
        expectType(yield* a.request({ type: "channel_msg", channel: "big", payload: plain(body) }), "ack")
      }
      // stop reading, then ask for ~40 MB of pages
      a.ws.pause()
      for (let i = 0; i < 60; i++) yield* a.send({ type: "read_since", id: `h${i}`, channel: "big", since_seq: 0 })
      const present = () =>
        Effect.map(
          watcher.request({ type: "who", channel: null }),
          (reply) => expectType(reply, "presence").sessions.some((p) => p.user === "aaron")
        )
      yield* eventually(
        "the slow reader to be dropped from presence",
        Effect.map(present(), (here) => here ? Option.none() : Option.some(true)),
        "5 seconds",
        "25 millis"
      )
    }))

  it.scopedLive("a relayed handshake is refused: the host a signature names comes from the configuration, not Host", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const victim = newIdentity()
      // The relay forwards the victim's handshake, signed for the relay, with its own Host header.
      const relayed = yield* dial(server.url, { headers: { host: "relay.example:8443" } })
      const refused = errorOf(
        yield* handshake(relayed, {
          identity: victim,
          handle: "s",
          register: { username: "victim", machine: "m" },
          host: "relay.example:8443"
        })
      )
      assert.strictEqual(refused.kind, "unauthorized")
      assert.include(refused.message ?? "", "relay.example:8443")
      // A client that names no host must have signed for one of the server's own authorities.
      const hostless = yield* dial(server.url, { headers: { host: "relay.example:8443" } })
      const refusedToo = errorOf(
        yield* handshake(hostless, {
          identity: victim,
          handle: "s",
          register: { username: "victim", machine: "m" },
          host: null,
          signHost: "relay.example:8443"
        })
      )
      assert.strictEqual(refusedToo.kind, "unauthorized")
      // The server's own address (what the client dialed) is accepted.
      const direct = yield* register(server.url, "victim")
      assert.strictEqual(direct.path.user, "victim")
    }))

  it.scopedLive("a store out of reach is `unavailable` with a retry delay, never a false ack (D-42)", () =>
    Effect.gen(function*() {
      let reachable = true
      const flaky = Layer.effect(
        Store,
        Effect.map(Store, (store) =>
          Store.of({
            ...store,
            appendMessage: (message) =>
              reachable
                ? store.appendMessage(message)
                : Effect.fail(new StoreError({ operation: "appendMessage", cause: { code: "ECONNREFUSED" } }))
          }))
      ).pipe(Layer.provide(SqliteStore.layerMemory))
      const context = yield* Layer.build(
        ServerLive.ServerLive.pipe(
          Layer.provide(ServerConfig.layer({ host: "127.0.0.1", port: 0, ratePerSecond: 0 })),
          Layer.provide(flaky)
        )
      ).pipe(Logger.withMinimumLogLevel(LogLevel.None))
      const url = Context.get(context, ServerLive.ServerAddress).url
      const a = yield* register(url, "aaron")
      yield* a.request(op({ kind: "create_channel", name: "ops", visibility: "public" }))
      expectType(yield* a.request({ type: "join", channel: "ops", token: null }), "joined")
      reachable = false
      const refused = errorOf(yield* a.request({ type: "channel_msg", channel: "ops", payload: plain("x") }))
      assert.strictEqual(refused.kind, "unavailable")
      assert.strictEqual((refused as { readonly retry_after_ms?: number }).retry_after_ms, 1000)
      reachable = true
      const acked = expectType(yield* a.request({ type: "channel_msg", channel: "ops", payload: plain("y") }), "ack")
      const page = expectType(yield* a.request({ type: "read_since", channel: "ops", since_seq: 0 }), "history")
      assert.deepStrictEqual(page.messages.map((m) => m.seq), [acked.seq], "only the acked post is stored")
    }))
})
