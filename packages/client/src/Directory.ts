/**
 * Creating a directory and its missing parents without Node's `mkdir(…, { recursive: true })`,
 * which loops forever (at full CPU, ignoring SIGTERM while it spins) on paths such as
 * `/proc/nope`, where `mkdir` says ENOENT under a parent that exists (issue 23, item 1).
 *
 * @since 0.1.0
 */
import * as Fs from "node:fs"
import * as Path from "node:path"

/**
 * Create `dir` and its missing parents, one `mkdir` per missing path component, each with `mode`;
 * throws the first error (ENOTDIR when a component is a file, ENOENT/EACCES/EPERM/EROFS as `mkdir`
 * says). Bounded by the number of components.
 *
 * @since 0.1.0
 * @category io
 */
export const makeSync = (dir: string, mode = 0o700): void => {
  const missing: Array<string> = []
  let current = Path.resolve(dir)
  for (;;) {
    const stat = Fs.statSync(current, { throwIfNoEntry: false })
    if (stat !== undefined) {
      if (!stat.isDirectory()) {
        throw Object.assign(new Error(`not a directory: ${current}`), { code: "ENOTDIR", path: current })
      }
      break
    }
    missing.push(current)
    const parent = Path.dirname(current)
    if (parent === current) break
    current = parent
  }
  for (const path of missing.reverse()) {
    try {
      Fs.mkdirSync(path, { mode })
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code !== "EEXIST" || Fs.statSync(path, { throwIfNoEntry: false })?.isDirectory() !== true) throw error
    }
  }
}
