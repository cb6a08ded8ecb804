/**
 * A tool-level error: its text becomes the tool result with `isError: true`.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/** @since 0.1.0 @category errors */
export class ToolError extends Data.TaggedError("ToolError")<{ readonly text: string }> {
  override get message() {
    return this.text
  }
}
