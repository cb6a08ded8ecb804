import type { Frames } from "@conclave/protocol"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
import { HISTORY_READS_IN_FLIGHT, makeHistoryGate, makeSharedReads } from "../src/internal/historyPages.js"
import type { HistoryPage } from "../src/Store.js"

/** A counter of event-loop turns: bumped by a chain of setImmediate callbacks until stopped. */
const turnCounter = () => {
  const state = { turn: 0, stopped: false }
  const tick = () => {
    if (state.stopped) return
    state.turn++
    setImmediate(tick)
  }
  setImmediate(tick)
  return state
}

const waitUntil = (what: string, cond: () => boolean) =>
  Effect.promise(() =>
    new Promise<void>((resolve, reject) => {
      const deadline = performance.now() + 5000
      const poll = () => {
        if (cond()) resolve()
        else if (performance.now() > deadline) reject(new Error(`timed out waiting for ${what}`))
        else setImmediate(poll)
      }
      poll()
    })
  )

describe("history gate", () => {
  it.live("synchronous reads (SQLite): each runs in a turn of its own, however many come at once", () =>
    Effect.gen(function*() {
      const gate = yield* makeHistoryGate(4)
      const turns = turnCounter()
      const ranIn: Array<number> = []
      const read = Effect.sync(() => ranIn.push(turns.turn))
      yield* Effect.forEach(Array.from({ length: 12 }), () => gate(read), { concurrency: "unbounded" })
      turns.stopped = true
      assert.strictEqual(ranIn.length, 12)
      assert.strictEqual(new Set(ranIn).size, 12, `two page reads shared a turn: ${ranIn.join(",")}`)
    }))

  it.live("asynchronous reads (PostgreSQL) overlap, up to the bound", () =>
    Effect.gen(function*() {
      const bound = 3
      const gate = yield* makeHistoryGate(bound)
      const release = yield* Deferred.make<void>()
      let underWay = 0
      let most = 0
      let done = 0
      const read = Effect.gen(function*() {
        underWay++
        most = Math.max(most, underWay)
        yield* Deferred.await(release)
        underWay--
        done++
      })
      const all = yield* Effect.forEach(Array.from({ length: 7 }), () => gate(read), {
        concurrency: "unbounded",
        discard: true
      }).pipe(Effect.fork)
      // the bound is reached while none has finished: the reads wait on one another's I/O no longer
      yield* waitUntil(`${bound} reads under way at once`, () => underWay === bound)
      // and stays the bound: a few more turns let no fourth one in
      for (let i = 0; i < 5; i++) yield* Effect.promise(() => new Promise<void>((r) => setImmediate(r)))
      assert.strictEqual(underWay, bound, "no more than the bound under way")
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(all)
      assert.strictEqual(done, 7)
      assert.strictEqual(most, bound)
    }))

  it.live("a failed read frees its place", () =>
    Effect.gen(function*() {
      const gate = yield* makeHistoryGate(1)
      const failed = yield* Effect.flip(gate(Effect.fail("store down")))
      assert.strictEqual(failed, "store down")
      assert.strictEqual(yield* gate(Effect.succeed("page")).pipe(Effect.timeout("5 seconds")), "page")
    }))

  it("the default bound admits more than one read", () => {
    assert.isAbove(HISTORY_READS_IN_FLIGHT, 1)
  })
})

/** A channel's rows 1..n, read `cap` at a time after a seq; every read is recorded. */
const channelOf = (n: number, cap: number) => {
  const rows: Array<Frames.HistoryMessage> = Array.from({ length: n }, (_, i) => ({
    seq: i + 1,
    from: { user: "u", machine: "m", session: "s" },
    ts_ms: 1_000 + i,
    payload: { kind: "plain", text: `m${i + 1}` },
    origin: "agent",
    reply_to: null
  }))
  const reads: Array<{ readonly channel: string; readonly after: number }> = []
  const page = (after: number): HistoryPage => {
    const rest = rows.filter((m) => m.seq > after)
    return { messages: rest.slice(0, cap), more: rest.length > cap }
  }
  return { rows, reads, page }
}

const seqs = (page: HistoryPage) => page.messages.map((m) => m.seq)
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

