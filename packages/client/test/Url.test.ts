import { Url } from "@conclave/client"
import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"

describe("Url.normalize (D-28)", () => {
  it("lowercases scheme and host, drops default ports and trailing slashes", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["ws://H", "ws://h"],
      ["ws://h/", "ws://h"],
      ["WSS://Conclave.Example.COM/", "wss://conclave.example.com"],
      ["ws://h:80/", "ws://h"],
      ["wss://h:443", "wss://h"],
      ["ws://h:443", "ws://h:443"],
      ["wss://h:80", "wss://h:80"],
      ["ws://127.0.0.1:4390/", "ws://127.0.0.1:4390"],
      ["ws://[::1]:4390", "ws://[::1]:4390"],
      ["ws://h/?via=alias", "ws://h?via=alias"],
      ["ws://h/Path/", "ws://h/Path"],
      ["  ws://h  ", "ws://h"],
      ["http://h:80/", "ws://h"],
      ["https://h", "wss://h"]
    ]
    for (const [input, expected] of cases) assert.deepStrictEqual(Url.normalize(input), Either.right(expected), input)
  })

  it("is idempotent", () => {
    for (const input of ["WS://H:80/x/?q=1", "wss://a.b:8443/", "https://X"]) {
      const once = Either.getOrThrow(Url.normalize(input))
      assert.deepStrictEqual(Url.normalize(once), Either.right(once))
    }
  })

  it("keeps ws://h and ws://h/?via=alias distinct", () => {
    assert.notDeepEqual(Url.normalize("ws://h/"), Url.normalize("ws://h/?via=alias"))
  })

  it("rejects other schemes, garbage and fragments with a message naming the input", () => {
    for (const input of ["", "h:4390", "ftp://h", "not a url", "file:///etc/passwd", "ws://h/#frag", "mailto:a@b"]) {
      const result = Url.normalize(input)
      assert.isTrue(Either.isLeft(result), input)
      if (Either.isLeft(result)) assert.include(result.left, `\`${input}\``)
    }
  })

  it("normalizeOrSelf keeps unparsable text", () => {
    assert.strictEqual(Url.normalizeOrSelf("WS://H/"), "ws://h")
    assert.strictEqual(Url.normalizeOrSelf("garbage"), "garbage")
  })
})
