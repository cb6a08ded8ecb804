import { LoopGuard } from "@conclave/bridge"
import { assert, describe, it } from "@effect/vitest"

describe("LoopGuard", () => {
  it("trips exactly at the limit and resets on a human message or explicitly", () => {
    const g = LoopGuard.make(3)
    const k = LoopGuard.channelKey("ws://s", "ops")
    assert.deepStrictEqual([g.agent(k), g.agent(k)], ["none", "none"])
    assert.isFalse(g.isTripped(k))
    assert.strictEqual(g.agent(k), "tripped")
    assert.isTrue(g.isTripped(k))
    assert.strictEqual(g.agent(k), "none", "trips once")
    assert.strictEqual(g.count(k), 4)
    assert.deepStrictEqual(g.tripped(), [k])
    assert.strictEqual(g.human(k), "reset")
    assert.isFalse(g.isTripped(k))
    assert.strictEqual(g.human(k), "none")
    g.agent(k)
    g.agent(k)
    g.agent(k)
    assert.strictEqual(g.reset(k), "reset")
  })

  it("scopes are independent; a rename moves the count; limit 0 is off", () => {
    const g = LoopGuard.make(2)
    const a = LoopGuard.channelKey("ws://s", "a")
    const b = LoopGuard.peerKey("ws://s", "u/m/s")
    g.agent(a)
    g.agent(b)
    assert.isFalse(g.isTripped(a))
    g.move(a, LoopGuard.channelKey("ws://s", "a2"))
    assert.strictEqual(g.agent(LoopGuard.channelKey("ws://s", "a2")), "tripped")
    assert.strictEqual(g.count(a), 0)
    const off = LoopGuard.make(0)
    for (let i = 0; i < 100; i++) assert.strictEqual(off.agent(a), "none")
    assert.isFalse(off.isTripped(a))
  })
})
