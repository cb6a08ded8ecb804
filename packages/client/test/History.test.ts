import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, Stream } from "effect"
import type { Reply, RequestWithoutId } from "../src/Connection.js"
import { ConnectionLost } from "../src/Connection.js"
import * as History from "../src/History.js"

const row = (seq: number) => ({
  seq,
  from: { user: "u", machine: "m", session: "s" },
  ts_ms: seq,
  payload: { kind: "plain" as const, text: `m${seq}` },
  origin: "human" as const,
  reply_to: null
})

/** A server whose page after seq 2 never arrives (the link closes with `code`). */
const server = (code: number | undefined) => {
  const asked: Array<RequestWithoutId> = []
  const send = (frame: RequestWithoutId): Effect.Effect<Reply, ConnectionLost> => {
    asked.push(frame)
    if (frame.type !== "read_since") return Effect.die("unexpected")
    if (frame.since_seq === 2) return Effect.fail(new ConnectionLost())
    const from = frame.since_seq ?? 0
    const messages = from < 2 ? [row(from + 1), row(from + 2)].filter((r) => r.seq <= 2) : []
    return Effect.succeed({ type: "history", id: "1", channel: "c", messages, more: from < 2 })
  }
  return { asked, send, closeCode: Effect.succeed(code) }
}

describe("History", () => {
  it.effect("a page lost to a 1009 close ends the read with PageTooLarge, after the rows before it", () =>
    Effect.gen(function*() {
      const s = server(1009)
      const read = yield* History.collect(s.send, "c", History.afterSeq(0), { closeCode: s.closeCode })
      assert.deepStrictEqual(read.rows.map((r) => r.seq), [1, 2])
      assert.isTrue(Option.isSome(read.tooLarge))
      assert.deepStrictEqual(Option.getOrThrow(read.tooLarge).from, History.afterSeq(2))
    }))

  it.effect("any other lost link is not a page too large", () =>
    Effect.gen(function*() {
      const s = server(1006)
      const read = yield* History.collect(s.send, "c", History.afterSeq(0), { closeCode: s.closeCode })
      assert.deepStrictEqual(read.rows.map((r) => r.seq), [1, 2])
      assert.isTrue(Option.isNone(read.tooLarge))
      const error = yield* Effect.flip(
        Stream.runDrain(History.pages(s.send, "c", History.afterSeq(2), { closeCode: s.closeCode }))
      )
      assert.strictEqual(error._tag, "ConnectionLost")
    }))

  it("past a page too large: after a seq, the next message is skipped; at a time, it is looked for by seq", () => {
    assert.deepStrictEqual(History.pastTooLarge(History.afterSeq(41)), {
      _tag: "Message",
      seq: 42,
      next: History.afterSeq(42)
    })
    assert.deepStrictEqual(History.pastTooLarge(History.sinceMs(1_000)), {
      _tag: "Locate",
      olderThanMs: 1_000,
      next: History.afterSeq(0)
    })
    const text = History.skippedText("ops", History.pastTooLarge(History.afterSeq(41)))
    assert.include(text, "message #42 of #ops is larger than this client accepts (16777216 bytes) and was skipped")
  })

  it.effect("pagesBefore walks back below each page's first seq until no more; maxPages stops it", () =>
    Effect.gen(function*() {
      // a channel of seqs 1..7 served in pages of 3 from the newest
      const asked: Array<RequestWithoutId> = []
      const send = (frame: RequestWithoutId): Effect.Effect<Reply, ConnectionLost> => {
        asked.push(frame)
        if (frame.type !== "read_since" || frame.before_seq === null) return Effect.die("unexpected")
        const below = Math.min(frame.before_seq, 8)
        const seqs = [below - 3, below - 2, below - 1].filter((s) => s >= 1)
        return Effect.succeed({ type: "history", id: "1", channel: "c", messages: seqs.map(row), more: seqs[0]! > 1 })
      }
      const pages = yield* Stream.runCollect(History.pagesBefore(send, "c", History.NEWEST))
      assert.deepStrictEqual([...pages].map((p) => p.messages.map((m) => m.seq)), [[5, 6, 7], [2, 3, 4], [1]])
      assert.deepStrictEqual(
        asked.map((f) => f.type === "read_since" ? [f.since_seq, f.since_ms, f.before_seq] : []),
        [[null, null, History.NEWEST], [null, null, 5], [null, null, 2]]
      )
      const one = yield* Stream.runCollect(History.pagesBefore(send, "c", 5, { maxPages: 1 }))
      assert.deepStrictEqual([...one].map((p) => p.messages.map((m) => m.seq)), [[2, 3, 4]])
      const single = yield* History.pageBefore(send, "c", 3)
      assert.deepStrictEqual([single.messages.map((m) => m.seq), single.more], [[1, 2], false])
    }))

  it.effect("forward pages never carry before_seq", () =>
    Effect.gen(function*() {
      const s = server(undefined)
      yield* History.collect(s.send, "c", History.afterSeq(0))
      for (const frame of s.asked) assert.strictEqual(frame.type === "read_since" ? frame.before_seq : 0, null)
    }))
})
