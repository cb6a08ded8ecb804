import { Base64Url } from "@conclave/protocol"
import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as fc from "effect/FastCheck"
import * as Schema from "effect/Schema"

const text = (s: string) => new Uint8Array(Buffer.from(s, "latin1"))

describe("Base64Url", () => {
  it("RFC 4648 test vectors, without padding", () => {
    const vectors: ReadonlyArray<readonly [string, string]> = [
      ["", ""],
      ["f", "Zg"],
      ["fo", "Zm8"],
      ["foo", "Zm9v"],
      ["foob", "Zm9vYg"],
      ["fooba", "Zm9vYmE"],
      ["foobar", "Zm9vYmFy"]
    ]
    for (const [plain, encoded] of vectors) {
      assert.strictEqual(Base64Url.encode(text(plain)), encoded)
      assert.deepStrictEqual(Base64Url.decode(encoded), text(plain))
    }
  })

  it("uses the URL-safe alphabet (- and _)", () => {
    assert.strictEqual(Base64Url.encode(new Uint8Array([0xfb, 0xff, 0xbf])), "-_-_")
    assert.deepStrictEqual(Base64Url.decode("-_-_"), new Uint8Array([0xfb, 0xff, 0xbf]))
  })

  it("a 32-byte key is 43 characters, a 64-byte signature 86", () => {
    assert.strictEqual(Base64Url.encode(new Uint8Array(32)).length, 43)
    assert.strictEqual(Base64Url.encode(new Uint8Array(64)).length, 86)
  })

  it("encodes exactly the bytes of a view, not its whole buffer", () => {
    const backing = new Uint8Array([1, 2, 3, 4, 5, 6])
    assert.strictEqual(Base64Url.encode(backing.subarray(2, 4)), Base64Url.encode(new Uint8Array([3, 4])))
  })

  it("round-trips any bytes (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.nat(8), (bytes, offset) => {
        const view = bytes.subarray(Math.min(offset, bytes.length))
        const encoded = Base64Url.encode(view)
        assert.isTrue(Base64Url.isBase64Url(encoded))
        assert.match(encoded, /^[A-Za-z0-9_-]*$/)
        assert.deepStrictEqual(Base64Url.decode(encoded), new Uint8Array(view))
      }),
      { seed: 11, numRuns: 200 }
    )
  })

  it("refuses padding, the standard alphabet, whitespace and impossible lengths", () => {
    for (const bad of ["Zg==", "Zm8=", "+/+/", "ab+c", "ab/c", "Zm9v Yg", " Zg", "Zg\n", "A", "AAAAA", "Zm9v.", "é"]) {
      assert.isFalse(Base64Url.isBase64Url(bad) && Base64Url.decode(bad) !== undefined, bad)
      assert.isUndefined(Base64Url.decode(bad), bad)
    }
  })

  it("refuses non-canonical text (trailing bits set), so one byte string has one text form", () => {
    // "Zh" would decode to "f" like "Zg", but its unused low bits are not zero.
    assert.isTrue(Base64Url.isBase64Url("Zh"))
    assert.isUndefined(Base64Url.decode("Zh"))
    assert.isUndefined(Base64Url.decode("Zm9"))
    assert.deepStrictEqual(Base64Url.decode("Zm8"), text("fo"))
  })

  it("the Base64UrlString schema checks the alphabet and length", () => {
    const decode = Schema.decodeUnknownEither(Base64Url.Base64UrlString)
    assert.deepStrictEqual(decode("Zm9v"), Either.right("Zm9v"))
    assert.deepStrictEqual(decode(""), Either.right(""))
    for (const bad of ["Zg==", "a+b", "A", 42, null]) {
      assert.isTrue(Either.isLeft(decode(bad)), String(bad))
    }
  })
})
