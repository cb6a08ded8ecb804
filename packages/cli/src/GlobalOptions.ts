/**
 * Options that apply to every verb (SPEC §6.1): `--config-dir DIR` and `-v/--verbose`, accepted
 * before or after the subcommand. `bin.ts` extracts them from argv before @effect/cli parses the rest.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Option from "effect/Option"

/** @since 0.1.0 @category tags */
export class GlobalOptions extends Context.Tag("@conclave/cli/GlobalOptions")<GlobalOptions, {
  readonly configDir: Option.Option<string>
  readonly verbose: boolean
}>() {}

/** @since 0.1.0 @category constructors */
export const empty: GlobalOptions["Type"] = { configDir: Option.none(), verbose: false }
