/**
 * Logging for every verb (SPEC §3.20, DECISIONS D-33): Effect's Logger writing to **stderr only**
 * (stdout carries data and, for the bridge, MCP).
 *
 * - level: `CONCLAVE_LOG_LEVEL` (`trace|debug|info|warn|error`), else `debug` with `-v`, else `info`;
 * - format: `CONCLAVE_LOG_FORMAT=json` (case-insensitive) → one JSON object per line carrying
 *   `message`, `level`, `timestamp`, the annotations, and `fields: { message, ...annotations }`;
 *   otherwise `<timestamp> <LEVEL> <message> key=value …`, coloured only when stderr is a TTY and
 *   `NO_COLOR` is unset.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"

/** @since 0.1.0 @category models */
export type Format = "human" | "json"

/** @since 0.1.0 @category models */
export interface Settings {
  readonly level: LogLevel.LogLevel
  readonly format: Format
  readonly color: boolean
  /** Set when `CONCLAVE_LOG_LEVEL` held something unusable. */
  readonly invalidLevel: Option.Option<string>
}

const levels: Record<string, LogLevel.LogLevel> = {
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  off: LogLevel.None
}

/**
 * Parse a level name (`trace|debug|info|warn|error`, case-insensitive).
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseLevel = (s: string): Option.Option<LogLevel.LogLevel> =>
  Option.fromNullable(levels[s.trim().toLowerCase()])

/**
 * Resolve the settings from the environment and `-v`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const settings = (options: {
  readonly verbose: boolean
  readonly env: Readonly<Record<string, string | undefined>>
  readonly stderrIsTty: boolean
}): Settings => {
  const raw = options.env["CONCLAVE_LOG_LEVEL"] ?? options.env["CONCLAVE_LOG"] ?? ""
  const parsed = raw.trim() === "" ? Option.none() : parseLevel(raw)
  const fallback = options.verbose ? LogLevel.Debug : LogLevel.Info
  const format: Format = (options.env["CONCLAVE_LOG_FORMAT"] ?? "").trim().toLowerCase() === "json" ? "json" : "human"
  const noColor = (options.env["NO_COLOR"] ?? "") !== ""
  return {
    level: Option.getOrElse(parsed, () => fallback),
    format,
    color: format === "human" && options.stderrIsTty && !noColor,
    invalidLevel: raw.trim() !== "" && Option.isNone(parsed) ? Option.some(raw) : Option.none()
  }
}

const levelName = (level: LogLevel.LogLevel): string => level.label === "WARN" ? "WARN" : level.label

const renderMessage = (message: unknown): string => {
  const parts = Array.isArray(message) ? message : [message]
  return parts.map((part) => typeof part === "string" ? part : safeJson(part)).join(" ")
}

const safeJson = (value: unknown): string => {
  try {
    const text = JSON.stringify(value)
    return text === undefined ? String(value) : text
  } catch {
    return String(value)
  }
}

const renderValue = (value: unknown): string => {
  const text = typeof value === "string" ? value : safeJson(value)
  return /^[^\s"=]+$/.test(text) ? text : JSON.stringify(text)
}

const colors: Record<string, string> = {
  TRACE: "\x1b[90m",
  DEBUG: "\x1b[34m",
  INFO: "\x1b[32m",
  WARN: "\x1b[33m",
  ERROR: "\x1b[31m",
  FATAL: "\x1b[35m"
}

/**
 * One log line (without the trailing newline) in the given format. Exposed for tests.
 *
 * @since 0.1.0
 * @category rendering
 */
