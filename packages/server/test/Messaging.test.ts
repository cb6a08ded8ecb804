import { Errors, type Frames } from "@conclave/protocol"
import { SqlClient } from "@effect/sql"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import * as SqliteStore from "../src/SqliteStore.js"
import { Store } from "../src/Store.js"
import { errorOf, expectType, noId, op } from "./support/Assert.js"
import { plain, register, type Session } from "./support/TestClient.js"
import { startServer } from "./support/TestServer.js"

const post = (s: Session, channel: string, text: string, extra: Record<string, unknown> = {}) =>
  s.request({ type: "channel_msg", channel, payload: plain(text), ...extra })
const setup = (options: Parameters<typeof startServer>[0] = {}) =>
  Effect.gen(function*() {
    const server = yield* startServer(options)
    const a = yield* register(server.url, "aaron", "ws", "a", "bridge")
    const b = yield* register(server.url, "bob", "box", "b", "cli")
    const c = yield* register(server.url, "carol", "box", "c")
    yield* a.request(op({ kind: "create_channel", name: "lobby", visibility: "public" }))
    for (const s of [a, b, c]) expectType(yield* s.request({ type: "join", channel: "lobby", token: null }), "joined")
    return { ...server, a, b, c }
  })

describe("Messaging", () => {
  it.scopedLive("fan-out reaches every other subscriber with the server-stamped sender, seq and origin (S-073, S-074, D-4, D-6)", () =>
    Effect.gen(function*() {
      const { a, b, c } = yield* setup()
      const ack = expectType(
        yield* post(a, "lobby", "hello, agents", { from: { user: "root", machine: "x", session: "y" } }),
        "ack"
      )
      assert.isNumber(ack.seq)
      assert.isNull(ack.detail)
      for (const s of [b, c]) {
        const got = yield* s.nextOther()
        assert.deepStrictEqual(got, {
          type: "channel_msg",
          channel: "lobby",
          from: a.path,
          payload: plain("hello, agents"),
          seq: ack.seq!,
          origin: "agent",
          reply_to: null
        })
      }
      yield* a.expectSilence("150 millis")
      // a reply from a cli client is human-origin and carries reply_to
      const reply = expectType(yield* post(b, "lobby", "ok", { reply_to: ack.seq }), "ack")
      const seen = expectType(yield* a.nextOther(), "channel_msg")
      assert.strictEqual(seen.origin, "human")
      assert.strictEqual(seen.reply_to, ack.seq)
      assert.isTrue(reply.seq! > ack.seq!)
      assert.deepStrictEqual(errorOf(yield* post(b, "lobby", "?", { reply_to: 999_999 })).kind, "not_found")
      // a second session of the same user still receives the post (only the exact path is excluded)
    }))

  it.scopedLive("whispers reach exactly one session; offline targets are not_found (S-076, S-077)", () =>
    Effect.gen(function*() {
      const { a, b, c } = yield* setup()
      assert.deepStrictEqual(noId(yield* a.request({ type: "whisper", target: b.path, payload: plain("psst") })), {
        type: "ack",
        detail: null,
        seq: null
      })
      assert.deepStrictEqual(yield* b.nextOther(), {
        type: "whisper",
        from: a.path,
        target: b.path,
        payload: plain("psst"),
        origin: "agent"
      })
      yield* c.expectSilence("200 millis")
      const ghost = { user: "ghost", machine: "box", session: "sess" }
      assert.deepStrictEqual(errorOf(yield* a.request({ type: "whisper", target: ghost, payload: plain("x") })), {
        kind: "not_found",
        message: Errors.Messages.notOnline("ghost/box/sess")
      })
      // a session may whisper itself
      expectType(yield* a.request({ type: "whisper", target: a.path, payload: plain("me") }), "ack")
      assert.strictEqual(expectType(yield* a.nextOther(), "whisper").target.session, "a")
    }))

  it.scopedLive("posting and reading need a live subscription; refusals are uniform (S-081, S-082)", () =>
    Effect.gen(function*() {
      const { a, url } = yield* setup()
      const d = yield* register(url, "david")
      yield* a.request(op({ kind: "create_channel", name: "secret", visibility: "private" }))
      const refusal = (c: string) => ({ kind: "unauthorized", message: Errors.Messages.notAMember(c) })
      assert.deepStrictEqual(
        errorOf(yield* d.request({ type: "read_since", channel: "secret", since_seq: 0 })),
        refusal("secret")
      )
      assert.deepStrictEqual(
        errorOf(yield* d.request({ type: "read_since", channel: "nope", since_seq: 0 })),
        refusal("nope")
      )
      assert.deepStrictEqual(
        errorOf(yield* d.request({ type: "read_since", channel: "lobby", since_seq: 0 })),
        refusal("lobby")
      )
      assert.deepStrictEqual(errorOf(yield* post(d, "lobby", "hi")), refusal("lobby"))
      yield* d.request({ type: "join", channel: "lobby", token: null })
      expectType(yield* d.request({ type: "read_since", channel: "lobby", since_seq: 0 }), "history")
      // exactly one of since_seq / since_ms
      assert.strictEqual(errorOf(yield* d.request({ type: "read_since", channel: "lobby" })).kind, "malformed_frame")
      assert.strictEqual(
        errorOf(yield* d.request({ type: "read_since", channel: "lobby", since_seq: 0, since_ms: 0 })).kind,
        "malformed_frame"
      )
    }))

  it.scopedLive("history pages by seq with no gaps or duplicates across page boundaries (D-4, S-084)", () =>
    Effect.gen(function*() {
      const { a, b, c } = yield* setup({ ratePerSecond: 0 })
      // Readers in this process share its event loop with the server: keep the 1 050-frame burst off
      // them (the slow-consumer bound is tested elsewhere) and subscribe b again to read history.
      for (const s of [b, c]) expectType(yield* s.request({ type: "leave", channel: "lobby" }), "ack")
      const total = 1_050
      for (let i = 0; i < total; i++) {
        yield* a.send({ type: "channel_msg", id: `p${i}`, channel: "lobby", payload: plain(`m${i}`) })
      }
      const acks: Array<number> = []
      while (acks.length < total) {
        const f = yield* a.next()
        if (f.type === "ack") acks.push(f.seq!)
        else assert.fail(JSON.stringify(f))
      }
      expectType(yield* b.request({ type: "join", channel: "lobby", token: null }), "joined")
      const pages: Array<Frames.ServerFrameOf<"history">> = []
      let since = 0
      for (;;) {
        const page = expectType(yield* b.request({ type: "read_since", channel: "lobby", since_seq: since }), "history")
        pages.push(page)
        if (!page.more) break
        since = page.messages[page.messages.length - 1]!.seq
      }
      assert.deepStrictEqual(pages.map((p) => p.messages.length), [500, 500, 50])
      const seqs = pages.flatMap((p) => p.messages.map((m) => m.seq))
      assert.deepStrictEqual(seqs, acks)
      assert.deepStrictEqual(
        pages.flatMap((p) => p.messages.map((m) => (m.payload as { text: string }).text)),
        acks.map((_, i) => `m${i}`)
      )
      const first = pages[0]!.messages[0]!
      assert.deepStrictEqual(first.from, a.path)
      assert.strictEqual(first.origin, "agent")
      // many messages shared a millisecond, yet seq paging had no gaps: check there were ties
      const ms = pages.flatMap((p) => p.messages.map((m) => m.ts_ms))
      assert.isTrue(new Set(ms).size < ms.length)
      // since_ms reads everything after that instant
      const byMs = expectType(yield* b.request({ type: "read_since", channel: "lobby", since_ms: 0 }), "history")
      assert.strictEqual(byMs.messages.length, 500)
      assert.isTrue(byMs.more)
    }))

  it.scopedLive("body cap: too_large, nothing stored or delivered (D-9)", () =>
    Effect.gen(function*() {
      const { a, b } = yield* setup({ maxBodyBytes: 10 })
      assert.deepStrictEqual(errorOf(yield* post(a, "lobby", "ééééééé")), {
        kind: "too_large",
        message: "message body exceeds 10 bytes",
        limit: 10
      })
      assert.strictEqual(
        errorOf(yield* a.request({ type: "whisper", target: b.path, payload: plain("x".repeat(11)) })).kind,
        "too_large"
      )
      yield* b.expectSilence("150 millis")
      const history = expectType(yield* a.request({ type: "read_since", channel: "lobby", since_seq: 0 }), "history")
      assert.deepStrictEqual(history.messages, [])
      expectType(yield* post(a, "lobby", "x".repeat(10)), "ack")
    }))

  it.scopedLive("rate limit: a burst then rate_limited with retry_after_ms (D-10)", () =>
    Effect.gen(function*() {
      const { a, b } = yield* setup({ rateBurst: 3, ratePerSecond: 1 })
      for (let i = 0; i < 3; i++) expectType(yield* post(a, "lobby", `m${i}`), "ack")
      const e = errorOf(yield* a.request({ type: "whisper", target: b.path, payload: plain("x") }))
      assert.strictEqual(e.kind, "rate_limited")
      if (e.kind === "rate_limited") {
        assert.isAbove(e.retry_after_ms!, 0)
        assert.isAtMost(e.retry_after_ms!, 1000)
        assert.include(e.message!, "3 messages burst, 1/s")
      }
      // other requests are not limited
      expectType(yield* a.request({ type: "ping" }), "pong")
    }))

  it.scopedLive("history older than the retention window is not served (D-18) and is swept at startup", () =>
    Effect.gen(function*() {
      const { a, dbFile, dir } = yield* setup()
      const store = yield* Layer.build(SqliteStore.layer({ filename: dbFile })).pipe(Effect.map(Context.get(Store)))
      const old = yield* store.appendMessage({
        channel: "lobby",
        from: "aaron/ws/a",
        payload: plain("ancient"),
        ts_ms: Date.now() - 8 * 24 * 3600 * 1000,
        origin: "agent",
        reply_to: null
      })
      const fresh = expectType(yield* post(a, "lobby", "fresh"), "ack").seq!
      const page = expectType(yield* a.request({ type: "read_since", channel: "lobby", since_seq: 0 }), "history")
      assert.deepStrictEqual(page.messages.map((m) => m.seq), [fresh])
      assert.isTrue(old < fresh)
      // a second server on the same data dir sweeps at startup
      yield* startServer({}, dir)
      const left = yield* store.readSince({ channel: "lobby", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 10 })
      assert.deepStrictEqual(left.messages.map((m) => m.seq), [fresh])
    }))
  it.scopedLive("a post the store cannot retain is refused with internal and delivered to no one (D-5)", () =>
    Effect.gen(function*() {
      const { a, b, dbFile } = yield* setup()
      expectType(yield* post(a, "lobby", "kept"), "ack")
      yield* b.nextOther()
      const sql = yield* Layer.build(SqliteStore.layerSqlite({ filename: dbFile })).pipe(
        Effect.map(Context.get(SqlClient.SqlClient))
      )
      yield* Effect.orDie(sql`DROP TABLE messages`)
      assert.deepStrictEqual(errorOf(yield* post(a, "lobby", "lost")), {
        kind: "internal",
        message: "storage failure during append message"
      })
      yield* b.expectSilence("150 millis")
      expectType(yield* a.request({ type: "ping" }), "pong")
    }))
})
