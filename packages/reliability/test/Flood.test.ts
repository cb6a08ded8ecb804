import { assert, describe, it } from "@effect/vitest"
import * as Flood from "../src/flood.js"

describe("flood driver options", () => {
  it("defaults, and every option fed wrong says what is wrong", () => {
    assert.deepStrictEqual(Flood.parseOptions(["--port", "4390"]), {
      port: 4390,
      seconds: 30,
      rate: 2000,
      holdMs: 100,
      maxInFlight: 4000
    })
    assert.strictEqual(Flood.parseOptions([]), "--port is required")
    assert.strictEqual(Flood.parseOptions(["--port", "4390", "--speed", "1"]), "unknown option --speed")
    assert.strictEqual(
      Flood.parseOptions(["--port", "70000"]),
      "--port must be an integer in 1..65535, got `70000`"
    )
    assert.strictEqual(
      Flood.parseOptions(["--port", "1", "--rate", "fast"]),
      "--rate must be an integer in 1..100000, got `fast`"
    )
    assert.strictEqual(
      Flood.parseOptions(["--port", "1", "--hold-ms", "-1"]),
      "--hold-ms must be an integer in 0..60000, got `-1`"
    )
    assert.strictEqual(
      Flood.parseOptions(["--port", "1", "--seconds", "0.5"]),
      "--seconds must be an integer in 1..3600, got `0.5`"
    )
  })
})