export const renderLine = (
  format: Format,
  color: boolean,
  entry: {
    readonly level: LogLevel.LogLevel
    readonly message: unknown
    readonly date: Date
    readonly annotations: ReadonlyArray<readonly [string, unknown]>
    readonly cause?: string | undefined
  }
): string => {
  const message = renderMessage(entry.message)
  const level = levelName(entry.level)
  const timestamp = entry.date.toISOString()
  if (format === "json") {
    const annotations: Record<string, unknown> = {}
    for (const [key, value] of entry.annotations) annotations[key] = value
    if (entry.cause !== undefined) annotations["cause"] = entry.cause
    return safeJson({
      ...annotations,
      message,
      level,
      timestamp,
      fields: { ...annotations, message }
    })
  }
  const pairs = entry.annotations.map(([key, value]) => `${key}=${renderValue(value)}`)
  if (entry.cause !== undefined) pairs.push(`cause=${renderValue(entry.cause)}`)
  const tail = pairs.length === 0 ? "" : ` ${pairs.join(" ")}`
  const shownLevel = color ? `${colors[level] ?? ""}${level.padEnd(5)}\x1b[0m` : level.padEnd(5)
  const shownTime = color ? `\x1b[2m${timestamp}\x1b[0m` : timestamp
  return `${shownTime} ${shownLevel} ${message}${tail}`
}

/**
 * A logger that writes each line to `write` (stderr in production).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeLogger = (
  format: Format,
  color: boolean,
  write: (line: string) => void
): Logger.Logger<unknown, void> =>
  Logger.make(({ annotations, cause, date, logLevel, message }) => {
    write(
      renderLine(format, color, {
        level: logLevel,
        message,
        date,
        annotations: [...HashMap.toEntries(annotations)],
        cause: Cause.isEmpty(cause) ? undefined : Cause.pretty(cause)
      }) + "\n"
    )
  })

const writeNow = (text: string): void => {
  try {
    process.stderr.write(text)
  } catch {
    // stderr closed: nothing sensible left to do with a log line
  }
}

/** A batch is written at once when it grows past this many characters. */
const BATCH_CHARS = 64 * 1024

/**
 * A line sink that, once `start`ed, gathers the lines of one event-loop turn and writes them with one
 * `write` when the turn ends (stderr is a synchronous pipe or file: one syscall per line showed up in
 * the server's handshake profile). Lines keep their order; a batch past 64 K characters is written at
 * once, and `stop` (or the process's `exit`) writes what is left. Exposed for tests.
 *
 * @since 0.1.0
 * @category sinks
 */
export const makeBatcher = (
  write: (text: string) => void,
  schedule: (flush: () => void) => void = setImmediate
) => {
  let batch: Array<string> | undefined
  let chars = 0
  let scheduled = false
  const flush = () => {
    scheduled = false
    if (batch === undefined || batch.length === 0) return
    const text = batch.length === 1 ? batch[0]! : batch.join("")
    batch.length = 0
    chars = 0
    write(text)
  }
  return {
    write: (line: string): void => {
      if (batch === undefined) return write(line)
      batch.push(line)
      chars += line.length
      if (chars >= BATCH_CHARS) flush()
      else if (!scheduled) {
        scheduled = true
        schedule(flush)
      }
    },
    start: () => {
      batch ??= []
    },
    stop: () => {
      flush()
      batch = undefined
    },
    batching: () => batch !== undefined
  }
}

const stderrSink = makeBatcher(writeNow)
const writeStderr = stderrSink.write
// Whatever a batch still holds when the process exits (an exit code set from a crash, `process.exit`).
const flushAtExit = () => {
  stderrSink.stop()
}

/**
 * Batch stderr log lines per event-loop turn for the life of the scope (`conclave serve`: many sessions
 * log in one turn). Lines left when the process exits are still written (`exit` runs synchronously and
 * so does the write).
 *
 * @since 0.1.0
 * @category layers
 */
export const batchStderr: Effect.Effect<void, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => {
    stderrSink.start()
    process.on("exit", flushAtExit)
  }),
  () =>
    Effect.sync(() => {
      process.off("exit", flushAtExit)
      stderrSink.stop()
    })
)

/**
 * Replace the default logger (which writes to stdout) with the stderr logger and set the minimum level.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (s: Settings): Layer.Layer<never> =>
  Layer.merge(
    Logger.replace(Logger.defaultLogger, makeLogger(s.format, s.color, writeStderr)),
    Logger.minimumLogLevel(s.level)
  )
