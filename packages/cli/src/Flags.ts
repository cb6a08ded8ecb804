/**
 * Options shared by many verbs, and the field rules the CLI shares with the bridge's tools: every
 * flag or argument that matches a tool field is validated against that field's schema in
 * `@conclave/client/ToolArgs` (`Options.withSchema` / `Args.withSchema`).
 *
 * @since 0.1.0
 */
import { ToolArgs } from "@conclave/client"
import * as Options from "@effect/cli/Options"

/** An integer flag under the rule of its tool field, e.g. `--reply-to` ↔ `reply_to`. @since 0.1.0 @category schemas */
export const integerText = (flag: string, rule: ToolArgs.IntegerRule) =>
  ToolArgs.refusing(
    ToolArgs.integerText(ToolArgs.integer(rule)),
    (value) => `invalid value for \`${flag}\`: \`${value}\` (expected an integer ${rule.min}–${rule.max})`
  )

/** `--reply-to` ↔ `reply_to`. @since 0.1.0 @category schemas */
export const ReplyToText = integerText("--reply-to", ToolArgs.Integers.reply_to)

/** `--uses` ↔ `uses`. @since 0.1.0 @category schemas */
export const UsesText = integerText("--uses", ToolArgs.Integers.uses)

/** `LEVEL`, `--perm` ↔ `level`, `perm`. @since 0.1.0 @category schemas */
export const LevelText = ToolArgs.refusing(ToolArgs.Level, ToolArgs.levelRefusal("level"))

/** `--visibility`, `VISIBILITY` ↔ `visibility`. @since 0.1.0 @category schemas */
export const VisibilityText = ToolArgs.refusing(
  ToolArgs.Visibility,
  (value) => `unknown visibility tier \`${value}\` (expected public, unlisted, or private)`
)

/** `--since`, `--expires-in` ↔ `since`. @since 0.1.0 @category schemas */
export const DurationText = ToolArgs.refusing(
  ToolArgs.Duration,
  (value) =>
    `invalid duration \`${value}\` (expected a whole number of seconds, or one with a unit: 90, 90s, 15m, 24h, 7d)`
)

/** `--channel` ↔ `channel`. @since 0.1.0 @category schemas */
export const ChannelText = ToolArgs.refusing(ToolArgs.Text, () => "`--channel` must not be empty")

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
  Options.map(ToolArgs.channelName),
  Options.withSchema(ChannelText),
  Options.withDescription("Channel name.")
)