describe("shared history reads", () => {
  it.live("requests for a channel that come while a read is under way share the next read", () =>
    Effect.scoped(Effect.gen(function*() {
      const ch = channelOf(40, 500)
      const hold = yield* Deferred.make<void>()
      const read = (channel: string, after: number) =>
        Effect.zipRight(
          Effect.sync(() => ch.reads.push({ channel, after })),
          Effect.as(Deferred.await(hold), ch.page(after))
        )
      const shared = yield* makeSharedReads(read)
      const first = yield* Effect.fork(shared.read("ops", 30))
      yield* waitUntil("the first read", () => ch.reads.length === 1)
      const rest = yield* Effect.fork(
        Effect.all([5, 12, 20, 38, 40].map((after) => shared.read("ops", after)), { concurrency: "unbounded" })
      )
      yield* waitUntil("five requests waiting", () => shared.waiting("ops") === 5)
      yield* Deferred.succeed(hold, undefined)
      const page1 = yield* Fiber.join(first)
      const pages = yield* Fiber.join(rest)
      assert.deepStrictEqual(seqs(page1), range(31, 40))
      assert.deepStrictEqual(pages.map(seqs), [range(6, 40), range(13, 40), range(21, 40), [39, 40], []])
      assert.isTrue([page1, ...pages].every((p) => !p.more))
      // one read for the first request, one shared by the five that came meanwhile (from the lowest seq)
      assert.deepStrictEqual(ch.reads, [{ channel: "ops", after: 30 }, { channel: "ops", after: 5 }])
    })))

  it.live("a page the cap cut: each gets its part, marked more; one at or past its end is read again", () =>
    Effect.scoped(Effect.gen(function*() {
      const ch = channelOf(40, 10)
      const hold = yield* Deferred.make<void>()
      const read = (channel: string, after: number) =>
        Effect.zipRight(
          Effect.sync(() => ch.reads.push({ channel, after })),
          Effect.as(Deferred.await(hold), ch.page(after))
        )
      const shared = yield* makeSharedReads(read)
      const first = yield* Effect.fork(shared.read("ops", 0))
      yield* waitUntil("the first read", () => ch.reads.length === 1)
      const rest = yield* Effect.fork(
        Effect.all([2, 8, 12, 25].map((after) => shared.read("ops", after)), { concurrency: "unbounded" })
      )
      yield* waitUntil("four requests waiting", () => shared.waiting("ops") === 4)
      yield* Deferred.succeed(hold, undefined)
      assert.deepStrictEqual(seqs(yield* Fiber.join(first)), range(1, 10))
      const pages = yield* Fiber.join(rest)
      // the shared read (after 2) holds 3..12: 8 gets 9..12 and more; 12 and 25 are past it
      assert.deepStrictEqual(pages.map(seqs), [range(3, 12), range(9, 12), range(13, 22), range(26, 35)])
      assert.deepStrictEqual(pages.map((p) => p.more), [true, true, true, true])
      assert.deepStrictEqual(ch.reads.map((r) => r.after), [0, 2, 12, 25])
    })))

  it.live("a failed read fails every request that shared it, and the next read goes on", () =>
    Effect.scoped(Effect.gen(function*() {
      const ch = channelOf(5, 500)
      const hold = yield* Deferred.make<void>()
      let failing = true
      const read = (channel: string, after: number) =>
        Effect.zipRight(
          Effect.sync(() => ch.reads.push({ channel, after })),
          Effect.flatMap(
            Deferred.await(hold),
            () => failing ? Effect.fail("store down") : Effect.succeed(ch.page(after))
          )
        )
      const shared = yield* makeSharedReads(read)
      const first = yield* Effect.fork(Effect.either(shared.read("ops", 0)))
      yield* waitUntil("the first read", () => ch.reads.length === 1)
      const rest = yield* Effect.fork(
        Effect.all([1, 2].map((after) => Effect.either(shared.read("ops", after))), { concurrency: "unbounded" })
      )
      yield* waitUntil("two requests waiting", () => shared.waiting("ops") === 2)
      yield* Deferred.succeed(hold, undefined)
      const outcomes = [yield* Fiber.join(first), ...(yield* Fiber.join(rest))]
      assert.deepStrictEqual(outcomes.map((o) => o._tag === "Left" ? o.left : "page"), [
        "store down",
        "store down",
        "store down"
      ])
      failing = false
      assert.deepStrictEqual(seqs(yield* shared.read("ops", 3)), [4, 5])
    })))

  it.live("channels do not wait for one another", () =>
    Effect.scoped(Effect.gen(function*() {
      const ch = channelOf(5, 500)
      const hold = yield* Deferred.make<void>()
      const read = (channel: string, after: number) =>
        channel === "slow" ? Effect.as(Deferred.await(hold), ch.page(after)) : Effect.succeed(ch.page(after))
      const shared = yield* makeSharedReads(read)
      const slow = yield* Effect.fork(shared.read("slow", 0))
      assert.deepStrictEqual(seqs(yield* shared.read("fast", 2).pipe(Effect.timeout("5 seconds"))), [3, 4, 5])
      yield* Deferred.succeed(hold, undefined)
      assert.deepStrictEqual(seqs(yield* Fiber.join(slow)), [1, 2, 3, 4, 5])
    })))

  it.live("closing the scope answers the waiting requests (interrupted) instead of leaving them hanging", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const read = (_channel: string, _after: number) => Effect.never
      const shared = yield* makeSharedReads(read).pipe(Scope.extend(scope))
      const a = yield* Effect.fork(shared.read("ops", 0))
      const b = yield* Effect.fork(shared.read("ops", 1))
      yield* waitUntil("one request under way, one waiting", () => shared.waiting("ops") === 1)
      yield* Scope.close(scope, Exit.void)
      const [ea, eb] = [yield* Fiber.await(a), yield* Fiber.await(b)]
      assert.isTrue(Exit.isInterrupted(ea), String(ea))
      assert.isTrue(Exit.isInterrupted(eb), String(eb))
    }).pipe(Effect.timeout("10 seconds")))
})
