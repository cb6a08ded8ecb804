/**
 * Strict readers for MCP tool arguments: a wrong type or value is a tool error, never a silent
 * default (G-2, G-3).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"

/** A tool-level error: the text becomes the tool result with `isError: true`. @since 0.1.0 @category errors */
export class ToolError extends Data.TaggedError("ToolError")<{ readonly text: string }> {
  override get message() {
    return this.text
  }
}

/** @since 0.1.0 @category models */
export type Args = Readonly<Record<string, unknown>>

/** `arguments` must be an object (absent or null reads as `{}`). @since 0.1.0 @category parsing */
export const fromUnknown = (u: unknown): Effect.Effect<Args, ToolError> => {
  if (u === undefined || u === null) return Effect.succeed({})
  if (typeof u === "object" && !Array.isArray(u)) return Effect.succeed(u as Args)
  return Effect.fail(new ToolError({ text: "tool arguments must be a JSON object" }))
}

const present = (v: unknown) => v !== undefined && v !== null

/** An optional string: absent/null → undefined; another type is an error. @since 0.1.0 @category parsing */
export const optString = (args: Args, key: string): Effect.Effect<string | undefined, ToolError> => {
  const v = args[key]
  if (!present(v)) return Effect.succeed(undefined)
  if (typeof v === "string") return Effect.succeed(v)
  return Effect.fail(new ToolError({ text: `\`${key}\` must be a string` }))
}

/** An optional boolean. @since 0.1.0 @category parsing */
export const optBoolean = (args: Args, key: string): Effect.Effect<boolean | undefined, ToolError> => {
  const v = args[key]
  if (!present(v)) return Effect.succeed(undefined)
  if (typeof v === "boolean") return Effect.succeed(v)
  return Effect.fail(new ToolError({ text: `\`${key}\` must be a boolean` }))
}

/** An optional integer in `[min, max]`; `problem` is the error text. @since 0.1.0 @category parsing */
export const optInteger = (
  args: Args,
  key: string,
  min: number,
  max: number,
  problem: string
): Effect.Effect<number | undefined, ToolError> => {
  const v = args[key]
  if (!present(v)) return Effect.succeed(undefined)
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= min && v <= max) return Effect.succeed(v)
  return Effect.fail(new ToolError({ text: problem }))
}

/** "`a` is required" / "`a` and `b` are required" (SPEC §4.7). @since 0.1.0 @category rendering */
export const requiredText = (keys: ReadonlyArray<string>): string => {
  const quoted = keys.map((k) => `\`${k}\``)
  if (quoted.length === 1) return `${quoted[0]} is required`
  return `${quoted.slice(0, -1).join(", ")} and ${quoted[quoted.length - 1]} are required`
}

/**
 * Required non-empty strings, all or nothing: any missing, empty or non-string one fails with the
 * message naming all of them (or `message` when given), in the "`a` and `b` are required" form of
 * SPEC §4.7.
 *
 * @since 0.1.0
 * @category parsing
 */
export const required = <const K extends string>(
  args: Args,
  keys: ReadonlyArray<K>,
  message?: string
): Effect.Effect<Record<K, string>, ToolError> =>
  Effect.suspend(() => {
    const out = {} as Record<K, string>
    let missing = false
    for (const key of keys) {
      const v = args[key]
      if (typeof v === "string" && v.length > 0) out[key] = v
      else missing = true
    }
    return missing ? Effect.fail(new ToolError({ text: message ?? requiredText(keys) })) : Effect.succeed(out)
  })
