// Run the real command tree inside the test process (no spawn): what a verb prints on stdout and
// stderr, and its exit status, exactly as `Main.ts` would produce them.
import * as NodeContext from "@effect/platform-node/NodeContext"
import { type Console, Effect, Exit, Layer, Logger, LogLevel, Option } from "effect"
import * as Cli from "../../src/Cli.js"
import { GlobalOptions } from "../../src/GlobalOptions.js"
import { renderFailure } from "../../src/Main.js"
import * as Output from "../../src/Output.js"
import type { Result } from "./Harness.js"

const capturingConsole = (base: Console.Console, out: Array<string>, err: Array<string>): Console.Console => ({
  ...base,
  log: (...args) => Effect.sync(() => void out.push(args.map(String).join(" "))),
  info: (...args) => Effect.sync(() => void out.push(args.map(String).join(" "))),
  error: (...args) => Effect.sync(() => void err.push(args.map(String).join(" "))),
  warn: (...args) => Effect.sync(() => void err.push(args.map(String).join(" ")))
})

export const run = (args: ReadonlyArray<string>, options: { readonly configDir?: string } = {}) =>
  Effect.gen(function*() {
    const capture = Output.makeCapture()
    const consoleOut: Array<string> = []
    const consoleErr: Array<string> = []
    const base = yield* Effect.console
    const exit = yield* Cli.run(["node", "conclave", ...args]).pipe(
      Effect.withConsole(capturingConsole(base, consoleOut, consoleErr)),
      Effect.provide(
        Layer.mergeAll(
          NodeContext.layer,
          capture.layer,
          Layer.succeed(GlobalOptions, {
            configDir: Option.fromNullable(options.configDir),
            verbose: false
          })
        )
      ),
      Logger.withMinimumLogLevel(LogLevel.Warning),
      Effect.exit
    )
    const failure = Exit.isFailure(exit) ? renderFailure(exit.cause) : undefined
    const stderr = [...consoleErr, ...capture.stderr, ...(failure === undefined ? [] : [`error: ${failure}`])]
    const stdout = [...consoleOut, ...capture.stdout]
    const result: Result = {
      stdout: stdout.length === 0 ? "" : Output.stripAnsi(stdout.join("\n")) + "\n",
      stderr: stderr.length === 0 ? "" : Output.stripAnsi(stderr.join("\n")) + "\n",
      code: Exit.isSuccess(exit) ? 0 : 1
    }
    return result
  })

/** Run and require success. */
export const ok = (args: ReadonlyArray<string>, options: { readonly configDir?: string } = {}) =>
  run(args, options).pipe(
    Effect.flatMap((r) =>
      r.code === 0
        ? Effect.succeed(r)
        : Effect.dieMessage(`conclave ${args.join(" ")} failed\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
    )
  )

/** Run and require failure (exit 1). */
export const ko = (args: ReadonlyArray<string>, options: { readonly configDir?: string } = {}) =>
  run(args, options).pipe(
    Effect.flatMap((r) =>
      r.code === 1
        ? Effect.succeed(r)
        : Effect.dieMessage(
          `conclave ${args.join(" ")} unexpectedly succeeded\nstdout: ${r.stdout}\nstderr: ${r.stderr}`
        )
    )
  )
