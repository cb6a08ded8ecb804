import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Corking } from "../src/internal/corking.js"

const microtask = Effect.promise(() => Promise.resolve())
const nextTurn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

describe("write coalescing", () => {
  it.live("a corked socket is uncorked once, at the end of the turn", () =>
    Effect.gen(function*() {
      const corking = new Corking()
      const calls: Array<string> = []
      corking.uncorkLater(() => calls.push("a"))
      corking.uncorkLater(() => calls.push("b"))
      yield* microtask
      assert.deepStrictEqual(calls, [], "nothing is flushed before the turn ends")
      yield* nextTurn
      assert.deepStrictEqual(calls, ["a", "b"])
      yield* nextTurn
      assert.deepStrictEqual(calls, ["a", "b"], "each uncork runs once")
    }))

  it.live("flushSoon uncorks after the running code, without waiting for the turn's end", () =>
    Effect.gen(function*() {
      const corking = new Corking()
      const calls: Array<string> = []
      corking.uncorkLater(() => calls.push("a"))
      corking.flushSoon()
      corking.uncorkLater(() => calls.push("b"))
      corking.flushSoon()
      assert.deepStrictEqual(calls, [], "not while the current code still runs")
      yield* microtask
      assert.deepStrictEqual(calls, ["a", "b"], "both, in one flush")
      yield* nextTurn
      assert.deepStrictEqual(calls, ["a", "b"], "the turn's end finds nothing left")
    }))

  it.live("flushSoon with nothing corked does nothing", () =>
    Effect.gen(function*() {
      const corking = new Corking()
      corking.flushSoon()
      yield* microtask
      const calls: Array<string> = []
      corking.uncorkLater(() => calls.push("a"))
      yield* nextTurn
      assert.deepStrictEqual(calls, ["a"])
    }))

  it.live("two servers' corkings share nothing: one's flushSoon leaves the other's sockets corked", () =>
    Effect.gen(function*() {
      const one = new Corking()
      const two = new Corking()
      const calls: Array<string> = []
      one.uncorkLater(() => calls.push("one"))
      two.uncorkLater(() => calls.push("two"))
      one.flushSoon()
      yield* microtask
      assert.deepStrictEqual(calls, ["one"])
      yield* nextTurn
      assert.deepStrictEqual(calls, ["one", "two"])
    }))
})
