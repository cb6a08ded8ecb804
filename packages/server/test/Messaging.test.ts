import { Errors, type Frames } from "@conclave/protocol"
import { errorOf, expectType, noId, op, plain, register, type Session, startServer, tempDir } from "@conclave/testkit"
import { SqlClient } from "@effect/sql"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Logger, LogLevel } from "effect"
import * as ServerConfig from "../src/ServerConfig.js"
import { ServerAddress, ServerLive } from "../src/ServerLive.js"
import { MAX_PIPELINED_POSTS } from "../src/Session.js"
import * as SqliteStore from "../src/SqliteStore.js"
import { Store } from "../src/Store.js"

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
        const got = yield* s.next()
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
      yield* a.expectNothingQueued()
      // a reply from a cli client is human-origin and carries reply_to
      const reply = expectType(yield* post(b, "lobby", "ok", { reply_to: ack.seq }), "ack")
      const seen = expectType(yield* a.next(), "channel_msg")
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
      assert.deepStrictEqual(yield* b.next(), {
        type: "whisper",
        from: a.path,
        target: b.path,
        payload: plain("psst"),
        origin: "agent"
      })
      yield* c.expectNothingQueued()
      const ghost = { user: "ghost", machine: "box", session: "sess" }
      assert.deepStrictEqual(errorOf(yield* a.request({ type: "whisper", target: ghost, payload: plain("x") })), {
        kind: "not_found",
        message: Errors.Messages.notOnline("ghost/box/sess")
      })
      // a session may whisper itself
      expectType(yield* a.request({ type: "whisper", target: a.path, payload: plain("me") }), "ack")
      assert.strictEqual(expectType(yield* a.next(), "whisper").target.session, "a")
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

  it.scopedLive("pipelined posts: acks after commit in request order; refusals and other replies keep their place", () =>
    Effect.gen(function*() {
      const { a, b } = yield* setup({ ratePerSecond: 0 })
      const sent: Array<string> = []
      const send = (frame: Record<string, unknown> & { readonly id: string }) =>
        Effect.zipRight(Effect.sync(() => sent.push(frame.id)), a.send(frame))
      const postFrame = (i: number) => ({ type: "channel_msg", id: `p${i}`, channel: "lobby", payload: plain(`m${i}`) })
      // everything goes out back to back, without waiting for a reply
      for (let i = 0; i < 10; i++) yield* send(postFrame(i))
      yield* send({ type: "channel_msg", id: "refused", channel: "elsewhere", payload: plain("no") })
      for (let i = 10; i < 15; i++) yield* send(postFrame(i))
      yield* send({ type: "who", id: "who", channel: "lobby" })
      yield* send(postFrame(15))
      const replies: Array<Frames.ServerFrame> = []
      while (replies.length < sent.length) replies.push(yield* a.next())
      assert.deepStrictEqual(replies.map((f) => ("id" in f ? f.id : f.type)), sent)
      assert.deepStrictEqual(errorOf(replies[10]!), {
        kind: "unauthorized",
        message: Errors.Messages.notAMember("elsewhere")
      })
      assert.strictEqual(replies[16]!.type, "presence")
      const seqs = replies.flatMap((f) => (f.type === "ack" ? [f.seq!] : []))
      assert.strictEqual(seqs.length, 16)
      assert.deepStrictEqual([...seqs].sort((x, y) => x - y), seqs, "seqs follow request order")
      // subscribers get every post once, in seq order
      const delivered: Array<number> = []
      while (delivered.length < 16) delivered.push(expectType(yield* b.next(), "channel_msg").seq)
      assert.deepStrictEqual(delivered, seqs)
      // a read right after the acks sees every post (they were committed before their acks)
      const page = expectType(yield* b.request({ type: "read_since", channel: "lobby", since_seq: 0 }), "history")
      assert.deepStrictEqual(page.messages.map((m) => m.seq), seqs)
    }))

  it.scopedLive("a session's back-to-back posts are queued for commit together, not one at a time", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      let queued = 0
      let mostQueued = 0
      const countingStore = Layer.effect(
        Store,
        Effect.map(Store, (store) =>
          Store.of({
            ...store,
            appendMessage: (message) =>
              Effect.suspend(() => {
                mostQueued = Math.max(mostQueued, ++queued)
                return Effect.ensuring(store.appendMessage(message), Effect.sync(() => queued--))
              })
          }))
      ).pipe(Layer.provide(SqliteStore.layer({ filename: `${dir}/conclave.db` })))
      const context = yield* Layer.build(
        ServerLive.pipe(
          Layer.provide(ServerConfig.layer({ host: "127.0.0.1", port: 0, ratePerSecond: 0 })),
          Layer.provide(countingStore)
        )
      )
      const url = Context.get(context, ServerAddress).url
      const a = yield* register(url, "aaron")
      yield* a.request(op({ kind: "create_channel", name: "lobby", visibility: "public" }))
      expectType(yield* a.request({ type: "join", channel: "lobby", token: null }), "joined")
      const total = 40
      for (let i = 0; i < total; i++) {
        yield* a.send({ type: "channel_msg", id: `p${i}`, channel: "lobby", payload: plain(`m${i}`) })
      }
      for (let i = 0; i < total; i++) assert.strictEqual(expectType(yield* a.next(), "ack").id, `p${i}`)
      assert.isAbove(mostQueued, 1, "posts were committed one at a time")
      assert.isAtMost(mostQueued, MAX_PIPELINED_POSTS)
      assert.strictEqual(queued, 0)
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None)))

  it.scopedLive("pipelined posts before a malformed frame are answered before the error and the close (D-8)", () =>
    Effect.gen(function*() {
      const { a } = yield* setup({ ratePerSecond: 0 })
      for (let i = 0; i < 5; i++) {
        yield* a.send({ type: "channel_msg", id: `p${i}`, channel: "lobby", payload: plain(`m${i}`) })
      }
      yield* a.send("{not json")
      const frames: Array<Frames.ServerFrame> = []
      for (let i = 0; i < 6; i++) frames.push(yield* a.next())
      assert.deepStrictEqual(frames.slice(0, 5).map((f) => expectType(f, "ack").id), ["p0", "p1", "p2", "p3", "p4"])
      assert.strictEqual(errorOf(frames[5]!).kind, "malformed_frame")
      assert.strictEqual((yield* a.closed).code, 1008)
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

  it.scopedLive("many sessions reading one channel at once, each from its own seq, page to the end without gaps (shared reads)", () =>
    Effect.gen(function*() {
      const { url, a, b, c } = yield* setup({ ratePerSecond: 0, historyPageCap: 40 })
      for (const s of [b, c]) expectType(yield* s.request({ type: "leave", channel: "lobby" }), "ack")
      const total = 150
      const acks: Array<number> = []
      for (let i = 0; i < total; i++) acks.push(expectType(yield* post(a, "lobby", `m${i}`), "ack").seq!)
      const readers = yield* Effect.forEach(Array.from({ length: 24 }, (_, i) => i), (i) =>
        Effect.gen(function*() {
          const r = yield* register(url, `reader${i}`, "box", "r")
          expectType(yield* r.request({ type: "join", channel: "lobby", token: null }), "joined")
          return r
        }))
      // every reader asks at once (one frame each, then the next page as soon as a page comes)
      const got = yield* Effect.forEach(readers, (r, i) =>
        Effect.gen(function*() {
          const from = acks[(i * 7) % total]! - 1
          const seqs: Array<number> = []
          let since = from
          let pages = 0
          for (;;) {
            const page = expectType(
              yield* r.request({ type: "read_since", channel: "lobby", since_seq: since }),
              "history"
            )
            pages++
            assert.isAtMost(page.messages.length, 40)
            for (const m of page.messages) seqs.push(m.seq)
            if (!page.more) break
            assert.isAbove(page.messages.length, 0, "a page marked more holds rows")
            since = page.messages[page.messages.length - 1]!.seq
          }
          return { from, seqs, pages }
        }), { concurrency: "unbounded" })
      for (const { from, seqs } of got) {
        assert.deepStrictEqual(
          seqs,
          acks.filter((s) => s > from),
          `reader from ${from}`
        )
      }
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
      yield* b.expectNothingQueued()
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
      const { a, dbFile, dir } = yield* setup({ store: "file" })
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
      yield* startServer({ store: "file" }, dir)
      const left = yield* store.readSince({ channel: "lobby", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 10 })
      assert.deepStrictEqual(left.messages.map((m) => m.seq), [fresh])
    }))
  it.scopedLive("a post the store cannot retain is refused with internal and delivered to no one (D-5)", () =>
    Effect.gen(function*() {
      const { a, b, dbFile } = yield* setup({ store: "file" })
      expectType(yield* post(a, "lobby", "kept"), "ack")
      yield* b.next()
      const sql = yield* Layer.build(SqliteStore.layerSqlite({ filename: dbFile })).pipe(
        Effect.map(Context.get(SqlClient.SqlClient))
      )
      yield* Effect.orDie(sql`DROP TABLE messages`)
      assert.deepStrictEqual(errorOf(yield* post(a, "lobby", "lost")), {
        kind: "internal",
        message: "storage failure during append message"
      })
      yield* b.expectNothingQueued()
      expectType(yield* a.request({ type: "ping" }), "pong")
    }))
})
