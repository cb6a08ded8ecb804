import { Durations } from "@conclave/client"
import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"

describe("Durations.parseSeconds", () => {
  it("accepts integers with an optional s/m/h/d suffix, trimmed", () => {
    const ok: ReadonlyArray<readonly [string, number]> = [
      ["90", 90],
      ["0", 0],
      ["15s", 15],
      ["15m", 900],
      ["24h", 86400],
      ["7d", 604800],
      ["  5m\n", 300],
      ["007", 7]
    ]
    for (const [input, seconds] of ok) {
      assert.deepStrictEqual(Durations.parseSeconds(input), Either.right(seconds), input)
    }
  })

  it("rejects everything else with \"invalid duration `<value>`\"", () => {
    const bad = ["", "   ", "1.5", "1.5h", "-5", "+5", "5x", "5 m", "m", "5ms", "5H", "1e3", "0x10", "٣", "5mm", "h5"]
    for (const input of bad) {
      assert.deepStrictEqual(Durations.parseSeconds(input), Either.left(`invalid duration \`${input}\``), input)
    }
  })

  it("overflow is an error, never a crash", () => {
    for (const input of ["99999999999999999999d", "9".repeat(400), "1000000000000001", "11574074075d"]) {
      assert.isTrue(Either.isLeft(Durations.parseSeconds(input)), input)
    }
    assert.deepStrictEqual(Durations.parseSeconds("1000000000000000"), Either.right(1e15))
  })
})
