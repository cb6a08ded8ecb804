/**
 * Options that apply to every verb (SPEC §6.1): `--config-dir DIR` and `-v/--verbose`, accepted
 * before or after the subcommand. `bin.ts` extracts them from argv before @effect/cli parses the rest.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Either from "effect/Either"
import * as Option from "effect/Option"

/** @since 0.1.0 @category tags */
export class GlobalOptions extends Context.Tag("@conclave/cli/GlobalOptions")<GlobalOptions, {
  readonly configDir: Option.Option<string>
  readonly verbose: boolean
}>() {}

/** @since 0.1.0 @category constructors */
export const empty: GlobalOptions["Type"] = { configDir: Option.none(), verbose: false }

/** @since 0.1.0 @category models */
export interface Extracted {
  readonly options: GlobalOptions["Type"]
  /** The arguments left for @effect/cli (without the global options). */
  readonly rest: ReadonlyArray<string>
  /** `-V` or `--version` appeared (before any `--`): print the version and exit. */
  readonly version: boolean
}

/**
 * Pull the global options out of the user's arguments (everything after `node script`), wherever
 * they appear before a `--` terminator. `-V` / `--version` (on the root or any subcommand) set
 * `version`. Fails with a message when `--config-dir` has no value.
 *
 * @since 0.1.0
 * @category parsing
 */
export const extract = (args: ReadonlyArray<string>): Either.Either<Extracted, string> => {
  const rest: Array<string> = []
  let configDir: Option.Option<string> = Option.none()
  let verbose = false
  let version = false
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (arg === "--") {
      rest.push(...args.slice(i))
      break
    }
    if (arg === "-v" || arg === "--verbose") {
      verbose = true
    } else if (arg === "--config-dir") {
      const value = args[i + 1]
      if (value === undefined || value === "") return Either.left("`--config-dir` needs a directory")
      configDir = Option.some(value)
      i++
    } else if (arg.startsWith("--config-dir=")) {
      const value = arg.slice("--config-dir=".length)
      if (value === "") return Either.left("`--config-dir` needs a directory")
      configDir = Option.some(value)
    } else if (arg === "-V" || arg === "--version") {
      version = true
    } else {
      rest.push(arg)
    }
  }
  return Either.right({ options: { configDir, verbose }, rest, version })
}
