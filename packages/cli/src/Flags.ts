/**
 * Options shared by many verbs.
 *
 * @since 0.1.0
 */
import * as Options from "@effect/cli/Options"

/** @since 0.1.0 @category options */
export const server = Options.text("server").pipe(
  Options.withPseudoName("URL"),
  Options.withDescription("Server URL (ws:// or wss://; normalized: lowercase host, no trailing /).")
)
/** @since 0.1.0 @category options */
export const json = Options.boolean("json").pipe(
  Options.withDescription("Print one JSON document instead of text.")
)
/** @since 0.1.0 @category options */
export const channel = Options.text("channel").pipe(
  Options.withPseudoName("CHANNEL"),
  Options.withDescription("Channel name.")
)
