import { assert, describe, it } from "@effect/vitest"
import { confusable, skeleton } from "../src/Skeleton.js"

describe("Skeleton (issue 22, UTS #39)", () => {
  it("names that look alike share a skeleton", () => {
    const alice = [
      "alice",
      "Alice",
      "ALICE",
      "аlice", // Cyrillic а
      "alicе", // Cyrillic е
      "ａｌｉｃｅ", // fullwidth
      "𝐚𝐥𝐢𝐜𝐞", // mathematical bold
      "a1ice",
      "αlice" // Greek alpha
    ]
    for (const name of alice) assert.strictEqual(skeleton(name), skeleton("alice"), name)
    for (const name of ["оps", "OPS", "0ps", "ορs", "ｏｐｓ"]) assert.isTrue(confusable(name, "ops"), name)
    assert.isTrue(confusable("modern", "modem"))
    assert.isTrue(confusable("straße", "STRASSE"))
    // one spelling of a mark, composed or not
    assert.isTrue(confusable("caf\u00e9", "cafe\u0301"))
    assert.isTrue(confusable("ёж", "ëж"))
  })

  it("names that do not look alike keep distinct skeletons", () => {
    const distinct = ["alice", "alicia", "bob", "ops", "opps", "café", "cafe", "ж", "日本", "日木", "a-b", "a_b"]
    const skeletons = new Set(distinct.map(skeleton))
    assert.strictEqual(skeletons.size, distinct.length)
  })
})
