/**
 * Temporary directories for tests.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

/**
 * A fresh directory under the system temp dir, removed with everything in it when the scope closes.
 *
 * @since 0.1.0
 * @category resources
 */
export const tempDir = (prefix = "conclave-test-"): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), prefix))),
    (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
  )

/**
 * A fresh directory for the lifetime of a test file, for state set up outside any Effect (at module
 * level): removed when the process exits.
 *
 * @since 0.1.0
 * @category resources
 */
export const fileTempDir = (prefix = "conclave-test-"): string => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), prefix))
  process.on("exit", () => Fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}
