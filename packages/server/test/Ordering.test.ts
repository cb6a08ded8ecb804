/**
 * Replies, refusals and their order for the hot requests — whispers, pings, pipelined posts and
 * joins — over a burst of frames sent back to back. Each test runs with tracing on and off: tracing
 * changes what is recorded, never which code runs or what it answers (D-40); joins run over a file
 * and an in-memory store.
 */
import { Errors, type Frames } from "@conclave/protocol"
import {
  errorOf,
  eventually,
  expectType,
  op,
  plain,
  reconnect,
  register,
  type Session,
  startServer
} from "@conclave/testkit"
import { SqlClient } from "@effect/sql"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"
import { MAX_PIPELINED_POSTS } from "../src/Session.js"
import * as SqliteStore from "../src/SqliteStore.js"

const setup = (tracing: boolean, options: Parameters<typeof startServer>[0] = {}) =>
  Effect.gen(function*() {
    const server = yield* startServer({ ...options, tracing })
    const a = yield* register(server.url, "aaron", "ws", "a", "bridge")
    const b = yield* register(server.url, "bob", "box", "b", "cli")
    yield* a.request(op({ kind: "create_channel", name: "lobby", visibility: "public" }))
    for (const s of [a, b]) expectType(yield* s.request({ type: "join", channel: "lobby", token: null }), "joined")
    return { ...server, a, b }
  })

/** Send frames back to back (one socket write each, no waiting) and read one reply per frame. */
const burst = (s: Session, frames: ReadonlyArray<Record<string, unknown>>) =>
  Effect.gen(function*() {
    for (const f of frames) yield* s.send(f)
    const replies: Array<Frames.ServerFrame> = []
    while (replies.length < frames.length) {
      replies.push(yield* s.nextMatching((f): f is Frames.ServerFrame => "id" in f && f.id !== undefined))
    }
    return replies
  })

const ghost = { user: "nobody", machine: "none", session: "x" }

