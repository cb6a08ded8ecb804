import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Corking from "../src/internal/corking.js"

const microtask = Effect.promise(() => Promise.resolve())
const nextTurn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

describe("write coalescing", () => {
  it.live("a corked socket is uncorked once, at the end of the turn", () =>
    Effect.gen(function*() {
      const calls: Array<string> = []
      Corking.uncorkLater(() => calls.push("a"))
      Corking.uncorkLater(() => calls.push("b"))
      yield* microtask
      assert.deepStrictEqual(calls, [], "nothing is flushed before the turn ends")
      yield* nextTurn
      assert.deepStrictEqual(calls, ["a", "b"])
      yield* nextTurn
      assert.deepStrictEqual(calls, ["a", "b"], "each uncork runs once")
    }))

  it.live("flushSoon uncorks after the running code, without waiting for the turn's end", () =>
    Effect.gen(function*() {
      const calls: Array<string> = []
      Corking.uncorkLater(() => calls.push("a"))
      Corking.flushSoon()
      Corking.uncorkLater(() => calls.push("b"))
      Corking.flushSoon()
      assert.deepStrictEqual(calls, [], "not while the current code still runs")
      yield* microtask
      assert.deepStrictEqual(calls, ["a", "b"], "both, in one flush")
      yield* nextTurn
      assert.deepStrictEqual(calls, ["a", "b"], "the turn's end finds nothing left")
    }))

  it.live("flushSoon with nothing corked does nothing", () =>
    Effect.gen(function*() {
      Corking.flushSoon()
      yield* microtask
      const calls: Array<string> = []
      Corking.uncorkLater(() => calls.push("a"))
      yield* nextTurn
      assert.deepStrictEqual(calls, ["a"])
    }))
})
