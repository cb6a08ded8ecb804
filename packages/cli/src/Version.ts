/**
 * The CLI's version, read from this package's `package.json` (changesets bump it there), with no
 * other import: `conclave --version` loads only this module (issue 21).
 *
 * @since 0.1.0
 */
import { readFileSync } from "node:fs"

const read = (): string => {
  try {
    const pkg: unknown = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"))
    if (typeof pkg === "object" && pkg !== null && "version" in pkg && typeof pkg.version === "string") {
      return pkg.version
    }
  } catch {
    // fall through: a broken install still answers --version
  }
  return "0.0.0"
}

/** @since 0.1.0 @category constants */
export const VERSION: string = read()