for (const tracing of [true, false]) {
  describe(`requests answered with tracing ${tracing ? "on" : "off"}`, () => {
    it.scopedLive("a whisper is acked with its id and delivered once with the stamped sender; ping answers pong", () =>
      Effect.gen(function*() {
        const { a, b } = yield* setup(tracing)
        const replies = yield* burst(a, [
          { type: "whisper", id: "w1", target: b.path, payload: plain("psst"), from: ghost },
          { type: "ping", id: "g1" },
          { type: "whisper", id: "w2", target: a.path, payload: plain("me") }
        ])
        assert.deepStrictEqual(replies, [
          { type: "ack", id: "w1", detail: null, seq: null },
          { type: "pong", id: "g1" },
          { type: "ack", id: "w2", detail: null, seq: null }
        ])
        assert.deepStrictEqual(yield* b.next(), {
          type: "whisper",
          from: a.path,
          target: b.path,
          payload: plain("psst"),
          origin: "agent"
        })
        assert.strictEqual(expectType(yield* a.next(), "whisper").target.session, "a")
        yield* b.expectNothingQueued()
        expectType(yield* a.request({ type: "ping" }), "pong")
      }))

    it.scopedLive("whisper refusals: not online, too large, rate limited", () =>
      Effect.gen(function*() {
        const { a, b } = yield* setup(tracing, { maxBodyBytes: 10, rateBurst: 2, ratePerSecond: 0.01 })
        // one round trip each: every frame meets an idle session
        const sequential = (frames: ReadonlyArray<Record<string, unknown>>) =>
          Effect.forEach(frames, (f) => burst(a, [f]).pipe(Effect.map((r) => r[0]!)))
        const replies = yield* sequential([
          { type: "whisper", id: "r1", target: ghost, payload: plain("x") },
          { type: "whisper", id: "r2", target: b.path, payload: plain("x".repeat(11)) },
          { type: "whisper", id: "r3", target: { user: "Bad User", machine: "m", session: "s" }, payload: plain("x") },
          { type: "whisper", id: "r4", target: b.path, payload: plain("one") },
          { type: "whisper", id: "r5", target: b.path, payload: plain("two") },
          { type: "whisper", id: "r6", target: b.path, payload: plain("three") }
        ])
        assert.deepStrictEqual(replies.map((r) => ("id" in r ? r.id : undefined)), ["r1", "r2", "r3", "r4", "r5", "r6"])
        assert.deepStrictEqual(errorOf(replies[0]!), {
          kind: "not_found",
          message: Errors.Messages.notOnline("nobody/none/x")
        })
        assert.deepStrictEqual(errorOf(replies[1]!), {
          kind: "too_large",
          message: "message body exceeds 10 bytes",
          limit: 10
        })
        // a target that is not even a valid name is simply not online
        assert.strictEqual(errorOf(replies[2]!).kind, "not_found")
        expectType(replies[3]!, "ack")
        expectType(replies[4]!, "ack")
        const limited = errorOf(replies[5]!)
        assert.strictEqual(limited.kind, "rate_limited")
        assert.include(limited.message!, "2 messages burst")
        assert.isAbove(limited.retry_after_ms!, 1000)
        // exactly the two accepted whispers were delivered, in order
        for (const text of ["one", "two"]) {
          assert.deepStrictEqual(expectType(yield* b.next(), "whisper").payload, plain(text))
        }
        yield* b.expectNothingQueued()
        // the session is still usable
        expectType(yield* a.request({ type: "ping" }), "pong")
      }))

    it.scopedLive("a session whose peer closed leaves presence and stops receiving; its handle can be reused", () =>
      Effect.gen(function*() {
        const { a, b, url } = yield* setup(tracing)
        yield* b.close
        const present = Effect.map(
          a.request({ type: "who", id: "w", channel: null }),
          (r) => expectType(r, "presence").sessions.map((p) => p.user)
        )
        const users = yield* eventually(
          "bob to leave presence after closing",
          Effect.map(present, (users) => users.includes("bob") ? Option.none() : Option.some(users)),
          "5 seconds",
          "20 millis"
        )
        assert.deepStrictEqual(users, ["aaron"])
        assert.strictEqual(
          errorOf(yield* a.request({ type: "whisper", target: b.path, payload: plain("gone?") })).kind,
          "not_found"
        )
        const again = yield* reconnect(url, b.identity, "b")
        assert.deepStrictEqual(again.path, b.path)
        expectType(yield* a.request({ type: "whisper", target: b.path, payload: plain("back") }), "ack")
        assert.deepStrictEqual(expectType(yield* again.next(), "whisper").payload, plain("back"))
      }))

    it.scopedLive("replies keep request order when whispers are mixed with posts and other requests", () =>
      Effect.gen(function*() {
        const { a, b } = yield* setup(tracing)
        const replies = yield* burst(a, [
          { type: "whisper", id: "1", target: b.path, payload: plain("w1") },
          { type: "channel_msg", id: "2", channel: "lobby", payload: plain("p1") },
          { type: "whisper", id: "3", target: b.path, payload: plain("w2") },
          { type: "who", id: "4", channel: "lobby" },
          { type: "ping", id: "5" },
          { type: "whisper", id: "6", target: ghost, payload: plain("lost") },
          { type: "channel_msg", id: "7", channel: "lobby", payload: plain("p2") },
          { type: "whisper", id: "8", target: b.path, payload: plain("w3") }
        ])
        assert.deepStrictEqual(
          replies.map((r) => [("id" in r ? r.id : "") ?? "", r.type]),
          [["1", "ack"], ["2", "ack"], ["3", "ack"], ["4", "presence"], ["5", "pong"], ["6", "error"], ["7", "ack"], [
            "8",
            "ack"
          ]]
        )
        // b sees whispers and posts in the order a sent them
        const seen: Array<string> = []
        for (let i = 0; i < 5; i++) {
          const f = yield* b.next()
          const payload = f.type === "whisper" || f.type === "channel_msg" ? f.payload : undefined
          seen.push(payload?.kind === "plain" ? payload.text : f.type)
        }
        assert.deepStrictEqual(seen, ["w1", "p1", "w2", "p2", "w3"])
      }))

    it.scopedLive("pipelined posts past the pipelining cap are acked after commit in request order, before later frames", () =>
      Effect.gen(function*() {
        const { a, b } = yield* setup(tracing, { ratePerSecond: 0 })
        const posts = MAX_PIPELINED_POSTS + 6
        const frames: Array<Record<string, unknown>> = []
        for (let i = 0; i < posts; i++) {
          frames.push({ type: "channel_msg", id: `p${i}`, channel: "lobby", payload: plain(`m${i}`) })
        }
        frames.push({ type: "ping", id: "g" }, { type: "whisper", id: "w", target: b.path, payload: plain("after") })
        frames.push({ type: "channel_msg", id: "last", channel: "lobby", payload: plain("last") })
        const replies = yield* burst(a, frames)
        assert.deepStrictEqual(replies.map((r) => ("id" in r ? r.id : undefined)), frames.map((f) => f.id))
        const seqs = replies.flatMap((r) => (r.type === "ack" && r.seq !== null ? [r.seq] : []))
        assert.strictEqual(seqs.length, posts + 1)
        assert.deepStrictEqual([...seqs].sort((x, y) => x - y), seqs, "seqs follow request order")
        assert.deepStrictEqual(replies[posts], { type: "pong", id: "g" })
        // b sees every post once, in seq order, and the whisper sent after them after them
        const seen: Array<string> = []
        while (seen.length < posts + 2) {
          const f = yield* b.next()
          if (f.type === "channel_msg") seen.push(`${f.seq}`)
          else if (f.type === "whisper") seen.push("whisper")
        }
        assert.deepStrictEqual(seen, [...seqs.slice(0, posts).map(String), "whisper", String(seqs[posts])])
        const page = expectType(yield* b.request({ type: "read_since", channel: "lobby", since_seq: 0 }), "history")
        assert.deepStrictEqual(page.messages.map((m) => m.seq), seqs)
        assert.deepStrictEqual(page.messages.map((m) => m.from), seqs.map(() => a.path))
      }))

    it.scopedLive("post refusals: not a member, too large, rate limited, reply_to", () =>
      Effect.gen(function*() {
        const { a, b } = yield* setup(tracing, { maxBodyBytes: 10, rateBurst: 4, ratePerSecond: 0.01 })
        yield* a.request(op({ kind: "create_channel", name: "elsewhere", visibility: "public" }))
        const sequential = (frames: ReadonlyArray<Record<string, unknown>>) =>
          Effect.forEach(frames, (f) => burst(a, [f]).pipe(Effect.map((r) => r[0]!)))
        const first = yield* sequential([
          { type: "channel_msg", id: "r1", channel: "elsewhere", payload: plain("x") },
          { type: "channel_msg", id: "r2", channel: "lobby", payload: plain("x".repeat(11)) },
          { type: "channel_msg", id: "r3", channel: "lobby", payload: plain("one") }
        ])
        assert.deepStrictEqual(errorOf(first[0]!), {
          kind: "unauthorized",
          message: Errors.Messages.notAMember("elsewhere")
        })
        assert.deepStrictEqual(errorOf(first[1]!), {
          kind: "too_large",
          message: "message body exceeds 10 bytes",
          limit: 10
        })
        const one = expectType(first[2]!, "ack").seq!
        const second = yield* sequential([
          { type: "channel_msg", id: "r4", channel: "lobby", payload: plain("gone"), reply_to: one + 1000 },
          { type: "channel_msg", id: "r5", channel: "lobby", payload: plain("re"), reply_to: one },
          { type: "channel_msg", id: "r6", channel: "lobby", payload: plain("two") },
          { type: "channel_msg", id: "r7", channel: "lobby", payload: plain("three") }
        ])
        assert.deepStrictEqual(errorOf(second[0]!), {
          kind: "not_found",
          message: `message ${one + 1000} not found in channel \`lobby\``
        })
        // (the refused reply_to took a token: the rate is checked before the reply_to, )
        const re = expectType(second[1]!, "ack").seq!
        expectType(second[2]!, "ack")
        const limited = errorOf(second[3]!)
        assert.strictEqual(limited.kind, "rate_limited")
        assert.include(limited.message!, "4 messages burst")
        // exactly the accepted posts were delivered, in order, the reply with its reply_to
        const delivered = [
          expectType(yield* b.next(), "channel_msg"),
          expectType(yield* b.next(), "channel_msg"),
          expectType(yield* b.next(), "channel_msg")
        ]
        assert.deepStrictEqual(delivered.map((m) => [m.payload, m.reply_to]), [
          [plain("one"), null],
          [plain("re"), one],
          [plain("two"), null]
        ])
        assert.strictEqual(delivered[1]!.seq, re)
        yield* b.expectNothingQueued()
      }))

    it.scopedLive("a row refused alone within a group commit is answered in request order", () =>
      Effect.gen(function*() {
        const { a, b, dbFile } = yield* setup(tracing, { ratePerSecond: 0, store: "file" })
        yield* a.request(op({ kind: "create_channel", name: "other", visibility: "public" }))
        expectType(yield* a.request({ type: "join", channel: "other", token: null }), "joined")
        // Inserts into `other` now fail; the others of the same batch are retried without them.
        const sql = yield* Layer.build(SqliteStore.layerSqlite({ filename: dbFile })).pipe(
          Effect.map(Context.get(SqlClient.SqlClient))
        )
        yield* Effect.orDie(sql.unsafe(
          "CREATE TRIGGER refuse_other BEFORE INSERT ON messages WHEN NEW.channel = 'other' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        ))
        const frames: Array<Record<string, unknown>> = []
        for (let i = 0; i < 12; i++) {
          frames.push({
            type: "channel_msg",
            id: `p${i}`,
            channel: i % 3 === 1 ? "other" : "lobby",
            payload: plain(`m${i}`)
          })
        }
        const replies = yield* burst(a, frames)
        assert.deepStrictEqual(replies.map((r) => ("id" in r ? r.id : undefined)), frames.map((f) => f.id))
        replies.forEach((r, i) => {
          if (i % 3 === 1) {
            assert.deepStrictEqual(errorOf(r), { kind: "internal", message: "storage failure during append message" })
          } else expectType(r, "ack")
        })
        const seqs = replies.flatMap((r) => (r.type === "ack" && r.seq !== null ? [r.seq] : []))
        assert.deepStrictEqual([...seqs].sort((x, y) => x - y), seqs)
        const delivered: Array<number> = []
        while (delivered.length < seqs.length) delivered.push(expectType(yield* b.next(), "channel_msg").seq)
        assert.deepStrictEqual(delivered, seqs)
        yield* b.expectNothingQueued()
      }))

    it.scopedLive("a post the store cannot retain is refused with internal, before the frames behind it", () =>
      Effect.gen(function*() {
        const { a, b, dbFile } = yield* setup(tracing, { store: "file" })
        const sql = yield* Layer.build(SqliteStore.layerSqlite({ filename: dbFile })).pipe(
          Effect.map(Context.get(SqlClient.SqlClient))
        )
        yield* Effect.orDie(sql`DROP TABLE messages`)
        const replies = yield* burst(a, [
          { type: "channel_msg", id: "lost", channel: "lobby", payload: plain("lost") },
          { type: "ping", id: "g" },
          { type: "whisper", id: "w", target: b.path, payload: plain("still here") }
        ])
        assert.deepStrictEqual(errorOf(replies[0]!), {
          kind: "internal",
          message: "storage failure during append message"
        })
        assert.deepStrictEqual(replies.slice(1), [{ type: "pong", id: "g" }, {
          type: "ack",
          id: "w",
          detail: null,
          seq: null
        }])
        assert.deepStrictEqual(expectType(yield* b.next(), "whisper").payload, plain("still here"))
        yield* b.expectNothingQueued()
      }))
  })
}

const joinModes = [
  { name: "with tracing on", tracing: true, store: "file" },
  { name: "with tracing off, file store", tracing: false, store: "file" },
  { name: "with tracing off, in-memory store", tracing: false, store: "memory" }
] as const

for (const mode of joinModes) {
  describe(`joins answered ${mode.name}`, () => {
    it.scopedLive("public, unlisted, private, missing and banned channels", () =>
      Effect.gen(function*() {
        const { a, b } = yield* setup(mode.tracing, { store: mode.store })
        for (const [name, visibility] of [["side", "unlisted"], ["vault", "private"], ["pit", "public"]] as const) {
          expectType(yield* a.request(op({ kind: "create_channel", name, visibility })), "ack")
        }
        expectType(yield* a.request(op({ kind: "ban", channel: "pit", user: "bob" })), "ack")
        const join = (id: string, channel: string) => ({ type: "join", id, channel, token: null })
        // one round trip each: every join meets an idle session
        const replies: Array<Frames.ServerFrame> = []
        for (const [id, channel] of [["1", "lobby"], ["2", "nowhere"], ["3", "vault"], ["4", "side"], ["5", "pit"]]) {
          replies.push(...(yield* burst(b, [join(id!, channel!)])))
        }
        assert.deepStrictEqual(replies.slice(0, 1), [{ type: "joined", id: "1", channel: "lobby" }])
        assert.deepStrictEqual(errorOf(replies[1]!), {
          kind: "not_found",
          message: Errors.Messages.channelNotFound("nowhere")
        })
        assert.deepStrictEqual(errorOf(replies[2]!), {
          kind: "not_found",
          message: Errors.Messages.channelNotFound("vault")
        })
        assert.deepStrictEqual(replies[3], { type: "joined", id: "4", channel: "side" })
        assert.deepStrictEqual(errorOf(replies[4]!), { kind: "unauthorized", message: Errors.Messages.banned("pit") })
        // the unlisted join recorded bob's membership: the channel is now listed for him
        const listed = expectType(yield* b.request({ type: "list_channels" }), "channel_list").channels.map((c) =>
          c.name
        )
        assert.includeMembers(listed, ["lobby", "side"])
        assert.notInclude(listed, "vault")
        // a join without an id is answered without one
        yield* b.send({ type: "join", channel: "lobby", token: null })
        assert.deepStrictEqual(yield* b.next("5 seconds"), { type: "joined", channel: "lobby" })
      }))

    it.scopedLive("a joined session receives the channel's posts; pipelined joins keep request order", () =>
      Effect.gen(function*() {
        const { a, b } = yield* setup(mode.tracing, { store: mode.store })
        expectType(yield* a.request(op({ kind: "create_channel", name: "news", visibility: "public" })), "ack")
        const replies = yield* burst(b, [
          { type: "join", id: "1", channel: "news", token: null },
          { type: "join", id: "2", channel: "gone", token: null },
          { type: "whisper", id: "3", target: a.path, payload: plain("hi") },
          { type: "join", id: "4", channel: "news", token: null },
          { type: "who", id: "5", channel: "news" }
        ])
        assert.deepStrictEqual(replies.map((r) => [("id" in r ? r.id : "") ?? "", r.type]), [
          ["1", "joined"],
          ["2", "error"],
          ["3", "ack"],
          ["4", "joined"],
          ["5", "presence"]
        ])
        assert.deepStrictEqual(
          expectType(replies[4]!, "presence").sessions.map((p) => p.user),
          ["bob"]
        )
        expectType(yield* a.request({ type: "join", channel: "news", token: null }), "joined")
        expectType(yield* a.request({ type: "channel_msg", channel: "news", payload: plain("extra") }), "ack")
        const delivered = expectType(yield* b.next(), "channel_msg")
        assert.deepStrictEqual([delivered.channel, delivered.payload], ["news", plain("extra")])
      }))
  })
}
