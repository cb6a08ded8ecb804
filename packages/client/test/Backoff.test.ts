import { Backoff } from "@conclave/client"
import { assert, describe, it } from "@effect/vitest"

describe("Backoff", () => {
  it("bridge: 200 ms doubling", () => {
    assert.deepStrictEqual([0, 1, 2, 3].map((n) => Backoff.delay(Backoff.bridge, n)), [200, 400, 800, 1600])
  })

  it("S-151 saturates at 30 s after 20 increments", () => {
    assert.strictEqual(Backoff.delay(Backoff.bridge, 20), 30_000)
    assert.strictEqual(Backoff.delay(Backoff.bridge, 7), 25_600)
    assert.strictEqual(Backoff.delay(Backoff.bridge, 8), 30_000)
    assert.strictEqual(Backoff.delay(Backoff.bridge, 5000), 30_000)
    assert.strictEqual(Backoff.delay(Backoff.bridge, Infinity), 30_000)
  })

  it("tail: 1 s doubling, capped at 30 s", () => {
    assert.deepStrictEqual([0, 1, 4, 5, 40].map((n) => Backoff.delay(Backoff.tail, n)), [
      1000,
      2000,
      16000,
      30000,
      30000
    ])
  })

  it("negative or fractional attempts are clamped", () => {
    assert.strictEqual(Backoff.delay(Backoff.bridge, -3), 200)
    assert.strictEqual(Backoff.delay(Backoff.bridge, 1.7), 400)
    assert.strictEqual(Backoff.delay(Backoff.bridge, NaN), 200)
  })
})
