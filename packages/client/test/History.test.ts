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
})
