/**
 * Scroll-back (issue 18): `read_since` with `before_seq` reads the newest page below a seq, oldest
 * first, `more` while older ones remain — through the same request as forward reads: the same
 * authorization, the same row and byte caps (issue 22), bad input refused as `malformed_frame`.
 */
import { Errors, type Frames, Limits } from "@conclave/protocol"
import { errorOf, expectType, op, plain, register, type Session, startServer } from "@conclave/testkit"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"

const NEWEST = Number.MAX_SAFE_INTEGER

const back = (s: Session, channel: string, before: number) =>
  Effect.map(
    s.request({ type: "read_since", channel, before_seq: before }),
    (reply) => expectType(reply, "history")
  )

/** Post `total` messages pipelined and return their seqs, in order. */
const postMany = (s: Session, channel: string, total: number, body: (i: number) => string) =>
  Effect.gen(function*() {
    for (let i = 0; i < total; i++) {
      yield* s.send({ type: "channel_msg", id: `p${i}`, channel, payload: plain(body(i)) })
    }
    const acks: Array<number> = []
    while (acks.length < total) {
      const f = yield* s.next()
      if (f.type === "ack") acks.push(f.seq!)
      else assert.fail(JSON.stringify(f))
    }
    return acks
  })

describe("scroll-back: read_since with before_seq", () => {
  it.scopedLive("pages back from the newest: 500-row pages, oldest first, `more` until the first message", () =>
    Effect.gen(function*() {
      const server = yield* startServer({ ratePerSecond: 0 })
      const a = yield* register(server.url, "aaron", "ws", "a", "bridge")
      const b = yield* register(server.url, "bob", "box", "b", "cli")
      yield* a.request(op({ kind: "create_channel", name: "lobby", visibility: "public" }))
      expectType(yield* a.request({ type: "join", channel: "lobby", token: null }), "joined")
      const acks = yield* postMany(a, "lobby", 1_050, (i) => `m${i}`)
      expectType(yield* b.request({ type: "join", channel: "lobby", token: null }), "joined")

      const pages: Array<Frames.ServerFrameOf<"history">> = []
      let before = NEWEST
      for (;;) {
        const page = yield* back(b, "lobby", before)
        pages.push(page)
        assert.strictEqual(page.channel, "lobby")
        if (!page.more) break
        before = page.messages[0]!.seq
        assert.isBelow(pages.length, 10, "paging back terminates")
      }
      assert.deepStrictEqual(pages.map((p) => p.messages.length), [500, 500, 50])
      // each page is in ascending seq order; together, newest page first, they are every message once
      for (const p of pages) {
        const seqs = p.messages.map((m) => m.seq)
        assert.deepStrictEqual(seqs, [...seqs].sort((x, y) => x - y))
      }
      assert.deepStrictEqual([...pages].reverse().flatMap((p) => p.messages.map((m) => m.seq)), acks)
      const newest = pages[0]!.messages
      assert.strictEqual((newest[newest.length - 1]!.payload as { text: string }).text, "m1049")
      assert.deepStrictEqual(newest[0]!.from, a.path)
      assert.strictEqual(newest[0]!.origin, "agent")
      // exclusive, and a seq below the first message reads nothing
      const justBelow = yield* back(b, "lobby", acks[10]!)
      assert.deepStrictEqual(justBelow.messages.map((m) => m.seq), acks.slice(0, 10))
      assert.isFalse(justBelow.more)
      const nothing = yield* back(b, "lobby", acks[0]!)
      assert.deepStrictEqual([nothing.messages, nothing.more], [[], false])
      // a forward page from the same point meets the backward one without a gap
      const forward = expectType(
        yield* b.request({ type: "read_since", channel: "lobby", since_seq: pages[0]!.messages[0]!.seq - 1 }),
        "history"
      )
      assert.deepStrictEqual(forward.messages.map((m) => m.seq), pages[0]!.messages.map((m) => m.seq))
    }))

  it.scopedLive("authorization is read_since's: a non-subscriber gets the same refusal either way", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const a = yield* register(server.url, "aaron")
      const d = yield* register(server.url, "david")
      yield* a.request(op({ kind: "create_channel", name: "lobby", visibility: "public" }))
      yield* a.request(op({ kind: "create_channel", name: "secret", visibility: "private" }))
      for (const channel of ["lobby", "secret"]) {
        expectType(yield* a.request({ type: "join", channel, token: null }), "joined")
        expectType(yield* a.request({ type: "channel_msg", channel, payload: plain(`in ${channel}`) }), "ack")
      }
      for (const channel of ["secret", "nope", "lobby"]) {
        const forward = errorOf(yield* d.request({ type: "read_since", channel, since_seq: 0 }))
        const backward = errorOf(yield* d.request({ type: "read_since", channel, before_seq: NEWEST }))
        assert.deepStrictEqual(backward, { kind: "unauthorized", message: Errors.Messages.notAMember(channel) })
        assert.deepStrictEqual(backward, forward, channel)
      }
      expectType(yield* d.request({ type: "join", channel: "lobby", token: null }), "joined")
      const page = yield* back(d, "lobby", NEWEST)
      assert.deepStrictEqual(page.messages.map((m) => (m.payload as { text: string }).text), ["in lobby"])
      // leaving ends the right to read, backward too
      expectType(yield* d.request({ type: "leave", channel: "lobby" }), "ack")
      assert.strictEqual(
        errorOf(yield* d.request({ type: "read_since", channel: "lobby", before_seq: NEWEST })).kind,
        "unauthorized"
      )
    }))

  it.scopedLive("bad before_seq is malformed_frame: a wrong value ends the session (D-8), a wrong mix does not", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const a = yield* register(server.url, "aaron")
      yield* a.request(op({ kind: "create_channel", name: "lobby", visibility: "public" }))
      // not a seq of a message: the frame does not decode, so it is answered and the session closed
      const wrong: ReadonlyArray<unknown> = [0, -1, 1.5, "10", true, [5], { seq: 5 }, 2 ** 53]
      for (const [i, value] of wrong.entries()) {
        const s = yield* register(server.url, `bad${i}`)
        expectType(yield* s.request({ type: "join", channel: "lobby", token: null }), "joined")
        const error = errorOf(yield* s.request({ type: "read_since", channel: "lobby", before_seq: value }))
        assert.strictEqual(error.kind, "malformed_frame", JSON.stringify(value))
        assert.include(error.message ?? "", "read_since", JSON.stringify(value))
        assert.strictEqual((yield* s.closed).code, 1008, JSON.stringify(value))
      }
      // well-formed but not exactly one way to read: refused, and the session carries on
      expectType(yield* a.request({ type: "join", channel: "lobby", token: null }), "joined")
      const mixes: ReadonlyArray<Record<string, unknown>> = [
        { before_seq: null },
        { before_seq: 10, since_seq: 0 },
        { before_seq: 10, since_ms: 0 },
        { before_seq: 10, since_seq: 3, since_ms: 0 }
      ]
      for (const fields of mixes) {
        const error = errorOf(yield* a.request({ type: "read_since", channel: "lobby", ...fields }))
        assert.deepStrictEqual(
          error,
          {
            kind: "malformed_frame",
            message: "read_since takes exactly one of `since_seq`, `since_ms` or `before_seq`"
          },
          JSON.stringify(fields)
        )
      }
      expectType(yield* a.request({ type: "ping" }), "pong")
      expectType(yield* a.request({ type: "read_since", channel: "lobby", before_seq: 1 }), "history")
    }))

  it.scopedLive("pages back are capped in bytes too: they keep the newest rows and `more` carries on (issue 22)", () =>
    Effect.gen(function*() {
      const server = yield* startServer({ maxBodyBytes: 64 * 1024, ratePerSecond: 0 })
      const a = yield* register(server.url, "aaron")
      yield* a.request(op({ kind: "create_channel", name: "big", visibility: "public" }))
      expectType(yield* a.request({ type: "join", channel: "big", token: null }), "joined")
      // control characters: each escapes to 6 bytes, so a 64 KiB body is ~393 KB on the wire
      const acks = yield* postMany(
        a,
        "big",
        12,
        (i) => String.fromCharCode(1).repeat(64 * 1024 - 8) + `#${i}`.padStart(8, "0")
      )
      let before = NEWEST
      let pages = 0
      const seen: Array<number> = []
      for (;;) {
        const page = yield* back(a, "big", before)
        pages++
        assert.isAtMost(
          Buffer.byteLength(JSON.stringify(page.messages)),
          Limits.HISTORY_PAGE_MAX_BYTES + 400 * 1024,
          "a page stays within the byte cap (plus one row)"
        )
        assert.isAbove(page.messages.length, 0)
        // the cut keeps the rows next to before_seq: no gap to the page read before
        if (before !== NEWEST) assert.strictEqual(page.messages[page.messages.length - 1]!.seq, before - 1)
        seen.unshift(...page.messages.map((m) => m.seq))
        before = page.messages[0]!.seq
        if (!page.more) break
      }
      assert.deepStrictEqual(seen, acks, "every message is read, none twice")
      assert.isAbove(pages, 3, "the pages were cut by bytes, not by the 500-row cap")
    }))
})
