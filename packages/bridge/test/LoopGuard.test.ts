import { LoopGuard } from "@conclave/bridge"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"

describe("LoopGuard", () => {
  it.effect("trips exactly at the limit and resets on a human message or explicitly", () =>
    Effect.gen(function*() {
      const g = yield* LoopGuard.make(3)
      const k = LoopGuard.channelKey("ws://s", "ops")
      assert.deepStrictEqual([yield* g.agent(k), yield* g.agent(k)], ["none", "none"])
      assert.isFalse(yield* g.isTripped(k))
      assert.strictEqual(yield* g.agent(k), "tripped")
      assert.isTrue(yield* g.isTripped(k))
      assert.strictEqual(yield* g.agent(k), "none", "trips once")
      assert.strictEqual(yield* g.count(k), 4)
      assert.deepStrictEqual(yield* g.tripped, [k])
      assert.strictEqual(yield* g.human(k), "reset")
      assert.isFalse(yield* g.isTripped(k))
      assert.strictEqual(yield* g.human(k), "none")
      yield* g.agent(k)
      yield* g.agent(k)
      assert.deepStrictEqual(yield* g.observe(k, "agent"), { transition: "tripped", tripped: true })
      assert.deepStrictEqual(yield* g.observe(k, "human"), { transition: "reset", tripped: false })
      yield* g.agent(k)
      yield* g.agent(k)
      yield* g.agent(k)
      assert.strictEqual(yield* g.reset(k), "reset")
    }))

  it.effect("scopes are independent; a rename moves the count; limit 0 is off", () =>
    Effect.gen(function*() {
      const g = yield* LoopGuard.make(2)
      const a = LoopGuard.channelKey("ws://s", "a")
      const b = LoopGuard.peerKey("ws://s", "u/m/s")
      yield* g.agent(a)
      yield* g.agent(b)
      assert.isFalse(yield* g.isTripped(a))
      yield* g.move(a, LoopGuard.channelKey("ws://s", "a2"))
      assert.strictEqual(yield* g.agent(LoopGuard.channelKey("ws://s", "a2")), "tripped")
      assert.strictEqual(yield* g.count(a), 0)
      const off = yield* LoopGuard.make(0)
      for (let i = 0; i < 100; i++) assert.strictEqual(yield* off.agent(a), "none")
      assert.isFalse(yield* off.isTripped(a))
    }))
})
