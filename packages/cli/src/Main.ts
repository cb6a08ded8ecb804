/**
 * The single entry point: strip the global options from argv, install the stderr logger and the
 * colour-aware console, run the command tree under `NodeRuntime.runMain`, print failures as their
 * message chain on stderr and exit 1 (SPEC §6.1).
 *
 * @since 0.1.0
 */
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Cli from "./Cli.js"
import { chain, CliError } from "./CliError.js"
import * as GlobalOptions from "./GlobalOptions.js"
import * as Logging from "./Logging.js"
import * as Output from "./Output.js"

const writeErr = (text: string) => {
  try {
    process.stderr.write(text + "\n")
  } catch {
    // stderr is gone too
  }
}

/**
 * Render a failed run for stderr; `undefined` when nothing more should be printed (interruption,
 * or an @effect/cli validation error that it has already printed).
 *
 * @since 0.1.0
 * @category errors
 */
export const renderFailure = (cause: Cause.Cause<unknown>): string | undefined => {
  if (Cause.isInterruptedOnly(cause)) return undefined
  const failures = [...Cause.failures(cause)]
  if (failures.length > 0) {
    const shown = failures.filter((e) => !ValidationError.isValidationError(e))
    if (shown.length === 0) return undefined
    return shown.map((e) => chain(e)).join("\n")
  }
  const defects = [...Cause.defects(cause)]
  if (defects.length > 0) return defects.map((d) => chain(d)).join("\n")
  return Cause.pretty(cause)
}

/**
 * Run the CLI with this process's argv and environment.
 *
 * @since 0.1.0
 * @category running
 */
export const main = (): void => {
  const env = process.env
  // A closed stdout (e.g. `conclave completions bash | head`) ends the process quietly (S-177): the
  // program is interrupted, so its finalizers run, and the exit status is 0.
  let pipeClosed = false
  let onPipeClosed: (() => void) | undefined
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code !== "EPIPE" || pipeClosed) return
      pipeClosed = true
      onPipeClosed?.()
    })
  }
  const stdoutClosed = Effect.async<void>((resume) => {
    if (pipeClosed) return resume(Effect.void)
    onPipeClosed = () => resume(Effect.void)
    return Effect.sync(() => {
      onPipeClosed = undefined
    })
  })
  const extracted = GlobalOptions.extract(process.argv.slice(2))
  if (Either.isLeft(extracted)) {
    writeErr(`error: ${extracted.left}`)
    process.exitCode = 1
    return
  }
  const { options, rest, version } = extracted.right
  if (version) {
    // clap's shape (`conclave 0.1.0`), for the root and every subcommand (SPEC §6.1).
    process.stdout.write(`conclave ${Cli.VERSION}\n`)
    return
  }
  const settings = Logging.settings({ verbose: options.verbose, env, stderrIsTty: process.stderr.isTTY === true })
  const json = settings.format === "json"

  let failed = false
  const program = Effect.gen(function*() {
    if (Option.isSome(settings.invalidLevel)) {
      yield* Effect.logWarning("ignoring CONCLAVE_LOG_LEVEL: expected trace, debug, info, warn or error").pipe(
        Effect.annotateLogs({ value: settings.invalidLevel.value })
      )
    }
    // An unknown verb or flag: a did-you-mean scoped to the sub-verb (issue 23, item 6).
    const misspelt = Cli.suggest(rest)
    if (misspelt !== undefined) return yield* new CliError({ message: misspelt })
    const base = yield* Effect.console
    yield* Cli.run([process.argv[0] ?? "node", process.argv[1] ?? "conclave", ...rest]).pipe(
      Effect.withConsole(Output.plainConsole(base, env, json)),
      // `serve` and `bridge` keep their own error handling (SPEC §6.1): a closed pipe does not stop them.
      (run) => rest[0] === "serve" || rest[0] === "bridge" ? run : Effect.raceFirst(run, stdoutClosed)
    )
  }).pipe(
    Effect.catchAllCause((cause) => {
      if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
      failed = true
      const text = renderFailure(cause)
      if (text === undefined) return Effect.void
      return json ? Effect.logError(text) : Effect.sync(() => writeErr(`error: ${text}`))
    }),
    Effect.provide(
      Layer.mergeAll(
        NodeContext.layer,
        Output.layerProcess(env, json),
        Layer.succeed(GlobalOptions.GlobalOptions, options)
      )
    ),
    Effect.provide(Logging.layer(settings))
  )

  NodeRuntime.runMain(program, {
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, onExit) => {
      onExit(failed || (Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)) ? 1 : 0)
    }
  })
}
