/**
 * Where verbs print: results on stdout, notes on stderr (SPEC §6.1). A service so that tests can
 * capture what a verb prints without spawning a process.
 *
 * @since 0.1.0
 */
import type * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** @since 0.1.0 @category tags */
export class Output extends Context.Tag("@conclave/cli/Output")<Output, {
  /** One line on stdout (a newline is appended). */
  readonly line: (text: string) => Effect.Effect<void>
  /** One line on stderr. */
  readonly note: (text: string) => Effect.Effect<void>
  /** Whether stdout may carry ANSI colour (a TTY and `NO_COLOR` unset). */
  readonly color: boolean
}>() {}

const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]/g

/** Remove ANSI escape sequences. @since 0.1.0 @category rendering */
export const stripAnsi = (s: string): string => s.replace(ANSI, "")

/** Whether a stream may be coloured. @since 0.1.0 @category colour */
export const colorFor = (stream: { readonly isTTY?: boolean }, env: Readonly<Record<string, string | undefined>>) =>
  stream.isTTY === true && (env["NO_COLOR"] ?? "") === ""

const write = (stream: NodeJS.WriteStream, text: string) =>
  Effect.sync(() => {
    stream.write(text + "\n")
  })

/**
 * stdout / stderr of this process. With `jsonLogs` (`CONCLAVE_LOG_FORMAT=json`) notes go through
 * the logger at info level, so that every stderr line is one JSON object.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerProcess = (
  env: Readonly<Record<string, string | undefined>>,
  jsonLogs = false
): Layer.Layer<Output> =>
  Layer.succeed(Output, {
    line: (text) => write(process.stdout, text),
    note: (text) => jsonLogs ? Effect.logInfo(text) : write(process.stderr, text),
    color: colorFor(process.stdout, env)
  })

/** A capturing implementation for tests. @since 0.1.0 @category layers */
export const makeCapture = () => {
  const stdout: Array<string> = []
  const stderr: Array<string> = []
  const layer = Layer.succeed(Output, {
    line: (text) => Effect.sync(() => void stdout.push(text)),
    note: (text) => Effect.sync(() => void stderr.push(text)),
    color: false
  })
  return { layer, stdout, stderr } as const
}

/** @since 0.1.0 @category printing */
export const line = (text: string) => Effect.flatMap(Output, (o) => o.line(text))
/** @since 0.1.0 @category printing */
export const note = (text: string) => Effect.flatMap(Output, (o) => o.note(text))
/** One JSON document on one line (D-30). @since 0.1.0 @category printing */
export const json = (value: unknown) => Effect.flatMap(Output, (o) => o.line(JSON.stringify(value)))
/** A `✓ ` success line (SPEC §6.1). @since 0.1.0 @category printing */
export const success = (text: string) =>
  Effect.flatMap(Output, (o) => o.line(o.color ? `\x1b[32m✓\x1b[0m ${text}` : `✓ ${text}`))

/**
 * A Console that removes ANSI colour from what @effect/cli prints (its help is always coloured)
 * unless the destination is a TTY and `NO_COLOR` is unset. With `jsonLogs`, what it would print on
 * stderr (usage errors) is logged instead, keeping stderr one JSON object per line.
 *
 * @since 0.1.0
 * @category constructors
 */
export const plainConsole = (
  base: Console.Console,
  env: Readonly<Record<string, string | undefined>>,
  jsonLogs = false
): Console.Console => {
  const outColor = colorFor(process.stdout, env)
  const errColor = colorFor(process.stderr, env)
  const render = (args: ReadonlyArray<unknown>, color: boolean) =>
    args.map((a) => typeof a === "string" && !color ? stripAnsi(a) : a)
  const logged = (level: "error" | "warn") => (...args: ReadonlyArray<unknown>) => {
    const text = render(args, false).map(String).join(" ").trim()
    if (text === "") return Effect.void
    return level === "error" ? Effect.logError(text) : Effect.logWarning(text)
  }
  return {
    ...base,
    log: (...args) => base.log(...render(args, outColor)),
    info: (...args) => base.info(...render(args, outColor)),
    error: jsonLogs ? logged("error") : (...args) => base.error(...render(args, errColor)),
    warn: jsonLogs ? logged("warn") : (...args) => base.warn(...render(args, errColor))
  }
}
