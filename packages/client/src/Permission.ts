/**
 * Local autonomy levels and their resolution (SPEC §1.5, §4.6). Levels never reach the server.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Url from "./Url.js"

/** @since 0.1.0 @category models */
export type Level = "mute" | "notify" | "converse" | "act"

/** Ascending order. @since 0.1.0 @category constants */
export const LEVELS: ReadonlyArray<Level> = ["mute", "notify", "converse", "act"]

/** @since 0.1.0 @category constants */
export const DEFAULT_LEVEL: Level = "notify"

/** @since 0.1.0 @category guards */
export const isLevel = (s: unknown): s is Level =>
  typeof s === "string" && (LEVELS as ReadonlyArray<string>).includes(s)

/**
 * Parse a level token (exact, lowercase).
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseLevel = (s: string): Either.Either<Level, string> =>
  isLevel(s)
    ? Either.right(s)
    : Either.left(`unknown permission level \`${s}\` (expected mute, notify, converse, or act)`)

/** Only `converse` and `act` may send. @since 0.1.0 @category predicates */
export const mayEmit = (l: Level): boolean => l === "converse" || l === "act"

/** Negative when `a` is below `b`. @since 0.1.0 @category ordering */
export const compare = (a: Level, b: Level): number => LEVELS.indexOf(a) - LEVELS.indexOf(b)

/** A permission scope on one server. @since 0.1.0 @category models */
export type Scope = { readonly _tag: "Channel"; readonly channel: string } | { readonly _tag: "Whisper" }

/** @since 0.1.0 @category constructors */
export const channel = (name: string): Scope => ({ _tag: "Channel", channel: name })
/** @since 0.1.0 @category constructors */
export const whisper: Scope = { _tag: "Whisper" }

/** The part of the local config that resolution reads. @since 0.1.0 @category models */
export interface Policy {
  readonly default_permission: Level
  readonly overrides: ReadonlyArray<
    { readonly server: string; readonly channel: string | null; readonly level: Level }
  >
}

/**
 * The level for `(server, scope)`: the override whose server URL (normalized, D-28) and channel
 * name match exactly (channel `null` = the whisper scope), else the machine-wide default.
 *
 * @since 0.1.0
 * @category resolution
 */
export const resolve = (config: Policy, server: string, scope: Scope): Level => {
  const url = Url.normalizeOrSelf(server)
  const wanted = scope._tag === "Channel" ? scope.channel : null
  const hit = config.overrides.find((o) => Url.normalizeOrSelf(o.server) === url && o.channel === wanted)
  return hit === undefined ? config.default_permission : hit.level
}
