import { Base64Url } from "@conclave/protocol"
import { assert, describe, it } from "@effect/vitest"
import { Either } from "effect"
import * as Admins from "../src/Admins.js"

const key = Base64Url.encode(new Uint8Array(32).fill(7))

describe("Admins", () => {
  it("parses repeatable values and comma lists, splitting at the first `=`", () => {
    const parsed = Either.getOrThrow(Admins.parse([`root=${key}`, "alice, bob", " ", "alice"]))
    assert.deepStrictEqual(parsed, [{ user: "root", pin: key }, { user: "alice", pin: null }, {
      user: "bob",
      pin: null
    }])
    const list = Admins.allowlist(parsed)
    assert.isTrue(list.isAdmin("bob"))
    assert.isFalse(list.isAdmin("carol"))
    assert.strictEqual(list.pinOf("root"), key)
    assert.isUndefined(list.pinOf("alice"))
    // a look-alike of a pinned name is reserved with it (issue 22), but is not an admin
    for (const lookalike of ["Root", "ROOT", "r\u043eot", "\uff52oot"]) {
      assert.strictEqual(list.pinOf(lookalike), key, lookalike)
      assert.isFalse(list.isAdmin(lookalike), lookalike)
    }
  })

  it("rejects pins that are not 32-byte base64url keys and bad names (D-15, G-13)", () => {
    for (
      const bad of [
        "root=",
        "root=abc",
        `root=${Base64Url.encode(new Uint8Array(31))}`,
        `root=${key}=`,
        `root=${key.slice(0, -1)}+`,
        "=key",
        "a/b"
      ]
    ) {
      const result = Admins.parse([bad])
      assert.isTrue(Either.isLeft(result), bad)
      if (Either.isLeft(result)) assert.include(result.left.message, "invalid --admin")
    }
  })
})
