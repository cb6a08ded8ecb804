/**
 * Where the key and `config.toml` live (SPEC §5.1).
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { resolveSync } from "./ConfigDirDefault.js"

export { defaultFor, type Environment } from "./ConfigDirDefault.js"

/**
 * `--config-dir` wins; otherwise the OS default (see `defaultFor`). The directory is not created here.
 *
 * @since 0.1.0
 * @category resolution
 */
export const resolve = (override: Option.Option<string>): Effect.Effect<string> =>
  Option.match(override, {
    onSome: Effect.succeed,
    onNone: () => Effect.sync(() => resolveSync(undefined))
  })
