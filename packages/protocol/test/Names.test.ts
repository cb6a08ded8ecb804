import { Names } from "@conclave/protocol"
import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as fc from "effect/FastCheck"
import * as Schema from "effect/Schema"

describe("session paths (S-002)", () => {
  it("renders user/machine/session and parses it back", () => {
    const path = Names.makePath("aaron", "workstation", "razel")
    assert.deepStrictEqual(path, { user: "aaron", machine: "workstation", session: "razel" })
    assert.strictEqual(Names.renderPath(path), "aaron/workstation/razel")
    assert.deepStrictEqual(Names.parsePath("aaron/workstation/razel"), path)
  })

  it("rejects everything that is not exactly three non-empty components", () => {
    for (const bad of ["", "a", "a/b", "a/b/c/d", "a//c", "/b/c", "a/b/", "//", "///", "/", "a/b/c/"]) {
      assert.isUndefined(Names.parsePath(bad), JSON.stringify(bad))
    }
  })

  it("keeps any other character in a component (SPEC §1.1)", () => {
    assert.deepStrictEqual(Names.parsePath("a b/c.d/e_f-g"), { user: "a b", machine: "c.d", session: "e_f-g" })
    assert.deepStrictEqual(Names.parsePath("Zoë/日本/😀"), { user: "Zoë", machine: "日本", session: "😀" })
  })

  it("parse(render(p)) == p for any components without `/` (property)", () => {
    const component = fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !s.includes("/"))
    fc.assert(
      fc.property(component, component, component, (user, machine, session) => {
        const path = Names.makePath(user, machine, session)
        const parsed = Names.parsePath(Names.renderPath(path))
        assert.isDefined(parsed)
        assert.isTrue(Names.pathEquals(parsed!, path))
        assert.deepStrictEqual(parsed, path)
      }),
      { seed: 7, numRuns: 100 }
    )
  })

  it("pathEquals compares all three components", () => {
    const p = Names.makePath("a", "b", "c")
    assert.isTrue(Names.pathEquals(p, { user: "a", machine: "b", session: "c" }))
    assert.isFalse(Names.pathEquals(p, Names.makePath("x", "b", "c")))
    assert.isFalse(Names.pathEquals(p, Names.makePath("a", "x", "c")))
    assert.isFalse(Names.pathEquals(p, Names.makePath("a", "b", "x")))
  })

  it("the SessionPath schema wants all three string fields", () => {
    const decode = Schema.decodeUnknownEither(Names.SessionPath)
    assert.isTrue(Either.isRight(decode({ user: "a", machine: "b", session: "c" })))
    assert.isTrue(Either.isLeft(decode({ user: "a", machine: "b" })))
    assert.isTrue(Either.isLeft(decode({ user: "a", machine: "b", session: 1 })))
    assert.isTrue(Either.isLeft(decode("a/b/c")))
  })
})

describe("path components (S-003)", () => {
  it("accepts non-empty components without `/`", () => {
    for (const ok of ["aaron", "sno-box", "repo.name", "a_b", "a b", "😀"]) {
      assert.isTrue(Names.isPathComponent(ok), ok)
    }
  })
  it("rejects empty components and any `/`", () => {
    for (const bad of ["", "a/b", "/", "a/", "/b"]) {
      assert.isFalse(Names.isPathComponent(bad), bad)
    }
  })
})

describe("nameProblem (D-15)", () => {
  it("accepts valid names", () => {
    for (
      const ok of ["aaron", "sno-box", "repo.name", "a_b", "cli-812", "Zoë", "日本語", "x".repeat(64), "😀".repeat(64)]
    ) {
      assert.isUndefined(Names.nameProblem(ok), ok)
      assert.isTrue(Names.isValidName(ok))
    }
  })

  it("says why a name is refused", () => {
    const cases: ReadonlyArray<readonly [string, string]> = [
      ["", "must not be empty"],
      ["x".repeat(65), "must be at most 64 characters"],
      ["😀".repeat(65), "must be at most 64 characters"],
      ["a/b", "must not contain `/`"],
      ["/", "must not contain `/`"],
      ["a b", "must not contain whitespace or control characters"],
      ["a\tb", "must not contain whitespace or control characters"],
      ["a\nb", "must not contain whitespace or control characters"],
      ["a\u0000", "must not contain whitespace or control characters"],
      ["a\u007f", "must not contain whitespace or control characters"],
      ["a\u00a0b", "must not contain whitespace or control characters"],
      ["a\u200bb", "must not contain whitespace or control characters"],
      ["a\u200db", "must not contain whitespace or control characters"],
      ["\ufeffa", "must not contain whitespace or control characters"],
      ["a\u202eb", "must not contain whitespace or control characters"],
      ["a\u2028b", "must not contain whitespace or control characters"],
      ["a\ud800", "must not contain whitespace or control characters"]
    ]
    for (const [name, problem] of cases) {
      assert.strictEqual(Names.nameProblem(name), problem, JSON.stringify(name))
      assert.isFalse(Names.isValidName(name))
    }
  })

  it("refuses invisible characters and names not in NFC: nothing looks like `alice` but `alice` (hardening)", () => {
    for (const mark of ["\ufe0f", "\u034f", "\u3164", "\u115f", "\u2800", "\u17b4", "\ufe00"]) {
      assert.strictEqual(Names.nameProblem(`alice${mark}`), "must not contain invisible characters", mark)
      assert.strictEqual(Names.nameProblem(`${mark}ops`), "must not contain invisible characters", mark)
    }
    const nfd = "Zoe\u0308" // Zoë, decomposed
    assert.strictEqual(Names.nameProblem(nfd), "must be in Unicode normalization form C (NFC)")
    assert.isUndefined(Names.nameProblem(nfd.normalize("NFC")))
  })

  it("counts characters (code points), not UTF-16 units or bytes", () => {
    assert.isUndefined(Names.nameProblem("é".repeat(64)))
    assert.isUndefined(Names.nameProblem("𝔸".repeat(64)))
    assert.isDefined(Names.nameProblem("𝔸".repeat(65)))
  })

  it("the Name schema refuses what nameProblem refuses, with the reason", () => {
    const decode = Schema.decodeUnknownEither(Names.Name)
    assert.deepStrictEqual(decode("ops"), Either.right("ops"))
    const refused = decode("o ps")
    assert.isTrue(Either.isLeft(refused))
    if (Either.isLeft(refused)) assert.include(refused.left.message, "name must not contain whitespace")
    assert.isTrue(Either.isLeft(decode("")))
    assert.isTrue(Either.isLeft(decode(7)))
  })
})
