import { Permission } from "@conclave/client"
import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"

describe("Permission", () => {
  it("S-001 ordering, default, emit rule and parsing", () => {
    assert.deepStrictEqual(Permission.LEVELS, ["mute", "notify", "converse", "act"])
    assert.isBelow(Permission.compare("mute", "notify"), 0)
    assert.isBelow(Permission.compare("notify", "converse"), 0)
    assert.isBelow(Permission.compare("converse", "act"), 0)
    assert.isAbove(Permission.compare("act", "mute"), 0)
    assert.strictEqual(Permission.compare("notify", "notify"), 0)
    assert.strictEqual(Permission.DEFAULT_LEVEL, "notify")
    assert.deepStrictEqual(Permission.LEVELS.filter(Permission.mayEmit), ["converse", "act"])
    for (const level of Permission.LEVELS) assert.deepStrictEqual(Permission.parseLevel(level), Either.right(level))
    for (const bad of ["bogus", "", "Notify", " act"]) {
      assert.deepStrictEqual(
        Permission.parseLevel(bad),
        Either.left(`unknown permission level \`${bad}\` (expected mute, notify, converse, or act)`)
      )
    }
  })

  it("S-014 resolution precedence", () => {
    const config: Permission.Policy = {
      default_permission: "notify",
      overrides: [
        { server: "ws://s1", channel: "ops", level: "act" },
        { server: "ws://s1", channel: null, level: "converse" }
      ]
    }
    assert.strictEqual(Permission.resolve(config, "ws://s1", Permission.channel("ops")), "act")
    assert.strictEqual(Permission.resolve(config, "ws://s1", Permission.whisper), "converse")
    assert.strictEqual(Permission.resolve(config, "ws://s1", Permission.channel("other")), "notify")
    assert.strictEqual(Permission.resolve(config, "ws://s2", Permission.channel("ops")), "notify")
    assert.strictEqual(Permission.resolve(config, "ws://s2", Permission.whisper), "notify")
    // URLs compare normalized (D-28); channel names compare exactly.
    assert.strictEqual(Permission.resolve(config, "WS://S1/", Permission.channel("ops")), "act")
    assert.strictEqual(Permission.resolve(config, "ws://s1", Permission.channel("OPS")), "notify")
    assert.strictEqual(
      Permission.resolve({ ...config, default_permission: "mute" }, "ws://s2", Permission.whisper),
      "mute"
    )
  })
})
