/**
 * The one error type of the CLI's own checks and of server refusals, and the rendering of any
 * failure as the message chain printed on stderr (SPEC §6.1).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/** A verb failed; `message` is what the user sees. @since 0.1.0 @category errors */
export class CliError extends Data.TaggedError("CliError")<{ readonly message: string; readonly cause?: unknown }> {}

/** @since 0.1.0 @category constructors */
export const fail = (message: string, cause?: unknown) =>
  cause === undefined ? new CliError({ message }) : new CliError({ message, cause })

const messageOf = (u: unknown): string | undefined => {
  if (typeof u === "string") return u
  if (typeof u === "object" && u !== null && "message" in u && typeof u.message === "string" && u.message !== "") {
    return u.message
  }
  return undefined
}

/**
 * `<message>: <cause message>: …`, skipping causes whose text the previous message already contains.
 *
 * @since 0.1.0
 * @category rendering
 */
export const chain = (error: unknown): string => {
  const parts: Array<string> = []
  let current: unknown = error
  for (let depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    const text = messageOf(current)
    if (text !== undefined && !parts.some((p) => p.includes(text))) parts.push(text)
    current = typeof current === "object" && "cause" in current ? current.cause : undefined
  }
  if (parts.length === 0) {
    const tag = typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : String(error)
    return tag
  }
  return parts.join(": ")
}
