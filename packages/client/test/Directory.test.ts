// Directory.makeSync (issue 23, item 1): missing parents made one at a time with the mode asked for;
// under /proc, where Node's recursive mkdir spins forever, it throws at once.
import * as Directory from "@conclave/client/Directory"
import { tempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"

const codeOf = (f: () => void): string | undefined => {
  try {
    f()
    return undefined
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? "no code"
  }
}

describe("Directory.makeSync", () => {
  it.scoped("makes the missing parents with mode 0700; an existing directory is fine", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const deep = Path.join(dir, "a", "b", "c")
      Directory.makeSync(deep)
      for (const d of [Path.join(dir, "a"), Path.join(dir, "a", "b"), deep]) {
        assert.isTrue(Fs.statSync(d).isDirectory(), d)
        assert.strictEqual(Fs.statSync(d).mode & 0o777, 0o700, d)
      }
      Directory.makeSync(deep)
    }))

  it.scoped("a file in the way is ENOTDIR", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      Fs.writeFileSync(Path.join(dir, "file"), "x")
      assert.strictEqual(codeOf(() => Directory.makeSync(Path.join(dir, "file", "sub"))), "ENOTDIR")
      assert.strictEqual(codeOf(() => Directory.makeSync(Path.join(dir, "file"))), "ENOTDIR")
    }))

  it.live.skipIf(!Fs.existsSync("/proc/self"))(
    "under /proc it throws (ENOENT) instead of spinning",
    () =>
      Effect.gen(function*() {
        const [took, code] = yield* Effect.timed(
          Effect.sync(() => codeOf(() => Directory.makeSync("/proc/nope/deeper")))
        )
        assert.strictEqual(code, "ENOENT")
        assert.isBelow(Duration.toMillis(took), 1_000)
      })
  )
})
