/**
 * Hostile input that costs the server (the hardening issue): deeply nested JSON is refused before it
 * is parsed, before and after the handshake, and a large frame is refused before the handshake.
 */
import { Codec, Limits } from "@conclave/protocol"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { errorOf, expectType } from "./support/Assert.js"
import { dial, register } from "./support/TestClient.js"
import { startServer } from "./support/TestServer.js"

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
})
