/**
 * Conformance of `Store.readBefore` (scroll-back, issue 18) for every implementation of the port:
 * `describeScrollBack(name, factory)` runs it against the stores `describeStore` runs against.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { channel, msg, NOW_MS, plain, type StoreFactory, texts } from "./StoreConformance.js"

export const describeScrollBack = (name: string, factory: StoreFactory) =>
  describe(`Store conformance: ${name}: readBefore (scroll-back)`, () => {
    const fresh = factory.fresh

    it.scoped("the newest page below a seq, oldest first, with more while older ones remain", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        yield* channel(store, "other")
        const seqs: Array<number> = []
        for (let i = 1; i <= 12; i++) {
          seqs.push(yield* store.appendMessage(msg("ops", 1_000 + i, `m${i}`)))
          if (i % 4 === 0) yield* store.appendMessage(msg("other", 1_000 + i, "elsewhere"))
        }
        const read = (beforeSeq: number, limit: number) =>
          store.readBefore({ channel: "ops", beforeSeq, cutoffMs: 0, limit })

        const newest = yield* read(Number.MAX_SAFE_INTEGER, 5)
        assert.deepStrictEqual(texts(newest.messages), ["m8", "m9", "m10", "m11", "m12"])
        assert.isTrue(newest.more)
        assert.deepStrictEqual(newest.messages[0], {
          seq: seqs[7]!,
          from: { user: "aaron", machine: "workstation", session: "razel" },
          ts_ms: 1_008,
          payload: plain("m8"),
          origin: "agent",
          reply_to: null
        })
        // exclusive: the page below m8 ends with m7
        const older = yield* read(newest.messages[0]!.seq, 5)
        assert.deepStrictEqual(texts(older.messages), ["m3", "m4", "m5", "m6", "m7"])
        assert.isTrue(older.more)
        // the last page holds exactly the rest: no more
        const oldest = yield* read(older.messages[0]!.seq, 2)
        assert.deepStrictEqual(texts(oldest.messages), ["m1", "m2"])
        assert.isFalse(oldest.more, "a page that holds exactly the rest has no more")
        // nothing below the first message
        const none = yield* read(seqs[0]!, 5)
        assert.deepStrictEqual([none.messages.length, none.more], [0, false])
        // the whole channel fits: no more
        const all = yield* read(Number.MAX_SAFE_INTEGER, 500)
        assert.deepStrictEqual(all.messages.map((m) => m.seq), seqs)
        assert.isFalse(all.more)
        // another channel's messages never show
        const other = yield* store.readBefore({
          channel: "other",
          beforeSeq: Number.MAX_SAFE_INTEGER,
          cutoffMs: 0,
          limit: 10
        })
        assert.deepStrictEqual(texts(other.messages), ["elsewhere", "elsewhere", "elsewhere"])
        const absent = yield* store.readBefore({ channel: "nope", beforeSeq: 10, cutoffMs: 0, limit: 10 })
        assert.deepStrictEqual([absent.messages.length, absent.more], [0, false])
      }))

    it.scoped("paging back from the newest page reads every message once, then stops", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        const written: Array<number> = []
        for (let i = 0; i < 230; i++) written.push(yield* store.appendMessage(msg("ops", 5_000, `m${i}`)))
        const seen: Array<number> = []
        let before = Number.MAX_SAFE_INTEGER
        let pages = 0
        while (true) {
          const page = yield* store.readBefore({ channel: "ops", beforeSeq: before, cutoffMs: 0, limit: 40 })
          pages++
          seen.unshift(...page.messages.map((m) => m.seq))
          if (!page.more) break
          before = page.messages[0]!.seq
          assert.isBelow(pages, 20, "paging terminates")
        }
        assert.deepStrictEqual(seen, written)
        assert.strictEqual(pages, 6)
      }))

    it.scoped("D-18 rows older than the cutoff are neither returned nor counted as more", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        yield* store.appendMessage(msg("ops", 100, "old"))
        yield* store.appendMessage(msg("ops", 200, "edge"))
        yield* store.appendMessage(msg("ops", 300, "new"))
        const page = yield* store.readBefore({
          channel: "ops",
          beforeSeq: Number.MAX_SAFE_INTEGER,
          cutoffMs: 200,
          limit: 2
        })
        assert.deepStrictEqual(texts(page.messages), ["edge", "new"])
        assert.isFalse(page.more, "only retained rows make a page more")
      }))

    it.scoped("undecodable rows are skipped without starving the page", () =>
      Effect.gen(function*() {
        const { insertRawMessage, store } = yield* fresh
        yield* channel(store, "ops")
        const bad = (payload: string) =>
          insertRawMessage({ channel: "ops", sender: "a/b/c", payload, ts_ms: 10, origin: "agent", reply_to: null })
        yield* store.appendMessage(msg("ops", 10, "good1"))
        yield* store.appendMessage(msg("ops", 10, "good2"))
        yield* bad("not json")
        yield* store.appendMessage(msg("ops", 10, "good3"))
        yield* bad(JSON.stringify({ kind: "telepathy" }))
        yield* bad("null")
        const page = yield* store.readBefore({
          channel: "ops",
          beforeSeq: Number.MAX_SAFE_INTEGER,
          cutoffMs: 0,
          limit: 2
        })
        assert.deepStrictEqual(texts(page.messages), ["good2", "good3"])
        assert.isTrue(page.more)
        const rest = yield* store.readBefore({
          channel: "ops",
          beforeSeq: page.messages[0]!.seq,
          cutoffMs: 0,
          limit: 2
        })
        assert.deepStrictEqual(texts(rest.messages), ["good1"])
        assert.isFalse(rest.more)
      }))

    it.scoped("with maxBytes it keeps the newest rows that fit, at least one (issue 22)", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "big", "aaron", "public")
        const seqs: Array<number> = []
        for (let i = 0; i < 4; i++) {
          seqs.push(yield* store.appendMessage(msg("big", NOW_MS + i, `${i}`.repeat(10_000))))
        }
        const read = (maxBytes: number | undefined, beforeSeq = Number.MAX_SAFE_INTEGER) =>
          store.readBefore({
            channel: "big",
            beforeSeq,
            cutoffMs: 0,
            limit: 500,
            ...(maxBytes === undefined ? {} : { maxBytes })
          })
        const one = yield* read(15_000)
        assert.deepStrictEqual([one.messages.map((m) => m.seq), one.more], [[seqs[3]!], true])
        const atLeastOne = yield* read(1)
        assert.deepStrictEqual([atLeastOne.messages.map((m) => m.seq), atLeastOne.more], [[seqs[3]!], true])
        const two = yield* read(25_000)
        assert.deepStrictEqual([two.messages.map((m) => m.seq), two.more], [[seqs[2]!, seqs[3]!], true])
        const all = yield* read(1_000_000)
        assert.deepStrictEqual([all.messages.length, all.more], [4, false])
        const unbounded = yield* read(undefined)
        assert.deepStrictEqual([unbounded.messages.length, unbounded.more], [4, false])
        // the next page goes on below the cut, without a gap
        const next = yield* read(15_000, two.messages[0]!.seq)
        assert.deepStrictEqual(next.messages.map((m) => m.seq), [seqs[1]!])
        assert.isTrue(next.more)
      }))
  })
