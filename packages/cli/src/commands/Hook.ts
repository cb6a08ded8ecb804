/**
 * `conclave hook claude` (D-52): the Claude Code hook for `UserPromptSubmit` and `Stop`. `bin.ts`
 * runs the exact form `conclave hook claude` without loading this tree; this definition gives it
 * its help, completions and skill reference, and runs the same code for every other form.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { CliError } from "../CliError.js"
import { GlobalOptions } from "../GlobalOptions.js"
import { runClaudeHook } from "../Hook.js"

const claude = Command.make("claude", {}, () =>
  Effect.gen(function*() {
    const global = yield* GlobalOptions
    const problem = yield* Effect.promise(() => runClaudeHook({ configDir: Option.getOrUndefined(global.configDir) }))
    if (problem !== undefined) return yield* new CliError({ message: problem })
  })).pipe(
    Command.withDescription(
      "Claude Code hook (UserPromptSubmit and Stop): print this session's unsurfaced channel messages and whispers " +
        "as the hook's additionalContext, each once; print nothing when there is nothing new. " +
        "`conclave setup claude` installs it."
    )
  )

/** @since 0.1.0 @category commands */
export const hook = Command.make("hook").pipe(
  Command.withDescription("Hooks for agent harnesses that do not show channel notifications (see `hook claude`)."),
  Command.withSubcommands([claude])
)

/** The subcommands, for the command reference. @since 0.1.0 @category commands */
export const hookCommands = [claude] as const
